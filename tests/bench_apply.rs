//! Figures for docs/benchmarks.md (ignored by default; scripts/bench-apply runs it): how fast the applier drains a
//! burst of row events. A seeded table is copied and the migration waits at the ready phase with the applier
//! paused; a burst of UPDATEs (BENCH_APPLY_EVENTS row events, 10,000 rows a transaction) goes into the binary
//! log; then the applier is let go and timed until it has applied them all (stream, decode, batch, apply,
//! checkpoint: the whole path). One flavour per run (REVENANT_TEST_FLAVORS). Measurement only: the one check is
//! the oracle after the cut-over, so a fast figure from a wrong result is not printed.

mod common;

use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, ensure, Result};
use common::{each_flavor, seed_app_table, table_checksum, test_config, wait_phase, Flavor, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::{Command, EngineHandle, Phase};
use tokio::task::JoinHandle;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The applier's writer connections (BENCH_APPLY_THREADS, 1).
fn writers() -> usize {
    usize::try_from(env_u64("BENCH_APPLY_THREADS", 1)).unwrap_or(1).max(1)
}

/// UPDATEs over the whole table, 10,000 rows a transaction, until `events` rows were changed.
async fn burst(server: &Server, rows: u64, events: u64) -> Result<u64> {
    let mut c = server.conn().await?;
    let mut done = 0;
    while done < events {
        let lo = done % rows + 1;
        let hi = (lo + 9_999).min(rows);
        c.query_drop(format!("UPDATE app.items SET a = a + 1 WHERE id BETWEEN {lo} AND {hi}")).await?;
        done += c.affected_rows();
    }
    Ok(done)
}

/// A server with `app.items` of `rows` rows, its migration (`ADD COLUMN f INT`, chunks of 1000) started.
async fn seeded_migration(flavor: Flavor, rows: u64) -> Result<(Server, EngineHandle, JoinHandle<Result<Outcome>>)> {
    let server = Server::start(flavor).await?;
    seed_app_table(&server, "items", u32::try_from(rows)?).await?;
    let mut cfg = test_config(&server, "app", "items", "ADD COLUMN f INT");
    cfg.run.chunk_size = 1000;
    cfg.run.apply_threads = writers();
    let (handle, join) = migrate::start(cfg);
    Ok((server, handle, join))
}

/// Approves the cut-over, waits for the run to end, and checks the oracle: a fast figure from a wrong result is
/// never printed.
async fn cut_over_and_compare(server: &Server, handle: &EngineHandle, join: JoinHandle<Result<Outcome>>) -> Result<()> {
    let reply = handle.send(Command::CutOver).await;
    ensure!(reply.ok, "cut-over refused: {}", reply.message);
    let outcome = tokio::time::timeout(Duration::from_secs(600), join).await???;
    ensure!(matches!(outcome, Outcome::Done { .. }), "outcome {outcome:?}");
    let mut c = server.conn().await?;
    let cols = ["id", "a", "b"];
    let (old, new) = (table_checksum(&mut c, "app", "_items_del", &cols).await?, table_checksum(&mut c, "app", "items", &cols).await?);
    ensure!(old == new, "the tables differ after the burst: {old:?} vs {new:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-apply"]
async fn applier_drain_rate() {
    each_flavor(|flavor| async move {
        let (rows, events) = (env_u64("BENCH_APPLY_ROWS", 200_000), env_u64("BENCH_APPLY_EVENTS", 500_000));
        let (server, handle, join) = seeded_migration(flavor, rows).await?;
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(600)).await?;
        ensure!(handle.send(Command::Pause).await.ok, "pause refused");
        let before = handle.snapshot().binlog.events_applied;
        let t = Instant::now();
        let changed = burst(&server, rows, events).await?;
        let burst_s = t.elapsed().as_secs_f64();
        let goal = before + changed;
        let start = Instant::now();
        ensure!(handle.send(Command::Resume).await.ok, "resume refused");
        let deadline = start + Duration::from_secs(1800);
        let mut peak_backlog = 0;
        loop {
            let s = handle.snapshot();
            peak_backlog = peak_backlog.max(s.binlog.backlog);
            if s.binlog.events_applied >= goal && s.binlog.backlog == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("not drained within 30 min: {} of {goal} applied", s.binlog.events_applied);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drain_s = start.elapsed().as_secs_f64();
        cut_over_and_compare(&server, &handle, join).await?;
        println!(
            "BENCH {flavor} writers={} rows={rows} events={changed} burst_s={burst_s:.2} drain_s={drain_s:.2} events_per_s={:.0} server_events_per_s={:.0} peak_backlog={peak_backlog}",
            writers(),
            changed as f64 / drain_s.max(0.001),
            changed as f64 / burst_s.max(0.001)
        );
        Ok(())
    })
    .await;
}

/// The applier's rate while the copy runs: a table of BENCH_APPLY_COPY_ROWS (1,000,000) rows is migrated while a
/// burst of UPDATEs (BENCH_APPLY_EVENTS row events) is written from its start; the status is sampled every 100 ms
/// and the rate of events applied is taken over the samples in the copy phase after the first event was applied.
/// Printed beside the copy's own rate in the same window (both compete for this machine's two cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-apply"]
async fn applier_rate_while_copying() {
    each_flavor(|flavor| async move {
        let (rows, events) = (env_u64("BENCH_APPLY_COPY_ROWS", 1_000_000), env_u64("BENCH_APPLY_EVENTS", 500_000));
        let (server, handle, join) = seeded_migration(flavor, rows).await?;
        wait_phase(&handle, Phase::Copy, Duration::from_secs(120)).await?;
        // (seconds, events applied, rows copied) while in the copy phase, from the first applied event on.
        let sampling = async {
            let t0 = Instant::now();
            let mut samples: Vec<(f64, u64, u64)> = Vec::new();
            let mut peak_backlog = 0;
            loop {
                let s = handle.snapshot();
                if s.phase != Some(Phase::Copy) {
                    return Ok::<_, color_eyre::eyre::Report>((samples, peak_backlog));
                }
                if s.binlog.events_applied > 0 {
                    samples.push((t0.elapsed().as_secs_f64(), s.binlog.events_applied, s.copy.rows_copied));
                    peak_backlog = peak_backlog.max(s.binlog.backlog);
                }
                if t0.elapsed() > Duration::from_secs(1800) {
                    bail!("the copy did not end within 30 min");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let (changed, samples) = tokio::join!(burst(&server, rows, events), sampling);
        let (changed, (samples, peak_backlog)) = (changed?, samples?);
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(1800)).await?;
        cut_over_and_compare(&server, &handle, join).await?;
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else { bail!("no event was applied during the copy") };
        let dt = (last.0 - first.0).max(0.001);
        println!(
            "BENCH {flavor} while-copying writers={} rows={rows} events={changed} window_s={dt:.2} applied_in_window={} events_per_s={:.0} copy_rows_per_s={:.0} peak_backlog={peak_backlog}",
            writers(),
            last.1 - first.1,
            (last.1 - first.1) as f64 / dt,
            (last.2 - first.2) as f64 / dt
        );
        Ok(())
    })
    .await;
}
