//! The verification before the cut-over, on every selected flavour: a ghost damaged on purpose while the cut-over
//! waits (rows deleted, changed and added in the ghost) is repaired by `verify` and the migration completes with
//! identical tables; a damage that comes back on every repair (a trigger on the ghost) fails the run before the
//! cut-over, naming the key range, with the original serving and the ghost kept; `--checksum=false` skips it.

mod common;

use std::time::Duration;

use color_eyre::eyre::{bail, ensure, Result};
use common::{each_flavor, seed_app_table, table_checksum, test_config, wait_phase, Server, Writer};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::{Command, EngineHandle, Phase, Status};

const COLS: &[&str] = &["id", "a", "b"];
const ALTER: &str = "MODIFY a BIGINT, MODIFY b VARCHAR(100), ADD COLUMN c INT NOT NULL DEFAULT 3";

async fn wait_for(handle: &EngineHandle, what: &str, pred: impl Fn(&Status) -> bool) -> Result<Status> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let s = handle.snapshot();
        if pred(&s) {
            return Ok(s);
        }
        if s.phase.is_some_and(|p| p.is_terminal()) || tokio::time::Instant::now() > deadline {
            bail!("gave up waiting for {what}: phase {:?}, verify {:?}, message {:?}", s.phase, s.verify, s.message);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes, changes and adds rows in the ghost behind the migration's back.
async fn damage(c: &mut mysql_async::Conn) -> Result<()> {
    c.query_drop("DELETE FROM app._items_gho WHERE id IN (3, 400, 1999)").await?;
    c.query_drop("UPDATE app._items_gho SET b = 'damaged' WHERE id IN (10, 1500)").await?;
    c.query_drop("UPDATE app._items_gho SET a = NULL WHERE id = 11").await?;
    c.query_drop("INSERT INTO app._items_gho (id, a, b, c) VALUES (900000000, 1, 'only in the ghost', 3)").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_ghost_is_repaired_by_verify_and_the_migration_completes_identical() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "items", 3000).await?;
        let writer = Writer::start(&server, "app", "items", &["a", "b"], true).await?;
        let (handle, join) = migrate::start(test_config(&server, "app", "items", ALTER));
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        let s = handle.snapshot();
        ensure!(s.phase_seconds.iter().any(|(p, _)| *p == Phase::Verify), "no verify phase: {:?}", s.phase_seconds);
        let first = s.verify.last_result.clone().unwrap_or_default();
        ensure!(first.starts_with("identical"), "first verification: {first:?}");
        ensure!(s.verify.last_lock_ms.is_some(), "the lock's length was not measured");

        // Damage while the writer still runs and the cut-over waits; `verify` repairs it.
        let mut c = server.conn().await?;
        damage(&mut c).await?;
        let ended_before = s.verify.last_ended_unix;
        let reply = handle.send(Command::Verify).await;
        ensure!(reply.ok, "verify refused: {}", reply.message);
        let s = wait_for(&handle, "the re-verification", |s| {
            s.phase == Some(Phase::ReadyToCutOver) && !s.verify.running && s.verify.last_result.as_deref() != Some(first.as_str())
        })
        .await?;
        let found = s.verify.last_result.clone().unwrap_or_default();
        ensure!(found.starts_with("identical after repairing"), "re-verification found: {found:?}");
        ensure!(s.verify.last_ended_unix >= ended_before, "last verification time did not move");
        writer.stop().await?;

        ensure!(handle.send(Command::CutOver).await.ok, "cut-over refused");
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "outcome {outcome:?}");
        let old = table_checksum(&mut c, "app", "_items_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "items", COLS).await?;
        ensure!(old == new && old.0 > 0, "rows differ after the repair: old {old:?}, new {new:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damage_that_comes_back_fails_before_the_cut_over_naming_the_key_range() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "items", 2000).await?;
        let mut c = server.conn().await?;
        let before = table_checksum(&mut c, "app", "items", COLS).await?;
        let (handle, join) = migrate::start(test_config(&server, "app", "items", ALTER));
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        // Every copy of row 7 into the ghost, the repair's included, is changed again by a trigger.
        c.query_drop("CREATE TRIGGER app.items_gho_damage BEFORE INSERT ON app._items_gho FOR EACH ROW SET NEW.b = IF(NEW.id = 7, 'damaged', NEW.b)").await?;
        c.query_drop("UPDATE app._items_gho SET b = 'damaged' WHERE id = 7").await?;
        ensure!(handle.send(Command::Verify).await.ok, "verify refused");
        let result = tokio::time::timeout(Duration::from_secs(120), join).await??;
        let err = match result {
            Ok(o) => bail!("the migration went on: {o:?}"),
            Err(e) => format!("{e:#}"),
        };
        ensure!(err.contains("still differs") && err.contains("key range (") && err.contains("7 differs"), "message: {err}");
        ensure!(handle.snapshot().phase == Some(Phase::Failed), "phase {:?}", handle.snapshot().phase);
        // The original serves, untouched; the ghost is kept.
        let after = table_checksum(&mut c, "app", "items", COLS).await?;
        ensure!(after == before, "the original changed: {before:?} -> {after:?}");
        let ghost: Option<u64> = c.query_first("SELECT COUNT(*) FROM app._items_gho").await?;
        ensure!(ghost == Some(2000), "the ghost: {ghost:?}");
        let del: Option<String> = c.query_first("SELECT table_name FROM information_schema.tables WHERE table_schema = 'app' AND table_name = '_items_del'").await?;
        ensure!(del.is_none(), "a cut-over was attempted: {del:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_false_skips_the_verification() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "items", 1000).await?;
        let mut cfg = test_config(&server, "app", "items", ALTER);
        cfg.checksum = false;
        let (handle, join) = migrate::start(cfg);
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        let s = handle.snapshot();
        ensure!(!s.verify.enabled && s.verify.last_result.is_none(), "verify status: {:?}", s.verify);
        ensure!(!s.phase_seconds.iter().any(|(p, _)| *p == Phase::Verify), "a verify phase ran: {:?}", s.phase_seconds);
        let reply = handle.send(Command::Verify).await;
        ensure!(!reply.ok, "verify accepted with --checksum=false: {}", reply.message);
        ensure!(handle.send(Command::CutOver).await.ok, "cut-over refused");
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "outcome {outcome:?}");
        let mut c = server.conn().await?;
        let old = table_checksum(&mut c, "app", "_items_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "items", COLS).await?;
        ensure!(old == new && old.0 == 1000, "rows differ: old {old:?}, new {new:?}");
        Ok(())
    })
    .await;
}
