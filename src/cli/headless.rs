//! Headless output: gh-ost's status line (or `--status-json`, one JSON object per line) at gh-ost's cadence (every
//! second for the first minute, then every 5 s), plus a line on every phase change.

use std::io::Write;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::engine::status::{format_duration, Status};

/// gh-ost's status line for a snapshot.
pub fn status_line(s: &Status) -> String {
    let phase = s.phase.map(|p| p.gh_ost_state()).unwrap_or("initializing");
    let throttle = if s.throttle.throttled { format!("throttled, {}", s.throttle.reason) } else { phase.to_string() };
    let state = match s.phase {
        Some(crate::engine::Phase::ReadyToCutOver) => postponing_text(s),
        Some(crate::engine::Phase::Verify) => verifying_text(s),
        _ => throttle,
    };
    let state = s.failover.in_state(state);
    let (read_file, read_pos) = s.binlog.read_position();
    format!(
        "Copy: {}/{} {:.1}%; Applied: {}; Backlog: {}/{}; Time: {}(total), {}(copy); streamer: {}:{}; Lag: {:.2}s, HeartbeatLag: {:.2}s, State: {}; ETA: {}",
        s.copy.rows_copied,
        s.copy.rows_estimate,
        s.copy.percent(),
        s.binlog.events_applied,
        s.binlog.backlog,
        s.binlog.backlog_capacity,
        format_duration(s.elapsed_seconds),
        format_duration(s.elapsed_copy_seconds),
        read_file,
        read_pos,
        s.heartbeat_lag_seconds.unwrap_or(0.0),
        s.heartbeat_lag_seconds.unwrap_or(0.0),
        state,
        s.eta
    )
}

/// The ready phase's state: how long it has waited, what blocks the cut-over besides the approval, and what the
/// last verification found.
fn postponing_text(s: &Status) -> String {
    let waited = format_duration(s.cutover.waiting_seconds);
    let state = if s.cutover.postponed { "postponing cut-over" } else { "cut-over due" };
    let verified = s.verify.last_result.as_deref().map(|r| format!("; verified: {r}")).unwrap_or_default();
    match s.cutover.blocked_reason.as_deref().filter(|r| !r.starts_with("postponed")) {
        Some(why) => format!("{state} (waited {waited}; blocked: {why}{verified})"),
        None => format!("{state} (waited {waited}{verified})"),
    }
}

/// The verification's state: chunks compared in the pass running, and its round.
fn verifying_text(s: &Status) -> String {
    let v = &s.verify;
    format!("verifying (round {}, chunks {}/{} {:.1}%, rows {})", v.round.max(1), v.chunks_done, v.chunks_total, v.fraction() * 100.0, v.rows_verified)
}

/// Prints status until `stop` fires. Write errors (a terminal that went away) are ignored.
pub async fn print_status(mut rx: watch::Receiver<Status>, json: bool, stop: CancellationToken) {
    let started = Instant::now();
    let mut last_print: Option<Instant> = None;
    let mut last_phase = None;
    loop {
        let snapshot = rx.borrow_and_update().clone();
        let interval = if started.elapsed() < Duration::from_secs(60) { Duration::from_secs(1) } else { Duration::from_secs(5) };
        let phase_changed = snapshot.phase != last_phase;
        if phase_changed || last_print.is_none_or(|t| t.elapsed() >= interval) {
            let line = if json { serde_json::to_string(&snapshot).unwrap_or_default() } else { status_line(&snapshot) };
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            last_print = Some(Instant::now());
            last_phase = snapshot.phase;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::status::FailoverStatus;

    #[test]
    fn the_status_line_says_a_failover_is_waited_for_then_where_it_was_adopted() {
        let mut s = Status { phase: Some(crate::engine::Phase::Copy), ..Default::default() };
        s.failover = FailoverStatus {
            waiting: true,
            reason: "127.0.0.1:3306 read_only is on".into(),
            old_primary: "127.0.0.1:3306".into(),
            waited_seconds: 12.0,
            candidates_tried: vec!["127.0.0.1:3307: replicates from 127.0.0.1:3306".into()],
            ..Default::default()
        };
        let line = status_line(&s);
        assert!(line.contains("State: waiting for a new primary (12s so far; 127.0.0.1:3306 read_only is on; tried: 127.0.0.1:3307: replicates from"), "{line}");
        s.failover.waiting = false;
        s.failover.adopted_on = "127.0.0.1:3307".into();
        s.failover.adopted_gtid_set = "0-1-42".into();
        s.failover.count = 1;
        let line = status_line(&s);
        assert!(line.contains("State: migrating; adopted on 127.0.0.1:3307 at GTID 0-1-42 (failover 1 of this run)"), "{line}");
    }
}
