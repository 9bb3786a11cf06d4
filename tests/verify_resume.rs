//! A verification interrupted part-way (the fail point `verify-after-progress` fails the run the first time the
//! verified prefix is recorded) continues on `--resume` after the recorded key instead of from zero, and
//! completes; for migrate and for move-tables. Its own test binary: the fail point is set in this process's environment, so the
//! two tests take turns.

mod common;
mod move_support;

use std::time::Duration;

use color_eyre::eyre::{bail, ensure};
use common::{each_flavor, seed_app_table, table_checksum, test_config, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate::{self, Outcome};

const ROWS: u32 = 30_000;

/// The fail point is in the process's environment: one test at a time.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_verification_continues_after_the_recorded_key() {
    let _turn = TURN.lock().await;
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "items", ROWS).await?;
        let mut cfg = test_config(&server, "app", "items", "ADD COLUMN c INT NOT NULL DEFAULT 3");
        cfg.run.postpone_cut_over = false;
        // Only this test runs in this binary: the fail point touches no other test.
        std::env::set_var("REVENANT_FAILPOINTS", "verify-after-progress");
        let first = tokio::time::timeout(Duration::from_secs(120), migrate::start(cfg.clone()).1).await??;
        std::env::remove_var("REVENANT_FAILPOINTS");
        match first {
            Err(e) => ensure!(format!("{e:#}").contains("fail point verify-after-progress"), "first run: {e:#}"),
            Ok(o) => bail!("the first run did not stop in the verification: {o:?}"),
        }
        let mut c = server.conn().await?;
        let key: Option<Option<String>> = c.query_first("SELECT copy_watermark FROM app._items_ghk WHERE id = 'verify'").await?;
        let key = key.flatten().unwrap_or_default();
        ensure!(key.starts_with('[') && key != "complete", "the verify row holds {key:?}");

        cfg.run.resume = true;
        let (handle, join) = migrate::start(cfg);
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "resumed run: {outcome:?}");
        let v = handle.snapshot().verify;
        ensure!(v.rows_verified > 0 && v.rows_verified < u64::from(ROWS), "the resumed pass compared {} rows of {ROWS}: {v:?}", v.rows_verified);
        ensure!(v.last_result.as_deref().is_some_and(|r| r.starts_with("identical")), "result {:?}", v.last_result);
        let old = table_checksum(&mut c, "app", "_items_del", &["id", "a", "b"]).await?;
        let new = table_checksum(&mut c, "app", "items", &["id", "a", "b"]).await?;
        ensure!(old == new && old.0 == u64::from(ROWS), "rows differ: {old:?} vs {new:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_move_verification_continues_after_the_recorded_key() {
    use revenant::engine::pipeline::move_tables::{self, MoveOutcome, CHECKPOINT_TABLE};
    const MOVE_ROWS: u64 = 6_000;
    let _turn = TURN.lock().await;
    each_flavor(|flavor| async move {
        let (source, target) = revenant::sandbox::two_servers(flavor).await?;
        let db = "shop";
        move_support::seed(&source, &target, db, MOVE_ROWS).await?;
        let mut cfg = move_support::move_config(&source, &target, db);
        // Verification chunks of 1,000 rows (the copy's chunks stay small): several, so the first is recorded before the last.
        cfg.run.chunk_size = 20;
        cfg.run.postpone_cut_over = false;
        std::env::set_var("REVENANT_FAILPOINTS", "verify-after-progress");
        let first = tokio::time::timeout(Duration::from_secs(120), move_tables::start(cfg.clone()).1).await??;
        std::env::remove_var("REVENANT_FAILPOINTS");
        match first {
            Err(e) => ensure!(format!("{e:#}").contains("fail point verify-after-progress") && format!("{e:#}").contains("before the fence"), "first run: {e:#}"),
            Ok(o) => bail!("the first move did not stop in the verification: {o:?}"),
        }
        let mut t = target.conn().await?;
        let key: Option<Option<String>> = t.query_first(format!("SELECT copy_watermark FROM {db}.{CHECKPOINT_TABLE} WHERE id = 'verify:orders'")).await?;
        let key = key.flatten().unwrap_or_default();
        ensure!(key.starts_with('[') && key != "complete", "the verify:orders row holds {key:?}");

        cfg.run.resume = true;
        let (handle, join) = move_tables::start(cfg);
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        ensure!(matches!(outcome, MoveOutcome::Done { .. }), "resumed move: {outcome:?}");
        let v = handle.snapshot().verify;
        ensure!(v.rows_verified > MOVE_ROWS && v.rows_verified < 2 * MOVE_ROWS, "the resumed pass compared {} rows of {}: {v:?}", v.rows_verified, 2 * MOVE_ROWS);
        ensure!(v.last_result.as_deref().is_some_and(|r| r.starts_with("identical")), "result {:?}", v.last_result);
        let counts = move_support::verify_moved(&source, &target, db).await?;
        ensure!(counts == vec![MOVE_ROWS, MOVE_ROWS], "moved {counts:?}");
        Ok(())
    })
    .await;
}
