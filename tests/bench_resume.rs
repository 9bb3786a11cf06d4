//! Figures for docs/benchmarks.md (ignored by default; scripts/bench-resume runs it): what a kill -9 in the middle
//! of the copy costs. Two identical seeded tables on one sandbox server; the first is migrated uninterrupted, the
//! second is killed with SIGKILL once half its rows are copied (read from the checkpoint rows) and resumed with
//! `--resume`; the ratio of the killed run's total (start to end of the resume, the restart included) to the
//! uninterrupted run's is printed. One flavour per run (REVENANT_TEST_FLAVORS). Measurement only: the one check
//! is the oracle after the cut-over, so a figure from a wrong result is not printed.

mod common;

use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, ensure, Result};
use common::run::{migrate, Fixture};
use common::{each_flavor, seed, stderr_of, table_checksum, Server};
use mysql_async::prelude::Queryable;

const ALTER: &str = "ADD COLUMN f INT";
const COLUMNS: [&str; 5] = ["id", "a", "b", "c", "d"];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs a migration of `db.t` to its end; returns its wall time.
fn uninterrupted(server: &Server, db: &str) -> Result<f64> {
    let fx = Fixture::new("bench-resume", db, server.port)?;
    let t = Instant::now();
    let mut child = migrate(server, db, &fx, false, &["--alter", ALTER]).stdout(std::process::Stdio::null()).spawn()?;
    let status = child.wait()?;
    ensure!(status.success(), "the uninterrupted run failed: {}", stderr_of(&mut child));
    Ok(t.elapsed().as_secs_f64())
}

/// Rows the checkpoint says are copied (0 while it does not exist yet).
async fn copied(server: &Server, db: &str) -> u64 {
    let Ok(mut c) = server.conn().await else { return 0 };
    let q = format!("SELECT CAST(COALESCE(SUM(rows_copied), 0) AS UNSIGNED) FROM {db}._t_ghk WHERE id LIKE 'copy%'");
    c.query_first::<u64, _>(q).await.ok().flatten().unwrap_or(0)
}

/// Runs a migration of `db.t`, kills it with SIGKILL once `at` rows are copied, resumes it to its end; returns
/// (total wall time, rows copied when killed).
async fn killed_and_resumed(server: &Server, db: &str, at: u64) -> Result<(f64, u64)> {
    let fx = Fixture::new("bench-resume", db, server.port)?;
    let t = Instant::now();
    let mut first = migrate(server, db, &fx, false, &["--alter", ALTER]).stdout(std::process::Stdio::null()).spawn()?;
    let killed_at = loop {
        let n = copied(server, db).await;
        if n >= at {
            break n;
        }
        if let Some(status) = first.try_wait()? {
            bail!("the run ended ({status}) before {at} rows were copied: {}", stderr_of(&mut first));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.kill()?;
    first.wait()?;
    let mut resumed = migrate(server, db, &fx, false, &["--alter", ALTER, "--resume"]).stdout(std::process::Stdio::null()).spawn()?;
    let status = resumed.wait()?;
    ensure!(status.success(), "the resumed run failed: {}", stderr_of(&mut resumed));
    Ok((t.elapsed().as_secs_f64(), killed_at))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-resume"]
async fn kill_and_resume_cost() {
    each_flavor(|flavor| async move {
        let rows = env_u64("BENCH_RESUME_ROWS", 1_000_000);
        let server = Server::start(flavor).await?;
        seed(&server, "whole", rows).await?;
        seed(&server, "killed", rows).await?;
        let whole_s = uninterrupted(&server, "whole")?;
        let (killed_s, killed_at) = killed_and_resumed(&server, "killed", rows / 2).await?;
        let mut c = server.conn().await?;
        for db in ["whole", "killed"] {
            let old = table_checksum(&mut c, db, "_t_del", &COLUMNS).await?;
            let new = table_checksum(&mut c, db, "t", &COLUMNS).await?;
            ensure!(old == new && old.0 == rows, "{db}: the tables differ after the migration: {old:?} vs {new:?}");
        }
        println!(
            "BENCH {flavor} rows={rows} uninterrupted_s={whole_s:.2} killed_and_resumed_s={killed_s:.2} ratio={:.3} killed_at_rows={killed_at}",
            killed_s / whole_s
        );
        Ok(())
    })
    .await;
}
