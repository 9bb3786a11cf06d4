//! Figures for docs/benchmarks.md (ignored by default; scripts/bench-verify runs it): the verification's time as
//! a share of the copy's on a seeded table (BENCH_VERIFY_ROWS, 1,000,000), and the verification lock's length
//! against the cut-over's stall. One flavour per run (REVENANT_TEST_FLAVORS). Measurement only.

mod common;

use std::time::Duration;

use color_eyre::eyre::ensure;
use common::{each_flavor, seed_app_table, test_config, Server};
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::Phase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-verify"]
async fn verification_share_of_the_copy() {
    each_flavor(|flavor| async move {
        let rows: u32 = std::env::var("BENCH_VERIFY_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "items", rows).await?;
        let mut cfg = test_config(&server, "app", "items", "ADD COLUMN f INT");
        cfg.run.chunk_size = 1000;
        cfg.run.postpone_cut_over = false;
        let (handle, join) = migrate::start(cfg);
        let outcome = tokio::time::timeout(Duration::from_secs(7200), join).await???;
        let Outcome::Done { stall_ms, .. } = outcome else { color_eyre::eyre::bail!("outcome {outcome:?}") };
        let s = handle.snapshot();
        let secs = |p: Phase| s.phase_seconds.iter().filter(|(q, _)| *q == p).map(|(_, t)| t).sum::<f64>();
        let (copy, verify) = (secs(Phase::Copy), secs(Phase::Verify));
        ensure!(verify > 0.0, "no verify phase: {:?}", s.phase_seconds);
        println!(
            "BENCH {flavor} rows={rows} copy_s={copy:.2} verify_s={verify:.2} share={:.1}% verify_lock_ms={} cutover_stall_ms={stall_ms} result={:?}",
            100.0 * verify / copy.max(0.001),
            s.verify.last_lock_ms.unwrap_or(0),
            s.verify.last_result
        );
        Ok(())
    })
    .await;
}
