//! `--metrics-addr` on every selected flavour: the Prometheus text is scraped over HTTP during a real migration and
//! its values match what the migration is doing: phase, throttled with its reason, rows copied and the rate, the
//! estimate, lag, backlog, checkpoint age, and the last cut-over stall once swapped.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use color_eyre::eyre::{bail, ensure, Result};
use common::{each_flavor, seed_app_table, test_config, wait_phase, Server};
use revenant::control::metrics;
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::{Command, Phase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// One scrape: series (name with labels) -> value.
async fn scrape(addr: SocketAddr) -> Result<HashMap<String, f64>> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut text)).await??;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    ensure!(head.starts_with("HTTP/1.1 200"), "metrics answered: {head}");
    ensure!(head.contains("text/plain; version=0.0.4"), "content type: {head}");
    let mut out = HashMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { bail!("bad exposition line: {line}") };
        let v = if value == "NaN" { f64::NAN } else { value.parse::<f64>().map_err(|_| color_eyre::eyre::eyre!("bad value in {line}"))? };
        out.insert(series.to_string(), v);
    }
    Ok(out)
}

fn series(name: &str, extra: &str) -> String {
    if extra.is_empty() {
        format!("revenant_{name}{{database=\"app\",table=\"items\"}}")
    } else {
        format!("revenant_{name}{{database=\"app\",table=\"items\",{extra}}}")
    }
}

fn value(m: &HashMap<String, f64>, name: &str, extra: &str) -> Result<f64> {
    let key = series(name, extra);
    m.get(&key).copied().ok_or_else(|| color_eyre::eyre::eyre!("no series {key} in the scrape ({} series)", m.len()))
}

/// Scrapes until `pred` holds (bounded).
async fn scrape_until(addr: SocketAddr, what: &str, pred: impl Fn(&HashMap<String, f64>) -> bool) -> Result<HashMap<String, f64>> {
    for _ in 0..200 {
        let m = scrape(addr).await?;
        if pred(&m) {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the metrics never showed {what}: {:?}", scrape(addr).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_during_a_migration() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "items", 2000).await?;
        let base = std::env::var("REVENANT_SANDBOX_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        let hold = base.join(format!("metrics-hold-{}-{}", std::process::id(), flavor.name()));
        std::fs::write(&hold, b"")?;
        let mut cfg = test_config(&server, "app", "items", "ADD COLUMN c INT NOT NULL DEFAULT 3");
        cfg.run.throttle.throttle_flag_file = Some(hold.clone());
        cfg.exact_rowcount = true;
        let listener = metrics::bind("127.0.0.1:0".parse()?).await?;
        let (handle, join) = migrate::start(cfg);
        let shutdown = CancellationToken::new();
        let (addr, server_task) = metrics::serve(listener, handle.status.clone(), shutdown.clone())?;
        wait_phase(&handle, Phase::Copy, Duration::from_secs(60)).await?;

        // Throttled by the flag file in the copy phase: nothing copied yet, the estimate known, checkpoints ticking.
        let m = scrape_until(addr, "the throttled copy with a checkpoint", |m| {
            m.get(&series("throttled", "reason=\"flag-file\"")) == Some(&1.0)
                && m.get(&series("checkpoint_age_seconds", "")).is_some_and(|v| v.is_finite())
                && m.get(&series("heartbeat_lag_seconds", "")).is_some_and(|v| v.is_finite())
        })
        .await?;
        ensure!(value(&m, "phase", "phase=\"copy\"")? == 1.0, "phase copy not 1");
        let ones = m.iter().filter(|(k, v)| k.starts_with("revenant_phase{") && **v == 1.0).count();
        ensure!(ones == 1, "{ones} phases set to 1");
        ensure!(value(&m, "rows_copied_total", "")? == 0.0, "rows copied while throttled");
        ensure!(value(&m, "rows_estimate", "")? == 2000.0, "the counted rows: {}", value(&m, "rows_estimate", "")?);
        ensure!(value(&m, "backlog_events", "")? >= 0.0, "backlog");
        ensure!(value(&m, "checkpoint_age_seconds", "")? >= 0.0, "checkpoint age");
        ensure!(value(&m, "cutover_last_stall_milliseconds", "")?.is_nan(), "a stall before any cut-over");

        // Released: rows flow and the rate shows it.
        std::fs::remove_file(&hold)?;
        let m = scrape_until(addr, "a copy rate", |m| m.get(&series("copy_rows_per_second", "")).is_some_and(|v| *v > 0.0)).await?;
        ensure!(value(&m, "rows_copied_total", "")? > 0.0, "a rate without rows copied");
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(90)).await?;
        let m = scrape_until(addr, "the ready phase", |m| m.get(&series("phase", "phase=\"ready\"")) == Some(&1.0)).await?;
        ensure!(value(&m, "copy_progress_percent", "")? == 100.0, "progress at ready");
        ensure!(value(&m, "rows_copied_total", "")? == 2000.0, "rows copied at ready: {}", value(&m, "rows_copied_total", "")?);
        ensure!(value(&m, "throttled", "reason=\"\"")? == 0.0, "throttled at ready");
        ensure!(value(&m, "cutover_postponed", "")? == 1.0, "not postponed at ready");

        ensure!(handle.send(Command::CutOver).await.ok, "cut-over refused");
        let outcome = tokio::time::timeout(Duration::from_secs(90), join).await???;
        let Outcome::Done { stall_ms, .. } = outcome else { bail!("outcome {outcome:?}") };
        let m = scrape_until(addr, "the done phase", |m| m.get(&series("phase", "phase=\"done\"")) == Some(&1.0)).await?;
        ensure!(value(&m, "cutover_last_stall_milliseconds", "")? == stall_ms as f64, "stall metric vs outcome {stall_ms} ms");
        shutdown.cancel();
        let _ = server_task.await;
        Ok(())
    })
    .await;
}
