//! gh-ost's `--revert --old-table` on every selected flavour: a migration run with `--checkpoint` keeps its
//! checkpoint table after the swap; the application writes to the migrated table; `--revert --old-table _t_del`
//! (the migration's own flags besides, as gh-ost's docs say) brings the old table up to date from the binary log,
//! under a writer, and swaps it back in: the table has its old structure again, the migrated one is kept as
//! `_t_rev_del`, and both hold the same rows over the shared columns; a revert killed -9 while it streams is
//! continued by `--resume`; gh-ost's documented revert lines run in replica mode. A second revert, a revert without a kept
//! checkpoint and bad flag pairs are refused, changing nothing; a revert that would cut a value fails before its
//! swap, the table as it is serving.

mod common;

use std::time::Duration;

use color_eyre::eyre::{bail, ensure, Result};
use common::follow::Lines;
use common::run::Fixture;
use common::{each_flavor, seed, stderr_of, table_checksum, Server, Writer};
use mysql_async::prelude::Queryable;

const ALTER: &str = "ADD COLUMN f INT NOT NULL DEFAULT 1";
const COLS: [&str; 5] = ["id", "a", "b", "c", "d"];
const VALUES: [&str; 4] = ["a", "b", "c", "d"];

async fn tables(server: &Server, db: &str) -> Result<Vec<String>> {
    let mut c = server.conn().await?;
    let mut t: Vec<String> = c.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (db,)).await?;
    t.sort();
    Ok(t)
}

async fn has_column(server: &Server, db: &str, table: &str, col: &str) -> Result<bool> {
    let mut c = server.conn().await?;
    let n: Option<u64> = c
        .exec_first("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?", (db, table, col))
        .await?;
    Ok(n == Some(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_with_checkpoint_is_reverted_under_a_writer() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server, "rv", 20_000).await?;
        let fx = Fixture::new("revert", "migrate", server.port)?;

        // Without a kept checkpoint there is nothing to revert from.
        let out = common::run::migrate(&server, "rv", &fx, false, &["--alter", ALTER, "--revert", "--old-table", "_t_del"]).output()?;
        ensure!(out.status.code() == Some(2), "a revert before any migration: {}", String::from_utf8_lossy(&out.stderr));
        ensure!(String::from_utf8_lossy(&out.stderr).contains("--checkpoint"), "the refusal names --checkpoint");

        let out = common::run::migrate(&server, "rv", &fx, false, &["--alter", ALTER, "--checkpoint"]).output()?;
        ensure!(out.status.success(), "the migration: {}", String::from_utf8_lossy(&out.stderr));
        ensure!(tables(&server, "rv").await? == ["_t_del", "_t_ghk", "t"], "after the migration: {:?}", tables(&server, "rv").await?);

        // The application writes to the migrated table (inserts, updates, deletes) before and during the revert.
        let writer = Writer::start(&server, "rv", "t", &VALUES, true).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let fx = Fixture::new("revert", "revert", server.port)?;
        let revert = ["--alter", ALTER, "--checkpoint", "--revert", "--old-table", "_t_del"];
        // The first revert is killed (abort, as kill -9) once it streams; the second, with --resume, continues it.
        let mut p = common::run::migrate(&server, "rv", &fx, true, &revert);
        let out = p.env("REVENANT_FAILPOINTS", "catchup-before-wait=exit").output()?;
        ensure!(!out.status.success(), "the killed revert: {}", String::from_utf8_lossy(&out.stderr));
        let again = common::run::migrate(&server, "rv", &fx, true, &revert).output()?;
        ensure!(again.status.code() == Some(2) && String::from_utf8_lossy(&again.stderr).contains("--resume"), "an interrupted revert asks for --resume");
        let mut child = common::run::migrate(&server, "rv", &fx, true, &[&revert[..], &["--resume"]].concat()).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        let ready = lines.wait(Duration::from_secs(120), "the revert ready to swap", |l| l.contains("\"phase\":\"ready-to-cut-over\""));
        let ops = writer.stop().await?;
        if let Err(e) = ready {
            let _ = child.kill();
            bail!("{e:#}\n{}", stderr_of(&mut child));
        }
        std::fs::remove_file(&fx.postpone)?;
        let status = child.wait()?;
        let stderr = stderr_of(&mut child);
        ensure!(status.success(), "the revert failed: {status}\n{stderr}");
        ensure!(String::from_utf8_lossy(&out.stderr).contains("nothing is copied"), "the revert streamed from the swap, copying nothing");
        ensure!(stderr.contains("re-copying 0 rows (the copy was complete)"), "the resumed revert copied nothing either:\n{stderr}");

        ensure!(tables(&server, "rv").await? == ["_t_ghk", "_t_rev_del", "t"], "after the revert: {:?}", tables(&server, "rv").await?);
        ensure!(!has_column(&server, "rv", "t", "f").await?, "t has its old structure again");
        ensure!(has_column(&server, "rv", "_t_rev_del", "f").await?, "the migrated table is kept as _t_rev_del");
        let mut c = server.conn().await?;
        let back = table_checksum(&mut c, "rv", "t", &COLS).await?;
        let migrated = table_checksum(&mut c, "rv", "_t_rev_del", &COLS).await?;
        ensure!(back == migrated, "rows differ after the revert ({ops} writer ops): {back:?} against {migrated:?}");
        ensure!(ops > 0 && back.0 > 15_000, "the writer ran ({ops} ops) and the rows are there ({back:?})");
        eprintln!("[{flavor}] reverted under {ops} writer ops: {} rows", back.0);

        // Reverted once: a second revert is refused and changes nothing.
        let out = common::run::migrate(&server, "rv", &fx, false, &["--alter", ALTER, "--revert", "--old-table", "_t_del"]).output()?;
        ensure!(out.status.code() == Some(2), "a second revert: {}", String::from_utf8_lossy(&out.stderr));
        ensure!(tables(&server, "rv").await? == ["_t_ghk", "_t_rev_del", "t"], "the refused revert changed nothing");
        Ok(())
    })
    .await;
}

#[test]
fn revert_and_old_table_go_together() {
    for (args, needle) in [(&["--revert"][..], "--revert needs --old-table"), (&["--old-table", "_t_del"][..], "--old-table is used only with --revert")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_revenant"))
            .args(["migrate", "--host", "127.0.0.1", "--port", "1", "--user", "root", "--database", "d", "--table", "t", "--alter", ALTER])
            .args(args)
            .output()
            .expect("revenant runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle) && !stderr.contains("cannot connect"), "{args:?}: {stderr}");
    }
}

/// gh-ost's documented revert (its revert page), in replica mode: `--host` a replica, `--gtid --checkpoint
/// --checkpoint-seconds=60`, `--alter "drop key ..."`; then the same line with `--old-table ... --revert`. The
/// table gets its key back on the primary, with every row written in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gh_osts_documented_revert_runs_in_replica_mode() {
    each_flavor(|flavor| async move {
        let (primary, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = replicas.remove(0);
        seed(&primary, "doc", 5_000).await?;
        revenant::sandbox::wait_caught_up(&replica, &primary, Duration::from_secs(60)).await?;
        let fx = Fixture::new("revert", "doc", replica.port)?;
        let line = ["--chunk-size=100", "--alter=drop key a", "--gtid", "--checkpoint", "--checkpoint-seconds=60"];
        let out = common::run::migrate(&replica, "doc", &fx, false, &line).output()?;
        ensure!(out.status.success(), "the migration: {}", String::from_utf8_lossy(&out.stderr));
        let writer = Writer::start(&primary, "doc", "t", &VALUES, true).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let ops = writer.stop().await?;
        let out = common::run::migrate(&replica, "doc", &fx, false, &[&line[..], &["--old-table=_t_del", "--revert"]].concat()).output()?;
        ensure!(out.status.success(), "the revert: {}", String::from_utf8_lossy(&out.stderr));
        let mut c = primary.conn().await?;
        let keys: Option<u64> = c.query_first("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'doc' AND TABLE_NAME = 't' AND INDEX_NAME = 'a'").await?;
        ensure!(keys == Some(1), "t has its key back");
        let (back, migrated) = (table_checksum(&mut c, "doc", "t", &COLS).await?, table_checksum(&mut c, "doc", "_t_rev_del", &COLS).await?);
        ensure!(back == migrated && back.0 >= 5_000, "rows differ after the revert ({ops} writer ops): {back:?} {migrated:?}");
        Ok(())
    })
    .await;
}

/// A revert that would lose data fails before its cut-over, the table as it is serving: the migration widened a
/// column, a longer value was written since, and the old structure cannot hold it (strict mode).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_that_would_truncate_a_value_fails_before_the_swap() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server, "tr", 3_000).await?;
        let fx = Fixture::new("revert", "truncate", server.port)?;
        let widen = ["--alter", "MODIFY b VARCHAR(200)", "--checkpoint"];
        let out = common::run::migrate(&server, "tr", &fx, false, &widen).output()?;
        ensure!(out.status.success(), "the migration: {}", String::from_utf8_lossy(&out.stderr));
        let long = "x".repeat(150);
        server.conn().await?.exec_drop("INSERT INTO tr.t (a, b) VALUES (-1, ?)", (&long,)).await?;
        let out = common::run::migrate(&server, "tr", &fx, false, &[&widen[..], &["--revert", "--old-table", "_t_del"]].concat()).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success() && stderr.to_lowercase().contains("too long"), "the revert must fail on the long value: {stderr}");
        ensure!(tables(&server, "tr").await? == ["_t_del", "_t_ghc", "_t_ghk", "t"], "nothing swapped: {:?}", tables(&server, "tr").await?);
        let kept: Option<u64> = server.conn().await?.exec_first("SELECT COUNT(*) FROM tr.t WHERE b = ?", (&long,)).await?;
        ensure!(kept == Some(1), "the table as it is still holds the long value");
        Ok(())
    })
    .await;
}
