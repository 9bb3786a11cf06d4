//! gh-ost's `--timestamp-old-table` on both flavours: the original is renamed to `_t_<YYYYMMDDhhmmss>_del`, the
//! name the run fixed when it started; a two-step cut-over that crashed between its renames is finished by a
//! `--resume` (given without the flag, a second later) under that same name, with the rows identical.

mod common;

use std::process::{Command as Proc, Stdio};
use std::time::Duration;

use color_eyre::eyre::{ensure, Result};
use common::{each_flavor, seed_app_table, table_checksum, Server};
use mysql_async::prelude::Queryable;

fn revenant(server: &Server, table: &str, extra: &[&str]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--database", "app"])
        .args(["--table", table, "--alter", "ADD COLUMN f INT", "--execute", "--headless", "--default-retries", "2"])
        .arg(format!("--serve-socket-file=/tmp/revenant-oldname-{}-{table}.sock", server.port))
        .args(extra)
        .env_remove("REVENANT_FAILPOINTS")
        .stdin(Stdio::null());
    p
}

/// The tables of `app` whose names start with `prefix`.
async fn tables_like(c: &mut mysql_async::Conn, prefix: &str) -> Result<Vec<String>> {
    let names: Vec<String> = c.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME LIKE ?", (format!("{prefix}%"),)).await?;
    Ok(names)
}

/// `_<table>_<14 digits>_del`?
fn is_timestamped(name: &str, table: &str) -> bool {
    let Some(stamp) = name.strip_prefix(&format!("_{table}_")).and_then(|r| r.strip_suffix("_del")) else { return false };
    stamp.len() == 14 && stamp.chars().all(|c| c.is_ascii_digit())
}

async fn same_rows(c: &mut mysql_async::Conn, a: &str, b: &str) -> Result<()> {
    let cols = ["id", "a", "b"];
    let (x, y) = (table_checksum(c, "app", a, &cols).await?, table_checksum(c, "app", b, &cols).await?);
    ensure!(x == y && x.0 > 0, "{a} {x:?} and {b} {y:?} differ");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_table_carries_the_start_time_and_a_resume_keeps_the_name() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        // A plain run: the original is kept under the timestamped name, and the run says so.
        seed_app_table(&server, "plain", 2000).await?;
        let out = revenant(&server, "plain", &["--timestamp-old-table"]).output()?;
        let err = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success(), "the run failed: {err}");
        let old = tables_like(&mut c, "_plain_").await?;
        ensure!(old.len() == 1 && is_timestamped(&old[0], "plain"), "old tables after the run: {old:?}");
        ensure!(err.contains(&old[0]), "the run does not name {}: {err}", old[0]);
        same_rows(&mut c, &old[0], "plain").await?;
        // Two-step, stopped right after `RENAME t TO _t_<stamp>_del`: no table has the original's name.
        seed_app_table(&server, "two", 2000).await?;
        let mut first = revenant(&server, "two", &["--timestamp-old-table", "--cut-over", "two-step"]);
        first.env("REVENANT_FAILPOINTS", "cutover-two-step-after-first-rename=exit");
        ensure!(!first.output()?.status.success(), "the fail point did not stop the run");
        let old = tables_like(&mut c, "_two_").await?;
        let renamed: Vec<&String> = old.iter().filter(|n| n.ends_with("_del")).collect();
        ensure!(renamed.len() == 1 && is_timestamped(renamed[0], "two"), "tables after the crash: {old:?}");
        ensure!(tables_like(&mut c, "two").await?.is_empty(), "the original's name should be free after the first rename");
        // A second later (a new stamp would differ), resumed without the flag: the checkpoint's name is used.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let out = revenant(&server, "two", &["--resume", "--cut-over", "two-step"]).output()?;
        ensure!(out.status.success(), "the resume failed: {}", String::from_utf8_lossy(&out.stderr));
        let after = tables_like(&mut c, "_two_").await?;
        ensure!(after.iter().filter(|n| n.ends_with("_del")).collect::<Vec<_>>() == renamed, "old tables after the resume: {after:?} (before: {renamed:?})");
        same_rows(&mut c, renamed[0], "two").await?;
        // A table name too long for the stamp is refused before anything changes.
        let long = "t".repeat(50);
        c.query_drop(format!("CREATE TABLE app.{long} (id INT PRIMARY KEY)")).await?;
        let out = revenant(&server, &long, &["--timestamp-old-table"]).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success() && err.contains("longer than the server's 64 characters") && err.contains("--force-table-names"), "{err}");
        ensure!(tables_like(&mut c, &format!("_{long}")).await?.is_empty(), "a helper table was created: {err}");
        Ok(())
    })
    .await;
}
