//! The cut-over waits for a session that holds a lock on the original table instead of queueing a RENAME behind it
//! (issue 13.10): while it waits, the status names the blocker and the application's writes go through; once the
//! blocker ends, the cut-over completes with identical rows. Both flavours (MariaDB with its metadata_lock_info
//! plugin, which the test installs on its own sandbox: without it MariaDB cannot say who holds a table lock).
//! move-tables' fence (its RENAME on the source) waits the same way.

mod common;
mod move_support;

use std::time::{Duration, Instant};

use color_eyre::eyre::bail;
use common::{each_flavor, seed_app_table, table_checksum, test_config, wait_phase, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::pipeline::move_tables::{self, MoveOutcome};
use revenant::engine::EngineHandle;
use revenant::engine::{Command, Phase};
use revenant::sandbox::Flavor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cut_over_waits_for_a_lock_holder_and_names_it() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut admin = server.conn().await?;
        if flavor == Flavor::MariaDb {
            admin.query_drop("INSTALL SONAME 'metadata_lock_info'").await?;
        }
        seed_app_table(&server, "bl", 2000).await?;
        let (handle, join) = migrate::start(test_config(&server, "app", "bl", "ADD COLUMN c INT"));
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        // A transaction left open after reading the table: it holds a metadata lock until it ends.
        let mut blocker = server.conn().await?;
        blocker.query_drop("BEGIN").await?;
        let _: Vec<u64> = blocker.query("SELECT id FROM app.bl WHERE id = 1").await?;
        let blocker_id = blocker.id();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let reply = handle.send(Command::CutOver).await;
        assert!(reply.ok, "{}", reply.message);
        let named = blocker_named(&handle, blocker_id).await?;
        assert!(named.contains("has held a lock on bl"), "{named}");
        // No RENAME is queued: a write goes through at once (behind a queued RENAME it waits the lock timeout).
        let mut app = server.conn().await?;
        app.query_drop("SET SESSION lock_wait_timeout = 2").await?;
        for id in 10..20 {
            app.query_drop(format!("UPDATE app.bl SET a = a + 1 WHERE id = {id}")).await?;
        }
        assert_eq!(handle.status.borrow().phase, Some(Phase::CutOver), "the cut-over went ahead while the lock was held");
        blocker.query_drop("COMMIT").await?;
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
        let cols = ["id", "a", "b"];
        assert_eq!(table_checksum(&mut admin, "app", "_bl_del", &cols).await?, table_checksum(&mut admin, "app", "bl", &cols).await?);
        Ok(())
    })
    .await;
}

/// Waits until the status names connection `id` as what the cut-over waits for.
async fn blocker_named(handle: &EngineHandle, id: u32) -> color_eyre::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let why = handle.status.borrow().cutover.blocked_reason.clone().unwrap_or_default();
        if why.contains(&format!("connection {id} ")) {
            return Ok(why);
        }
        if Instant::now() > deadline {
            bail!("the status never named the blocker {id}: {why:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_move_tables_fence_waits_for_a_lock_holder() {
    each_flavor(|flavor| async move {
        let (source, target) = revenant::sandbox::two_servers(flavor).await?;
        if flavor == Flavor::MariaDb {
            source.conn().await?.query_drop("INSTALL SONAME 'metadata_lock_info'").await?;
        }
        move_support::seed(&source, &target, "fb", 500).await?;
        let (handle, join) = move_tables::start(move_support::move_config(&source, &target, "fb"));
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        let mut blocker = source.conn().await?;
        blocker.query_drop("BEGIN").await?;
        let _: Vec<u64> = blocker.query("SELECT id FROM fb.items WHERE id = 1").await?;
        let blocker_id = blocker.id();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let reply = handle.send(Command::CutOver).await;
        assert!(reply.ok, "{}", reply.message);
        let named = blocker_named(&handle, blocker_id).await?;
        assert!(named.contains("has held a lock on items"), "{named}");
        // Nothing is fenced or queued meanwhile: the source table takes writes at once.
        let mut app = source.conn().await?;
        app.query_drop("SET SESSION lock_wait_timeout = 2").await?;
        app.query_drop("UPDATE fb.orders SET a = a + 1 WHERE id = 2").await?;
        blocker.query_drop("COMMIT").await?;
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        assert!(matches!(outcome, MoveOutcome::Done { .. }), "{outcome:?}");
        move_support::verify_moved(&source, &target, "fb").await?;
        Ok(())
    })
    .await;
}
