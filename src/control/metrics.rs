//! `--metrics-addr`: the migration's status snapshot as Prometheus text exposition (format 0.0.4) on plain HTTP,
//! served with hyper's HTTP/1 server. `GET /metrics` (or any path) answers the latest snapshot; nothing can be changed here.
//! Every series carries the `database` and `table` labels; the throttle reason and the phase are labels too.

use std::fmt::Write as _;
use std::net::SocketAddr;

use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;
use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::engine::status::{Eta, Status};
use crate::engine::Phase;

/// Parses `--metrics-addr` (`127.0.0.1:9090`, `[::1]:9090`, `0.0.0.0:9090`).
pub fn parse_addr(text: &str) -> Result<SocketAddr> {
    text.parse::<SocketAddr>()
        .map_err(|e| eyre!("--metrics-addr {text}: {e}"))
        .suggestion("give an IP address and a port, e.g. 127.0.0.1:9187")
}

/// Binds `addr` (before the migration starts, so a port in use is refused before anything changes).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .wrap_err_with(|| format!("cannot listen on --metrics-addr {addr}"))
        .suggestion("pick a free port, or leave --metrics-addr out")
}

/// Serves the latest snapshot on `listener` until `shutdown`. Returns the bound address and the server task.
pub fn serve(
    listener: tokio::net::TcpListener,
    status: watch::Receiver<Status>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let bound = listener.local_addr()?;
    tracing::info!("metrics on http://{bound}/metrics");
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("metrics: accept failed: {e}");
                        continue;
                    }
                },
            };
            let status = status.clone();
            let service = hyper::service::service_fn(move |req| {
                let answer = respond(&req, &status);
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(std::time::Duration::from_secs(5))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("metrics connection: {e}");
                }
            });
        }
    });
    Ok((bound, task))
}

/// GET (or HEAD) on any path: the exposition of the latest snapshot; any other method: 405.
fn respond(req: &hyper::Request<hyper::body::Incoming>, status: &watch::Receiver<Status>) -> hyper::Response<Full<Bytes>> {
    let response = hyper::Response::builder();
    let built = match *req.method() {
        hyper::Method::GET | hyper::Method::HEAD => response
            .header(hyper::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
            .body(Full::new(Bytes::from(render(&status.borrow().clone())))),
        _ => response.status(hyper::StatusCode::METHOD_NOT_ALLOWED).body(Full::new(Bytes::new())),
    };
    built.unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

/// A label value with Prometheus' escapes.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}


/// One series' label besides `database` and `table` (the phase, the throttle reason), or none.
pub type Label = Option<(&'static str, String)>;

/// One metric of a snapshot: its name (without the `revenant_` prefix), kind, help text and series.
pub struct Family {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
    pub series: Vec<(Label, f64)>,
}

/// The exposition text for one snapshot.
pub fn render(s: &Status) -> String {
    let base = format!("database=\"{}\",table=\"{}\"", escape(&s.target.database), escape(&s.target.table));
    let mut out = String::new();
    for f in families(s) {
        let _ = writeln!(out, "# HELP revenant_{} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE revenant_{} {}", f.name, f.kind);
        for (label, v) in &f.series {
            let labels = match label {
                None => base.clone(),
                Some((k, val)) => format!("{base},{k}=\"{}\"", escape(val)),
            };
            let v = if v.is_finite() { format!("{v}") } else { "NaN".to_string() };
            let _ = writeln!(out, "revenant_{}{{{labels}}} {v}", f.name);
        }
    }
    out
}

/// Every metric of one snapshot, for the Prometheus text and for StatsD (`control::statsd`).
pub fn families(s: &Status) -> Vec<Family> {
    let mut out = Vec::new();
    let mut metric = |name: &'static str, kind: &'static str, help: &'static str, series: &[(Label, f64)]| {
        out.push(Family { name, kind, help, series: series.to_vec() });
    };
    let one = |v: f64| vec![(None, v)];
    metric("copy_progress_percent", "gauge", "Percent of the rows copied (100 once the copy is complete).", &one(s.copy.percent()));
    metric("rows_copied_total", "counter", "Rows copied to the ghost table.", &one(s.copy.rows_copied as f64));
    metric("rows_estimate", "gauge", "Estimated (or counted) rows of the original table.", &one(s.copy.rows_estimate as f64));
    metric("copy_rows_per_second", "gauge", "Rows copied per second over the last seconds.", &one(s.copy.rows_per_second));
    metric("copy_slices", "gauge", "Slices of the key range copied at once, one worker each (--copy-threads).", &one(s.copy.slices.max(1) as f64));
    metric("apply_writers", "gauge", "Connections the binary log is applied over at once (--apply-threads).", &one(s.binlog.apply_writers.max(1) as f64));
    metric("events_applied_total", "counter", "Binlog row events applied to the ghost table.", &one(s.binlog.events_applied as f64));
    metric("apply_events_per_second", "gauge", "Binlog row events applied per second over the last seconds.", &one(s.binlog.events_per_second));
    metric("backlog_events", "gauge", "Binlog events read but not yet applied.", &one(s.binlog.backlog as f64));
    metric(
        "heartbeat_lag_seconds",
        "gauge",
        "Heartbeat lag: age of the last heartbeat applied from the binlog (NaN before the first).",
        &one(s.heartbeat_lag_seconds.unwrap_or(f64::NAN)),
    );
    metric("max_lag_seconds", "gauge", "The lag threshold (--max-lag-millis).", &one(s.max_lag_seconds));
    let eta = match s.eta {
        Eta::Time(t) => t,
        Eta::Due => 0.0,
        Eta::Measuring => f64::NAN,
    };
    metric("eta_seconds", "gauge", "Expected seconds until the copy completes (NaN while measuring).", &one(eta));
    let phases: Vec<(Label, f64)> = Phase::ALL
        .iter()
        .map(|p| (Some(("phase", p.label().to_string())), if s.phase == Some(*p) { 1.0 } else { 0.0 }))
        .collect();
    metric("phase", "gauge", "1 for the migration's current phase.", &phases);
    metric(
        "throttled",
        "gauge",
        "1 while the row copy is throttled; the reason label is gh-ost's wording.",
        &[(Some(("reason", s.throttle.reason.clone())), if s.throttle.throttled { 1.0 } else { 0.0 })],
    );
    metric("paused", "gauge", "1 while copy and apply are paused.", &one(if s.paused { 1.0 } else { 0.0 }));
    metric(
        "checkpoint_age_seconds",
        "gauge",
        "Seconds since the last checkpoint committed (NaN before the first).",
        &one(s.checkpoint.age_seconds.unwrap_or(f64::NAN)),
    );
    metric("cutover_postponed", "gauge", "1 while the cut-over waits for approval.", &one(if s.cutover.postponed { 1.0 } else { 0.0 }));
    metric("cutover_waiting_seconds", "gauge", "Seconds waited in the ready phase.", &one(s.cutover.waiting_seconds));
    metric(
        "cutover_last_stall_milliseconds",
        "gauge",
        "The write stall the last cut-over caused (NaN before one).",
        &one(s.cutover.last_stall_ms.map(|m| m as f64).unwrap_or(f64::NAN)),
    );
    verify_metrics(s, &mut metric);
    let ix = &s.indexes;
    metric("indexes_deferred", "gauge", "Secondary indexes the ghost was created without, added after the copy (--defer-secondary-indexes).", &one(ix.deferred.len() as f64));
    metric("index_build_seconds", "gauge", "Seconds the deferred indexes have taken to add (the build running, or the last one; NaN before one).", &one(ix.build_seconds.unwrap_or(f64::NAN)));
    let f = &s.failover;
    metric("failover_waiting", "gauge", "1 while the run waits for a new primary (docs/failover.md).", &one(if f.waiting { 1.0 } else { 0.0 }));
    metric("failover_waiting_seconds", "gauge", "Seconds waited for a new primary (the wait running, or the last one).", &one(f.waited_seconds));
    metric("failovers_total", "counter", "New primaries this run was adopted on.", &one(f64::from(f.count)));
    metric("elapsed_seconds", "gauge", "Seconds since this process started the migration.", &one(s.elapsed_seconds));
    out
}

/// The verification's progress and its last result (NaN before one).
fn verify_metrics(s: &Status, metric: &mut impl FnMut(&'static str, &'static str, &'static str, &[(Label, f64)])) {
    let v = &s.verify;
    let one = |x: f64| vec![(None, x)];
    let nan_or = |x: Option<u64>| x.map(|m| m as f64).unwrap_or(f64::NAN);
    metric("verify_progress_percent", "gauge", "Percent of the chunks compared in the verification pass running (or last run).", &one(v.fraction() * 100.0));
    metric("verify_rows_total", "gauge", "Rows compared by the verification pass running (or last run).", &one(v.rows_verified as f64));
    metric("verify_last_lock_milliseconds", "gauge", "How long the last verification lock held the original's writers (NaN before one).", &one(nan_or(v.last_lock_ms)));
    metric("verify_last_end_timestamp_seconds", "gauge", "When the last verification pass ended, Unix seconds (NaN before one).", &one(nan_or(v.last_ended_unix)));
    let ok = v.last_result.as_deref().map(|r| if r.starts_with("identical") { 1.0 } else { 0.0 }).unwrap_or(f64::NAN);
    metric("verify_last_identical", "gauge", "1 when the last verification found original and ghost identical, 0 when not (NaN before one).", &one(ok));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_escaped_and_one_phase_set() {
        let mut s = Status::default();
        s.target.database = "app".into();
        s.target.table = "it\"ems".into();
        s.phase = Some(Phase::Copy);
        s.throttle.throttled = true;
        s.throttle.reason = "max-load Threads_running=55 >= 50".into();
        let text = render(&s);
        assert!(text.contains("revenant_phase{database=\"app\",table=\"it\\\"ems\",phase=\"copy\"} 1\n"), "{text}");
        assert!(text.contains("revenant_phase{database=\"app\",table=\"it\\\"ems\",phase=\"ready\"} 0\n"), "{text}");
        assert!(text.contains("revenant_throttled{database=\"app\",table=\"it\\\"ems\",reason=\"max-load Threads_running=55 >= 50\"} 1\n"), "{text}");
        assert!(text.contains("revenant_cutover_last_stall_milliseconds{database=\"app\",table=\"it\\\"ems\"} NaN\n"), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("revenant_phase{") && l.ends_with(" 1")).count(), 1);
        assert!(text.contains("revenant_phase{database=\"app\",table=\"it\\\"ems\",phase=\"verify\"} 0\n"), "{text}");
        assert!(text.contains("revenant_verify_last_identical{database=\"app\",table=\"it\\\"ems\"} NaN\n"), "{text}");
        assert!(text.contains("revenant_failover_waiting{database=\"app\",table=\"it\\\"ems\"} 0\n"), "{text}");
    }

    #[test]
    fn bad_addresses_are_refused() {
        assert!(parse_addr("127.0.0.1:9187").is_ok());
        assert!(parse_addr("localhost").is_err());
    }
}
