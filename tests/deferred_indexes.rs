//! `--defer-secondary-indexes` (on by default) on both flavours: the ghost is copied into with its primary and
//! unique keys only, the plain secondary indexes are added after the copy in place while a writer keeps the
//! applier busy, and the migrated table ends with exactly the indexes the server's own ALTER gives and the same
//! rows; `=false` keeps them on the ghost from the start; a kill -9 while the index build runs (its ALTER killed
//! on the server too) is resumed by `--resume`, which adds the indexes, with nothing lost.

mod common;

use std::process::{Command as Proc, Stdio};
use std::time::Duration;

use color_eyre::eyre::{ensure, Result};
use common::{each_flavor, finish_after_ready, table_checksum, test_config, wait_phase, Server, Writer};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate;
use revenant::engine::Phase;

const ALTER: &str = "ADD COLUMN f INT";
const COLS: [&str; 4] = ["id", "a", "b", "c"];

/// `db.t` with two plain secondary indexes (one with a comment) and a unique one, `rows` rows.
async fn seed_indexed(server: &Server, db: &str, rows: u64) -> Result<()> {
    let mut c = server.conn().await?;
    c.query_drop(format!("CREATE DATABASE {db}")).await?;
    c.query_drop(format!(
        "CREATE TABLE {db}.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64), c INT, KEY ka (a), \
         KEY kbc (b, c) COMMENT 'two columns', UNIQUE KEY uid (a, id))"
    ))
    .await?;
    c.query_drop(format!("INSERT INTO {db}.t (a, b, c) VALUES (1, 'seed', 1)")).await?;
    let mut have = 1;
    while have < rows {
        let take = (rows - have).min(have);
        c.query_drop(format!("INSERT INTO {db}.t (a, b, c) SELECT a + {have}, CONCAT('row ', id + {have}), c * 7 % 1000 FROM {db}.t ORDER BY id LIMIT {take}")).await?;
        have += take;
    }
    Ok(())
}

/// The index lines of a table's definition (sorted), to compare two tables' indexes.
async fn index_lines(c: &mut mysql_async::Conn, db: &str, table: &str) -> Result<Vec<String>> {
    let row: Option<(String, String)> = c.query_first(format!("SHOW CREATE TABLE `{db}`.`{table}`")).await?;
    let create = row.map(|r| r.1).unwrap_or_default();
    let mut lines: Vec<String> = create
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| l.starts_with("PRIMARY KEY") || l.starts_with("UNIQUE KEY") || l.starts_with("KEY"))
        .collect();
    lines.sort();
    Ok(lines)
}

/// The indexes the server's own ALTER gives the original: a scratch copy of the structure, altered.
async fn expected_indexes(c: &mut mysql_async::Conn, db: &str, original: &str) -> Result<Vec<String>> {
    c.query_drop(format!("CREATE TABLE {db}.reference LIKE {db}.{original}")).await?;
    c.query_drop(format!("ALTER TABLE {db}.reference {ALTER}")).await?;
    let lines = index_lines(c, db, "reference").await?;
    c.query_drop(format!("DROP TABLE {db}.reference")).await?;
    Ok(lines)
}

async fn has_index(c: &mut mysql_async::Conn, db: &str, table: &str, index: &str) -> Result<bool> {
    let n: Option<u64> = c
        .exec_first("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = ?", (db, table, index))
        .await?;
    Ok(n.unwrap_or(0) > 0)
}

/// Same rows over the shared columns, same indexes as the server's own ALTER.
async fn check_result(c: &mut mysql_async::Conn, db: &str) -> Result<()> {
    let old = table_checksum(c, db, "_t_del", &COLS).await?;
    let new = table_checksum(c, db, "t", &COLS).await?;
    ensure!(old == new && old.0 > 0, "rows differ: _t_del {old:?}, t {new:?}");
    let want = expected_indexes(c, db, "_t_del").await?;
    let have = index_lines(c, db, "t").await?;
    ensure!(have == want, "indexes after the migration: {have:?}; the server's own ALTER gives {want:?}");
    Ok(())
}

/// Runs a migration under a writer; `defer` sets the flag. Returns (the ghost had `ka` during the copy, the index
/// phase ran, the indexes the status named as deferred).
async fn migrate_observed(server: &Server, db: &str, defer: bool) -> Result<(bool, bool, Vec<String>)> {
    let writer = Writer::start(server, db, "t", &["a", "b", "c"], false).await?;
    let mut cfg = test_config(server, db, "t", ALTER);
    cfg.defer_secondary_indexes = defer;
    // The copy is held by a throttle flag file until the ghost was looked at: a fast copy was over before a
    // status snapshot showed it (the fresh-clone CI saw ReadyToCutOver first).
    let flag = std::env::temp_dir().join(format!("rvn-deferred-{}-{db}.throttle", std::process::id()));
    std::fs::write(&flag, b"")?;
    cfg.run.throttle.throttle_flag_file = Some(flag.clone());
    let (handle, join) = migrate::start(cfg);
    let in_copy = wait_phase(&handle, Phase::Copy, Duration::from_secs(60)).await;
    let mut c = server.conn().await?;
    let ka_during_copy = has_index(&mut c, db, "_t_gho", "ka").await?;
    let uid_during_copy = has_index(&mut c, db, "_t_gho", "uid").await?;
    std::fs::remove_file(&flag)?;
    in_copy?;
    ensure!(uid_during_copy, "the unique key must stay on the ghost during the copy");
    let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(180)).await;
    let status = handle.status.borrow().clone();
    writer.stop().await?;
    finish_after_ready(&handle, join, ready).await?;
    let ran = status.phase_seconds.iter().any(|(p, _)| *p == Phase::Indexes);
    Ok((ka_during_copy, ran, status.indexes.deferred))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_indexes_are_added_after_the_copy_and_end_as_the_servers_own_alter() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_indexed(&server, "deferred", 20000).await?;
        let (ka_during_copy, ran, deferred) = migrate_observed(&server, "deferred", true).await?;
        ensure!(!ka_during_copy, "the ghost had the secondary index ka during the copy");
        ensure!(ran, "no index phase ran");
        ensure!(deferred == ["ka", "kbc"], "deferred indexes in the status: {deferred:?}");
        check_result(&mut server.conn().await?, "deferred").await?;

        seed_indexed(&server, "kept", 20000).await?;
        let (ka_during_copy, ran, deferred) = migrate_observed(&server, "kept", false).await?;
        ensure!(ka_during_copy && !ran && deferred.is_empty(), "--defer-secondary-indexes=false: ka on the ghost {ka_during_copy}, index phase {ran}, deferred {deferred:?}");
        check_result(&mut server.conn().await?, "kept").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_the_index_build_is_resumed_with_every_index_and_row() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let db = "killed";
        seed_indexed(&server, db, 20000).await?;
        let writer = Writer::start(&server, db, "t", &["a", "b", "c"], false).await?;
        let run = |extra: &[&str], failpoints: &str| {
            let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
            p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--database", db])
                .args(["--table", "t", "--alter", ALTER, "--execute", "--headless", "--chunk-size", "200", "--default-retries", "3"])
                .arg(format!("--serve-socket-file=/tmp/revenant-deferred-{}.sock", server.port))
                .args(extra)
                .env("REVENANT_FAILPOINTS", failpoints)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            p
        };
        let first = run(&[], "index-build-running=exit").spawn()?;
        // Once the copy runs (setup done), a transaction of ours reads the ghost: its metadata lock keeps the
        // in-place ALTER from finishing, so the fail point (300 ms into the ALTER) always finds it running.
        let mut c = server.conn().await?;
        let mut holder = server.conn().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let copied: Option<u64> = c.query_first(format!("SELECT rows_copied FROM {db}._t_ghk WHERE id = 'copy'")).await.unwrap_or(None);
            if copied.unwrap_or(0) > 0 {
                break;
            }
            ensure!(tokio::time::Instant::now() < deadline, "the copy did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        holder.query_drop("START TRANSACTION").await?;
        let _: Option<u64> = holder.query_first(format!("SELECT COUNT(*) FROM {db}._t_gho")).await?;
        let first = tokio::task::spawn_blocking(move || first.wait_with_output()).await??;
        // The server runs the dead run's ALTER on (it waits for our lock): killed here, as a server restart or a
        // DBA would, so the resume finds the indexes missing and must add them itself.
        let orphans: Vec<u64> = c.query(format!("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'ALTER TABLE `{db}`.`_t_gho` ADD%'")).await?;
        ensure!(orphans.len() == 1, "the dead run's ALTER is not running: {orphans:?}");
        c.query_drop(format!("KILL QUERY {}", orphans[0])).await?;
        holder.query_drop("COMMIT").await?;
        let first_err = String::from_utf8_lossy(&first.stderr).to_string() + &String::from_utf8_lossy(&first.stdout);
        ensure!(!first.status.success() && first_err.contains("fail point index-build-running hit"), "the fail point did not stop the first run: {first_err}");
        // The writer stops before the resume: its cut-over is not postponed, and the old table is the oracle.
        let ops = writer.stop().await?;
        ensure!(ops > 0, "the writer did nothing");
        let altered: Option<u64> = c
            .exec_first("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' AND COLUMN_NAME = 'f'", (db,))
            .await?;
        ensure!(altered == Some(0), "the original was altered");
        let out = run(&["--resume"], "").output()?;
        let err = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success(), "the resume failed: {err}");
        check_result(&mut c, db).await?;
        ensure!(err.contains("adding 2 secondary index(es) to the ghost in place"), "the resume did not add the indexes: {err}");
        Ok(())
    })
    .await;
}
