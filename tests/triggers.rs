//! gh-ost's `--include-triggers` on both flavours and both cut-over modes, under a writer: the original's
//! triggers are created on the new table at the cut-over, so every write fires them exactly once (before the swap
//! on the original, after it on the new table, never by the copy or the applier), the new table's triggers carry
//! the suffix, and the old table keeps its own. A cut-over attempt that fails after creating them (a fail point)
//! takes them off the ghost before the applier goes on, and the next attempt swaps with the counts still exact.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{ensure, eyre, Result};
use common::{each_flavor, exec_all, test_config, wait_phase, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::config::CutOverMode;
use revenant::engine::cutover::triggers::TriggerNaming;
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::{Command, Phase};

/// What the writer did (successful statements only).
#[derive(Default)]
struct Done {
    inserts: AtomicU64,
    updates: AtomicU64,
    deletes: AtomicU64,
    /// Ids the writer inserted (the insert succeeded) whose DELETE then found no row: a lost row, or a test bug.
    missing: std::sync::Mutex<Vec<u64>>,
    /// Ids the writer inserted and did not delete, at the end.
    kept: std::sync::Mutex<Vec<u64>>,
}

/// Inserts rows, updates rows 1..=200 (never deleted), deletes rows it inserted, until `stop`.
async fn write(server_conn: mysql_async::Conn, table: String, stop: Arc<AtomicBool>, done: Arc<Done>) -> Result<()> {
    let mut c = server_conn;
    let mut mine: Vec<u64> = Vec::new();
    let mut i = 0u64;
    while !stop.load(Relaxed) {
        i += 1;
        if c.query_drop(format!("INSERT INTO app.{table} (a, b) VALUES ({i}, 'w{i}')")).await.is_ok() {
            done.inserts.fetch_add(1, Relaxed);
            if let Some(id) = c.last_insert_id() {
                mine.push(id);
            }
        }
        if i.is_multiple_of(3) && c.query_drop(format!("UPDATE app.{table} SET a = a + 1 WHERE id = {}", 1 + i % 200)).await.is_ok() {
            done.updates.fetch_add(1, Relaxed);
        }
        if i.is_multiple_of(5) {
            if let Some(id) = mine.pop() {
                match c.query_drop(format!("DELETE FROM app.{table} WHERE id = {id}")).await {
                    Ok(()) if c.affected_rows() == 1 => {
                        done.deletes.fetch_add(1, Relaxed);
                    }
                    Ok(()) => done.missing.lock().map_err(|_| eyre!("poisoned"))?.push(id),
                    Err(_) => mine.push(id),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    *done.kept.lock().map_err(|_| eyre!("poisoned"))? = mine;
    Ok(())
}

async fn count(c: &mut mysql_async::Conn, sql: String) -> Result<u64> {
    Ok(c.query_first::<u64, _>(sql).await?.unwrap_or(0))
}

async fn trigger_names(c: &mut mysql_async::Conn, table: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = c
        .exec("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app' AND EVENT_OBJECT_TABLE = ?", (table,))
        .await?;
    names.sort();
    Ok(names)
}

async fn one_mode(server: &Server, table: &str, mode: CutOverMode) -> Result<()> {
    let mut c = server.conn().await?;
    exec_all(
        &mut c,
        &format!(
            "CREATE TABLE app.{table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64), touched INT NOT NULL DEFAULT 0);\n\
             CREATE TABLE app.{table}_audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, t_id BIGINT, action VARCHAR(8));\n\
             CREATE TRIGGER app.{table}_ai AFTER INSERT ON app.{table} FOR EACH ROW INSERT INTO app.{table}_audit (t_id, action) VALUES (NEW.id, 'insert');\n\
             CREATE TRIGGER app.{table}_bu BEFORE UPDATE ON app.{table} FOR EACH ROW SET NEW.touched = OLD.touched + 1;\n\
             CREATE TRIGGER app.{table}_ad AFTER DELETE ON app.{table} FOR EACH ROW BEGIN INSERT INTO app.{table}_audit (t_id, action) VALUES (OLD.id, 'delete'); END"
        ),
    )
    .await?;
    c.query_drop(format!(
        "INSERT INTO app.{table} (a, b) SELECT seq, CONCAT('row ', seq) FROM (SELECT @n := @n + 1 AS seq FROM \
         information_schema.COLUMNS x, information_schema.COLUMNS y, (SELECT @n := 0) z LIMIT 3000) s"
    ))
    .await?;
    let mut cfg = test_config(server, "app", table, "ADD COLUMN extra INT");
    cfg.cut_over = mode;
    cfg.triggers = Some(TriggerNaming { suffix: "_v2".into(), remove_suffix_if_exists: false });
    let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(Done::default()));
    let writer = tokio::spawn(write(server.conn().await?, table.to_string(), stop.clone(), done.clone()));
    let (handle, join) = migrate::start(cfg);
    wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(handle.send(Command::CutOver).await.ok, "{table}: the approval was refused");
    let outcome = tokio::time::timeout(Duration::from_secs(120), join).await.map_err(|_| eyre!("{table}: the run hung"))???;
    ensure!(matches!(outcome, Outcome::Done { .. }), "{table}: {outcome:?}");
    // Writes after the swap reach the new table (and its triggers).
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Relaxed);
    writer.await??;
    let (ins, upd, del) = (done.inserts.load(Relaxed), done.updates.load(Relaxed), done.deletes.load(Relaxed));
    let missing = done.missing.lock().map_err(|_| eyre!("poisoned"))?.clone();
    if let Some(id) = missing.first() {
        let in_new = count(&mut c, format!("SELECT COUNT(*) FROM app.{table} WHERE id = {id}")).await?;
        let in_old = count(&mut c, format!("SELECT COUNT(*) FROM app._{table}_del WHERE id = {id}")).await?;
        let audit: Vec<(u64, String)> = c.query(format!("SELECT id, action FROM app.{table}_audit WHERE t_id = {id}")).await?;
        return Err(eyre!(
            "{table}: the writer inserted ids {missing:?} and their DELETE found no row; id {id}: {in_new} in the new \
             table, {in_old} in the old, audit rows {audit:?}"
        ));
    }
    ensure!(ins > 50 && upd > 10 && del > 5, "{table}: the writer wrote too little to show anything: {ins} {upd} {del}");
    let audit_ins = count(&mut c, format!("SELECT COUNT(*) FROM app.{table}_audit WHERE action = 'insert'")).await?;
    let audit_del = count(&mut c, format!("SELECT COUNT(*) FROM app.{table}_audit WHERE action = 'delete'")).await?;
    ensure!(audit_ins == 3000 + ins, "{table}: every insert fired its trigger once: {audit_ins} audit rows for {} inserts", 3000 + ins);
    ensure!(audit_del == del, "{table}: every delete fired its trigger once: {audit_del} audit rows for {del} deletes");
    let touched = count(&mut c, format!("SELECT CAST(SUM(touched) AS UNSIGNED) FROM app.{table} WHERE id <= 200")).await?;
    ensure!(touched == upd, "{table}: every update fired the BEFORE UPDATE trigger once: touched {touched}, updates {upd}");
    let new: Vec<String> = [format!("{table}_ad_v2"), format!("{table}_ai_v2"), format!("{table}_bu_v2")].into();
    ensure!(trigger_names(&mut c, table).await? == new, "{table}: the new table's triggers: {:?}", trigger_names(&mut c, table).await?);
    let old: Vec<String> = [format!("{table}_ad"), format!("{table}_ai"), format!("{table}_bu")].into();
    ensure!(trigger_names(&mut c, &format!("_{table}_del")).await? == old, "{table}: the old table keeps its triggers");
    let rows = count(&mut c, format!("SELECT COUNT(*) FROM app.{table}")).await?;
    if rows != 3000 + ins - del {
        let kept = done.kept.lock().map_err(|_| eyre!("poisoned"))?.clone();
        let mut lost = Vec::new();
        for id in kept {
            if count(&mut c, format!("SELECT COUNT(*) FROM app.{table} WHERE id = {id}")).await? == 0 {
                let in_old = count(&mut c, format!("SELECT COUNT(*) FROM app._{table}_del WHERE id = {id}")).await?;
                let max_old = count(&mut c, format!("SELECT MAX(id) FROM app._{table}_del")).await?;
                lost.push(format!("id {id} (in the old table: {in_old}, old table's max id {max_old})"));
            }
        }
        return Err(eyre!("{table}: rows {rows}, expected {}; inserted ids missing from the new table: {lost:?}", 3000 + ins - del));
    }
    ensure!(rows == 3000 + ins - del, "{table}: rows {rows}, expected {}", 3000 + ins - del);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_are_created_on_the_new_table_at_the_cut_over_and_fire_once_per_write() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        server.conn().await?.query_drop("CREATE DATABASE app").await?;
        one_mode(&server, "atomic", CutOverMode::Atomic).await.map_err(|e| e.wrap_err(format!("{flavor} atomic")))?;
        one_mode(&server, "twostep", CutOverMode::TwoStep).await.map_err(|e| e.wrap_err(format!("{flavor} two-step")))?;
        // The first attempt fails right after creating the triggers (the original serves, the writer goes on):
        // they come off the ghost before the applier writes again, and the second attempt swaps.
        std::env::set_var("REVENANT_FAILPOINTS", "cutover-after-triggers@1");
        let retried = one_mode(&server, "retried", CutOverMode::Atomic).await;
        std::env::remove_var("REVENANT_FAILPOINTS");
        retried.map_err(|e| e.wrap_err(format!("{flavor} atomic, first attempt failed after the triggers")))?;
        Ok(())
    })
    .await;
}
