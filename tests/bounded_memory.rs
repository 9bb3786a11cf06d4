//! Bounded memory (issue 13.8) on real servers: a source transaction of 200,000 row changes is applied in parts
//! while the cut-over waits (XA transactions as heavy stay whole), a kill between two parts of one transaction
//! resumes to identical tables, and a DELETE past the delete log's bound while the copy is throttled overflows the
//! log to locking reads and still ends identical. The oracle: `_t_del` (the original after the swap) and the new
//! table hold the same rows. Memory itself is measured by scripts/bench-memory, never asserted here.

mod common;

use std::process::{Child, Command as Proc};
use std::time::Duration;

use color_eyre::eyre::{bail, Result};
use common::run::Fixture;
use common::{each_flavor, exec_all, finish_after_ready, stderr_of, table_checksum, test_config, wait_phase, Flavor, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate;
use revenant::engine::stream::binlog::current_position;
use revenant::engine::stream::gtid::GtidSet;
use revenant::engine::Phase;

const ROWS: u32 = 200_000;
const ALTER: &str = "ADD COLUMN f INT NOT NULL DEFAULT 1";

/// The source's executed GTID set now.
async fn executed(server: &Server) -> Result<GtidSet> {
    let mariadb = server.flavor == Flavor::MariaDb;
    let p = current_position(&mut server.conn().await?, mariadb).await?;
    GtidSet::parse(mariadb, &p.gtid_set)
}

/// Waits until the applier's published position covers `want`.
async fn wait_applied(handle: &revenant::engine::EngineHandle, mariadb: bool, want: &GtidSet, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let applied = handle.status.borrow().binlog.applied_gtid_set.clone();
        if GtidSet::parse(mariadb, &applied).is_ok_and(|a| a.contains(want)) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the applier did not reach {want} within {timeout:?} (at {applied})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn assert_identical(server: &Server, what: &str) -> Result<()> {
    let mut c = server.conn().await?;
    let old = table_checksum(&mut c, "app", "_t_del", &["id", "a", "b"]).await?;
    let new = table_checksum(&mut c, "app", "t", &["id", "a", "b"]).await?;
    assert_eq!(old, new, "[{}] {what}: rows differ between _t_del and t", server.flavor);
    assert!(old.0 > 0, "[{}] {what}: the table is empty: the test proves nothing", server.flavor);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200000_row_transaction_is_applied_in_parts_and_the_cut_over_ends_identical() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        common::seed_app_table(&server, "t", ROWS).await?;
        let mut cfg = test_config(&server, "app", "t", ALTER);
        cfg.run.chunk_size = 10_000;
        let (handle, join) = migrate::start(cfg);
        let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(300)).await;
        if ready.is_err() {
            return finish_after_ready(&handle, join, ready).await;
        }
        let mut c = server.conn().await?;
        // XA transactions far past the part budget stay whole: one rolled back (none of its rows may reach the
        // ghost), one committed.
        exec_all(&mut c, "XA START 'big1';\nUPDATE app.t SET b = CONCAT(b, '-rolled-back') WHERE id <= 50000;\nXA END 'big1';\nXA PREPARE 'big1';\nXA ROLLBACK 'big1'").await?;
        exec_all(&mut c, "XA START 'big2';\nUPDATE app.t SET a = a + 1 WHERE id <= 50000;\nXA END 'big2';\nXA PREPARE 'big2';\nXA COMMIT 'big2'").await?;
        // One transaction of 200,000 row changes, then one of deletes, a SAVEPOINT and key-changing updates.
        c.query_drop("UPDATE app.t SET b = CONCAT(b, 'x')").await?;
        exec_all(&mut c, "BEGIN;\nDELETE FROM app.t WHERE id % 7 = 0;\nSAVEPOINT s;\nUPDATE app.t SET id = id + 1000000 WHERE id > 150000;\nCOMMIT").await?;
        let want = executed(&server).await?;
        let applied = wait_applied(&handle, flavor == Flavor::MariaDb, &want, Duration::from_secs(300)).await;
        finish_after_ready(&handle, join, applied).await?;
        assert_identical(&server, "after the heavy transactions and the cut-over").await
    })
    .await;
}

/// The migration binary on app.t, status JSON on stdout; `postponed`: the cut-over waits while `fx.postpone` exists
/// (revenant creates the file when it is missing).
fn revenant(server: &Server, fx: &Fixture, postponed: bool, extra: &[&str]) -> Proc {
    common::run::migrate(server, "app", fx, postponed, &[&["--alter", ALTER, "--chunk-size", "5000", "--default-retries", "3"], extra].concat())
}

#[cfg(feature = "failpoints")]
use common::run::{lines_of, wait_for_line};

/// Waits for the child to end; kills it after `timeout`.
fn wait_exit(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            bail!("revenant did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The process is killed before the commit of the third target transaction that ends inside the UPDATE's
/// transaction: two parts are committed on the ghost, the `apply` row still holds the position before the UPDATE,
/// and the resume applies the whole transaction again.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_two_parts_of_one_transaction_resumes_to_identical_tables() {
    each_flavor(|flavor| async move {
        let mariadb = flavor == Flavor::MariaDb;
        let server = Server::start(flavor).await?;
        common::seed_app_table(&server, "t", ROWS).await?;
        let fx = Fixture::new("mem", "kill", server.port)?;
        let mut cmd = revenant(&server, &fx, true, &[]);
        cmd.env("REVENANT_FAILPOINTS", "apply-part-before-commit=exit@3");
        let mut child = cmd.spawn()?;
        let lines = lines_of(&mut child)?;
        if let Err(e) = wait_for_line(&lines, "\"phase\":\"ready-to-cut-over\"", Duration::from_secs(300)) {
            let _ = child.kill();
            bail!("[{flavor}] {e}: {}", stderr_of(&mut child));
        }
        let mut c = server.conn().await?;
        c.query_drop("UPDATE app.t SET b = CONCAT(b, 'x')").await?;
        let update = executed(&server).await?;
        let status = wait_exit(&mut child, Duration::from_secs(120))?;
        assert!(!status.success(), "[{flavor}] the run ended cleanly instead of at the fail point");
        let in_ghost: Option<u64> = c.query_first("SELECT COUNT(*) FROM app._t_gho WHERE b LIKE '%x'").await?;
        let in_ghost = in_ghost.unwrap_or(0);
        assert!(in_ghost > 0 && in_ghost < u64::from(ROWS), "[{flavor}] two parts of the UPDATE committed, not all of it: {in_ghost} rows");
        let applied: Option<String> = c.query_first("SELECT applied_gtid_set FROM app._t_ghk WHERE id = 'apply'").await?;
        let applied = GtidSet::parse(mariadb, &applied.unwrap_or_default())?;
        assert!(!applied.contains(&update), "[{flavor}] the apply row {applied} covers the half-applied UPDATE ({update})");
        let out = revenant(&server, &fx, false, &["--resume"]).output()?;
        assert!(out.status.success(), "[{flavor}] resume failed: {}", String::from_utf8_lossy(&out.stderr));
        assert_identical(&server, "after the kill between two parts and the resume").await
    })
    .await;
}

/// The copy is throttled from the start; a DELETE of 180,000 rows in one transaction records more keys than the
/// delete log holds: it overflows, the copy goes on under shared locks once the throttle is lifted, and the tables
/// end identical.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_past_the_delete_logs_bound_while_the_copy_is_throttled_ends_identical() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        common::seed_app_table(&server, "t", ROWS).await?;
        let fx = Fixture::new("mem", "delete", server.port)?;
        std::fs::write(&fx.throttle, b"")?;
        let throttle = format!("--throttle-flag-file={}", fx.throttle.display());
        let mut child = revenant(&server, &fx, true, &[&throttle]).spawn()?;
        let lines = lines_of(&mut child)?;
        if let Err(e) = wait_for_line(&lines, "\"throttled\":true", Duration::from_secs(120)) {
            let _ = child.kill();
            bail!("[{flavor}] {e}: {}", stderr_of(&mut child));
        }
        let mut c = server.conn().await?;
        c.query_drop("DELETE FROM app.t WHERE id > 20000").await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !fx.trace_text().contains("delete-log-overflow") {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                bail!("[{flavor}] the delete log never overflowed: {}", stderr_of(&mut child));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::fs::remove_file(&fx.throttle)?;
        c.query_drop("UPDATE app.t SET a = a + 1 WHERE id % 3 = 0").await?;
        wait_for_line(&lines, "\"phase\":\"ready-to-cut-over\"", Duration::from_secs(300))?;
        std::fs::remove_file(&fx.postpone)?;
        let status = wait_exit(&mut child, Duration::from_secs(120))?;
        assert!(status.success(), "[{flavor}] the run failed: {}", stderr_of(&mut child));
        assert_identical(&server, "after the delete log overflowed").await?;
        drop(lines);
        Ok(())
    })
    .await;
}
