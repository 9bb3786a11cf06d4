//! Figures for docs/benchmarks.md (ignored by default; scripts/bench-memory runs it): revenant's peak RSS (VmHWM)
//! when one transaction updates every row of a table (BENCH_MEMORY_ROWS, 1,000,000) while the cut-over waits. The
//! binary is BENCH_MEMORY_REVENANT (default: this build's), so an older build can be measured the same way. One
//! flavour per run (REVENANT_TEST_FLAVORS). Measurement only: nothing about memory is asserted.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, eyre, Result};
use common::{each_flavor, seed_app_table, Flavor, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::stream::binlog::current_position;
use revenant::engine::stream::gtid::GtidSet;

/// VmHWM and VmRSS of a process, in MiB.
fn memory_mib(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64> {
        let line = status.lines().find(|l| l.starts_with(name)).ok_or_else(|| eyre!("no {name} in /proc/{pid}/status"))?;
        let kb: f64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).ok_or_else(|| eyre!("bad line {line}"))?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// The `apply` checkpoint row's GTID set, parsed.
async fn applied(c: &mut mysql_async::Conn, mariadb: bool) -> Result<Option<GtidSet>> {
    let row: Option<Option<String>> = c.query_first("SELECT applied_gtid_set FROM app._t_ghk WHERE id = 'apply'").await.unwrap_or(None);
    Ok(row.flatten().and_then(|s| GtidSet::parse(mariadb, &s).ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-memory"]
async fn peak_rss_under_a_one_transaction_update_of_every_row() {
    each_flavor(|flavor| async move {
        let mariadb = flavor == Flavor::MariaDb;
        let rows: u32 = std::env::var("BENCH_MEMORY_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        let bin = std::env::var("BENCH_MEMORY_REVENANT").unwrap_or_else(|_| env!("CARGO_BIN_EXE_revenant").to_string());
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "t", rows).await?;
        let dir = std::env::temp_dir().join(format!("rvn-bench-memory-{}-{}", std::process::id(), server.port));
        std::fs::create_dir_all(&dir)?;
        let flag = dir.join("postpone.flag");
        std::fs::write(&flag, b"")?;
        let mut child = Command::new(&bin)
            .args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--database", "app"])
            .args(["--table", "t", "--alter", "ADD COLUMN f INT", "--execute", "--headless", "--chunk-size", "10000"])
            .arg(format!("--postpone-cut-over-flag-file={}", flag.display()))
            .arg(format!("--serve-socket-file={}", dir.join("ctl.sock").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pid = child.id();
        let mut c = server.conn().await?;
        let started = Instant::now();
        // Ready: the copy is complete and the cut-over waits (the summary row says `ready`).
        loop {
            let phase: Option<String> = c.query_first("SELECT phase FROM app._t_ghk WHERE id = 'summary'").await.unwrap_or(None);
            if phase.as_deref() == Some("ready") {
                break;
            }
            if child.try_wait()?.is_some() || started.elapsed() > Duration::from_secs(3600) {
                bail!("revenant ended or never got ready (phase {phase:?})");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let copied = started.elapsed();
        let (hwm_ready, _) = memory_mib(pid)?;
        let t0 = Instant::now();
        c.query_drop("UPDATE app.t SET b = CONCAT(b, 'x')").await?;
        let update_s = t0.elapsed().as_secs_f64();
        let p = current_position(&mut c, mariadb).await?;
        let want = GtidSet::parse(mariadb, &p.gtid_set)?;
        let mut rss_max: f64 = 0.0;
        loop {
            let (_, rss) = memory_mib(pid)?;
            rss_max = rss_max.max(rss);
            if applied(&mut c, mariadb).await?.is_some_and(|a| a.contains(&want)) {
                break;
            }
            if child.try_wait()?.is_some() || t0.elapsed() > Duration::from_secs(3600) {
                bail!("revenant ended or never applied the UPDATE");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let applied_s = t0.elapsed().as_secs_f64();
        let (hwm, _) = memory_mib(pid)?;
        println!(
            "BENCH {flavor} rows={rows} bin={bin} copy_s={:.1} hwm_ready_mib={hwm_ready:.1} update_s={update_s:.1} \
             applied_s={applied_s:.1} rss_max_sampled_mib={rss_max:.1} vmhwm_mib={hwm:.1}",
            copied.as_secs_f64()
        );
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}
