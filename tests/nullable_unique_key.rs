//! gh-ost's `--allow-nullable-unique-key` on both flavours, through the command line: a table whose only unique
//! key allows NULL is refused without the flag; with it, a NULL already in the key is refused before anything
//! changes, a migration under a writer (non-NULL keys) ends with identical tables, and a NULL written during the
//! run stops it before the cut-over with the original serving.

mod common;

use std::process::{Command as Proc, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{ensure, Result};
use common::run::{lines_of, wait_for_line, Fixture};
use common::{each_flavor, exec_all, stderr_of, table_checksum, Server};
use mysql_async::prelude::Queryable;

const ALTER: &str = "ADD COLUMN w INT";

fn run(server: &Server, table: &str, extra: &[&str]) -> std::io::Result<Output> {
    Proc::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"])
        .args(["--database", "nk", "--table", table, "--alter", ALTER, "--execute"])
        .args(extra)
        .env_remove("MYSQL_PWD")
        .env("NO_COLOR", "1")
        .output()
}

/// `migrate` of `nk.<table>` with the flag, status JSON on stdout, the cut-over postponed by the fixture's flag file.
fn postponed(server: &Server, fx: &Fixture, table: &str) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--database", "nk"])
        .args(["--table", table, "--alter", ALTER, "--allow-nullable-unique-key", "--chunk-size", "200", "--execute", "--status-json"])
        .arg(format!("--postpone-cut-over-flag-file={}", fx.postpone.display()))
        .env_remove("MYSQL_PWD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    p
}

async fn tables(c: &mut mysql_async::Conn) -> Result<Vec<String>> {
    Ok(c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'nk' ORDER BY 1").await?)
}

/// Inserts, updates and deletes rows of `nk.t` by non-NULL keys until stopped.
async fn writer(server: &Server, stop: Arc<AtomicBool>) -> Result<tokio::task::JoinHandle<Result<u64>>> {
    let mut c = server.conn_db("nk").await?;
    Ok(tokio::spawn(async move {
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            let k = 1 + (n * 7919) % 6000;
            let sql = match n % 3 {
                0 => format!("INSERT INTO t (k, v) VALUES ({}, {n}) ON DUPLICATE KEY UPDATE v = v + 1", 3000 + k),
                1 => format!("UPDATE t SET v = v + 1 WHERE k = {k}"),
                _ => format!("DELETE FROM t WHERE k = {}", k + 1),
            };
            c.query_drop(sql).await?;
            n += 1;
        }
        Ok(n)
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nullable_unique_key_is_taken_only_with_the_flag_and_only_without_nulls() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(
            &mut c,
            "CREATE DATABASE nk;\n\
             CREATE TABLE nk.t (k BIGINT NULL, v INT, UNIQUE KEY uk (k)) ENGINE=InnoDB;\n\
             INSERT INTO nk.t (k, v) SELECT n, n FROM (SELECT a.d * 1000 + b.d * 100 + c.d * 10 + e.d + 1 AS n FROM \
               (SELECT 0 d UNION SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6 UNION SELECT 7 UNION SELECT 8 UNION SELECT 9) a, \
               (SELECT 0 d UNION SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6 UNION SELECT 7 UNION SELECT 8 UNION SELECT 9) b, \
               (SELECT 0 d UNION SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6 UNION SELECT 7 UNION SELECT 8 UNION SELECT 9) c, \
               (SELECT 0 d UNION SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6 UNION SELECT 7 UNION SELECT 8 UNION SELECT 9) e) s WHERE n <= 3000;\n\
             CREATE TABLE nk.t2 LIKE nk.t;\n\
             INSERT INTO nk.t2 SELECT * FROM nk.t",
        )
        .await?;
        let cols = ["k", "v"];

        let out = run(&server, "t", &[])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.code() == Some(2), "{flavor}: without the flag the nullable key is refused: {stderr}");
        ensure!(stderr.contains("allows NULL") && stderr.contains("--allow-nullable-unique-key"), "{flavor}: the refusal names the flag: {stderr}");

        c.query_drop("INSERT INTO nk.t (k, v) VALUES (NULL, -1)").await?;
        let out = run(&server, "t", &["--allow-nullable-unique-key"])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.code() == Some(2), "{flavor}: a NULL in the key is refused: {stderr}");
        ensure!(stderr.contains("1 row(s) of nk.t hold a NULL in the key"), "{flavor}: the refusal counts the rows: {stderr}");
        ensure!(tables(&mut c).await? == ["t", "t2"], "{flavor}: the refusals left nothing behind");
        c.query_drop("DELETE FROM nk.t WHERE k IS NULL").await?;

        // Under a writer until the cut-over waits; the writer stops, then the cut-over is let go.
        let stop = Arc::new(AtomicBool::new(false));
        let load = writer(&server, stop.clone()).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fx = Fixture::new("nullable", "writer", server.port)?;
        std::fs::write(&fx.postpone, b"")?;
        let mut child = postponed(&server, &fx, "t").spawn()?;
        let rx = lines_of(&mut child)?;
        let ready = wait_for_line(&rx, "\"phase\":\"ready-to-cut-over\"", Duration::from_secs(120));
        stop.store(true, Ordering::Relaxed);
        let ops = load.await??;
        if let Err(e) = ready {
            let _ = child.kill();
            color_eyre::eyre::bail!("{flavor}: never ready: {e:#}: {}", stderr_of(&mut child));
        }
        std::fs::remove_file(&fx.postpone)?;
        let status = child.wait()?;
        ensure!(status.success(), "{flavor}: with the flag and no NULL the table is migrated: {}", stderr_of(&mut child));
        let (old, new) = (table_checksum(&mut c, "nk", "_t_del", &cols).await?, table_checksum(&mut c, "nk", "t", &cols).await?);
        ensure!(old == new, "{flavor}: the tables differ after {ops} writer operations: {old:?} vs {new:?}");
        ensure!(ops > 50, "{flavor}: the writer ran ({ops} operations)");

        // A NULL written while the run waits to cut over: the applier stops the run, the original serves.
        let fx = Fixture::new("nullable", "during", server.port)?;
        std::fs::write(&fx.postpone, b"")?;
        let mut child = postponed(&server, &fx, "t2").spawn()?;
        let rx = lines_of(&mut child)?;
        wait_for_line(&rx, "\"phase\":\"ready-to-cut-over\"", Duration::from_secs(120))?;
        c.query_drop("INSERT INTO nk.t2 (k, v) VALUES (NULL, 5)").await?;
        let status = child.wait()?;
        let stderr = stderr_of(&mut child);
        ensure!(!status.success(), "{flavor}: a NULL written during the run fails it: {stderr}");
        ensure!(stderr.contains("a row with a NULL in the key"), "{flavor}: the failure names the NULL: {stderr}");
        let cols_t2: Vec<String> = c.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'nk' AND TABLE_NAME = 't2' ORDER BY ORDINAL_POSITION").await?;
        ensure!(cols_t2 == ["k", "v"], "{flavor}: the original still serves unchanged: {cols_t2:?}");
        ensure!(!tables(&mut c).await?.contains(&"_t2_del".to_string()), "{flavor}: nothing was swapped");
        Ok(())
    })
    .await;
}
