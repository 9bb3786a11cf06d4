//! Shared test support: run a test body on every selected flavour (REVENANT_TEST_FLAVORS), naming the flavour on
//! failure, plus small SQL helpers. Servers come from `revenant::sandbox` (real servers, never mocks).
#![allow(dead_code)]

pub mod follow;
pub mod run;
pub mod tls;
pub mod trace;

use std::future::Future;

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;
pub use revenant::sandbox::{Flavor, Server};

/// Runs `body` once per selected flavour; a failure names the flavour.
pub async fn each_flavor<F, Fut>(body: F)
where
    F: Fn(Flavor) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let _ = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_env("REVENANT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
    ).with_test_writer().try_init();
    let flavors = revenant::sandbox::selected_flavors().expect("REVENANT_TEST_FLAVORS");
    assert!(!flavors.is_empty(), "REVENANT_TEST_FLAVORS selects no flavour");
    for flavor in flavors {
        if let Err(e) = body(flavor).await {
            panic!("[{flavor}] {e:?}");
        }
    }
}

/// Runs statements separated by `;` lines (no DELIMITER support) on a connection.
pub async fn exec_all(conn: &mut mysql_async::Conn, sql: &str) -> Result<()> {
    for stmt in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        conn.query_drop(stmt).await.wrap_err_with(|| format!("running: {stmt}"))?;
    }
    Ok(())
}

/// (row count, order-independent checksum) of `SELECT cols FROM db.table`, computed on the server with CRC32 over a
/// per-row text form (MySQL 9.7 has no MD5).
pub async fn table_checksum(conn: &mut mysql_async::Conn, db: &str, table: &str, cols: &[&str]) -> Result<(u64, String)> {
    let list = cols.iter().map(|c| format!("IFNULL(HEX(`{c}`),'\\N')")).collect::<Vec<_>>().join(", '|', ");
    let q = format!(
        "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT({list}))),0), COALESCE(BIT_XOR(CRC32(CONCAT('x',{list}))),0) FROM `{db}`.`{table}`"
    );
    let row: Option<(u64, String, String)> = conn.query_first(q).await.wrap_err("checksum query")?;
    let (n, a, b) = row.unwrap_or_default();
    Ok((n, format!("{a}/{b}")))
}

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use revenant::engine::config::{ConnectionConfig, MigrationConfig, Secret};
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::{Command, Phase};

/// Creates `app.<table>` (`id` AUTO_INCREMENT key, `a INT`, `b VARCHAR(64)`) with `rows` rows; the database is
/// created when missing.
pub async fn seed_app_table(server: &Server, table: &str, rows: u32) -> Result<()> {
    let mut c = server.conn().await?;
    c.query_drop("CREATE DATABASE IF NOT EXISTS app").await?;
    c.query_drop(format!("CREATE TABLE app.{table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64))")).await?;
    c.query_drop(format!(
        "INSERT INTO app.{table} (a, b) SELECT seq % 97, CONCAT('row ', seq) FROM (SELECT @n := @n + 1 AS seq FROM \
         information_schema.COLUMNS a, information_schema.COLUMNS b, (SELECT @n := 0) z LIMIT {rows}) s"
    ))
    .await?;
    Ok(())
}

/// Engine connection settings for root on a sandbox server.
pub fn conn_config(server: &Server) -> ConnectionConfig {
    ConnectionConfig { host: "127.0.0.1".into(), port: server.port, user: "root".into(), password: Secret::new(None), socket: None, tls: None, gtid_domain_id: None }
}

/// A migration config for tests: executes, small chunks, cut-over postponed until the test approves it.
pub fn test_config(server: &Server, db: &str, table: &str, alter: &str) -> MigrationConfig {
    let mut cfg = MigrationConfig::new(conn_config(server), db, table, alter);
    cfg.run.execute = true;
    cfg.run.chunk_size = 100;
    cfg.run.postpone_cut_over = true;
    cfg.run.heartbeat_interval = Duration::from_millis(100);
    cfg.run.retry_for = Duration::from_secs(20);
    cfg
}

/// A writer that inserts, updates (key updates included) and deletes rows of a table keyed by `id`
/// (AUTO_INCREMENT), by copying values between existing rows so it works for any column types.
pub struct Writer {
    stop: Arc<AtomicBool>,
    pub ops: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Writer {
    pub async fn start(server: &Server, db: &str, table: &str, value_cols: &[&str], key_updates: bool) -> Result<Writer> {
        let mut conn = server.conn_db(db).await?;
        conn.query_drop("SET SESSION sql_mode = ''").await?;
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let (s, o) = (stop.clone(), ops.clone());
        let t = format!("`{table}`");
        let cols: Vec<String> = value_cols.iter().map(|c| format!("`{c}`")).collect();
        let task = tokio::spawn(async move {
            let mut seed: u64 = 0x9E3779B97F4A7C15;
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            while !s.load(Ordering::Relaxed) {
                let ids: Vec<i64> = conn.query(format!("SELECT id FROM {t} ORDER BY RAND() LIMIT 2")).await?;
                if ids.len() < 2 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let (a, b) = (ids[0], ids[1]);
                let op = next() % 10;
                let sql = match op {
                    0..=3 => format!("INSERT INTO {t} ({c}) SELECT {c} FROM {t} WHERE id = {a}", c = cols.join(", ")),
                    4..=6 => {
                        let sets: Vec<String> = cols.iter().map(|c| format!("x.{c} = y.{c}")).collect();
                        format!("UPDATE {t} x JOIN (SELECT * FROM {t} WHERE id = {b}) y SET {} WHERE x.id = {a}", sets.join(", "))
                    }
                    7 if key_updates => format!("UPDATE {t} SET id = id + 100000000 WHERE id = {a}"),
                    _ => format!("DELETE FROM {t} WHERE id = {a}"),
                };
                // Key collisions and the like are fine: the oracle compares whatever the table ends up holding.
                let _ = conn.query_drop(sql).await;
                o.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok(())
        });
        Ok(Writer { stop, ops, task })
    }

    pub async fn stop(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await??;
        Ok(self.ops.load(Ordering::Relaxed))
    }
}

/// Waits until the migration reaches `phase` (or fails).
pub async fn wait_phase(handle: &revenant::engine::EngineHandle, phase: Phase, timeout: Duration) -> Result<()> {
    let mut rx = handle.status.clone();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        {
            let s = rx.borrow();
            if s.phase == Some(phase) {
                return Ok(());
            }
            if let Some(p) = s.phase {
                if p.is_terminal() && p != phase {
                    color_eyre::eyre::bail!("migration ended in {p:?} while waiting for {phase:?}: {:?}", s.message);
                }
            }
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => color_eyre::eyre::bail!("status channel closed while waiting for {phase:?}"),
            Err(_) => color_eyre::eyre::bail!("timed out waiting for {phase:?}: {:?}", rx.borrow().phase),
        }
    }
}

/// Once the migration was awaited to ReadyToCutOver (`ready`, the writers stopped): approves the cut-over and
/// waits for Done; a migration that never got ready is reported with its result.
pub async fn finish_after_ready(
    handle: &revenant::engine::EngineHandle,
    join: tokio::task::JoinHandle<Result<Outcome>>,
    ready: Result<()>,
) -> Result<()> {
    if let Err(e) = ready {
        let r = join.await?;
        return Err(e.wrap_err(format!("migration result: {r:?}")));
    }
    let reply = handle.send(Command::CutOver).await;
    assert!(reply.ok, "cut-over refused: {}", reply.message);
    let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
    assert!(matches!(outcome, Outcome::Done { .. }), "outcome {outcome:?}");
    Ok(())
}

/// Runs a migration of `db.table` with `alter` while a writer runs, approves the cut-over once ready (after
/// stopping the writer), and checks the oracle: `_<table>_del` and the new table hold identical rows over
/// `compare` columns (old names, new names).
pub async fn migrate_with_writer(
    server: &Server,
    db: &str,
    table: &str,
    alter: &str,
    writer_cols: &[&str],
    compare_old: &[&str],
    compare_new: &[&str],
    adjust: impl FnOnce(&mut MigrationConfig),
) -> Result<u64> {
    let writer = Writer::start(server, db, table, writer_cols, true).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut cfg = test_config(server, db, table, alter);
    adjust(&mut cfg);
    let (handle, join) = migrate::start(cfg);
    let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await;
    let ops = writer.stop().await?;
    finish_after_ready(&handle, join, ready).await?;
    let mut c = server.conn().await?;
    let old = table_checksum(&mut c, db, &format!("_{table}_del"), compare_old).await?;
    let new = table_checksum(&mut c, db, table, compare_new).await?;
    assert_eq!(old, new, "{db}.{table}: rows differ between _{table}_del and {table} after the migration ({ops} writer ops)");
    assert!(old.0 > 0, "{db}.{table}: the table is empty: the test proves nothing");
    Ok(ops)
}

/// `db.t` (id, a, b, c DATETIME(6), d DECIMAL, KEY(a)) with `rows` rows, doubled in by INSERT ... SELECT: the table
/// the crash, failover and resume tests migrate.
pub async fn seed(server: &Server, db: &str, rows: u64) -> Result<()> {
    let mut c = server.conn().await?;
    exec_all(
        &mut c,
        &format!(
            "CREATE DATABASE {db};\nCREATE TABLE {db}.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64), c DATETIME(6), d DECIMAL(10,2), KEY(a))"
        ),
    )
    .await?;
    c.query_drop(format!("INSERT INTO {db}.t (a, b, c, d) VALUES (1, 'seed', NOW(6), 1.5)")).await?;
    let mut have = 1;
    while have < rows {
        let take = (rows - have).min(have);
        c.query_drop(format!(
            "INSERT INTO {db}.t (a, b, c, d) SELECT a + {have}, CONCAT('row ', id + {have}), c - INTERVAL id SECOND, d + id FROM {db}.t ORDER BY id LIMIT {take}"
        ))
        .await?;
        have += take;
    }
    Ok(())
}

/// What a finished child wrote on stderr (taken: a second call gets nothing).
pub fn stderr_of(child: &mut std::process::Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}
