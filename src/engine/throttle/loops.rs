//! The side tasks that decide when the copy waits: the heartbeat writer (its rows come back through the binary log
//! and measure lag) and the throttle loop (manual switch, flag files, lag, the throttlers of `throttlers.rs`, the
//! panic flag file), for migrate and move-tables alike. The loop fails closed: a signal that cannot be read throttles.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use crate::engine::config::MigrationConfig;
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;
use crate::engine::status::ThrottleSignal;
use crate::engine::stream::binlog::StreamerState;
use crate::engine::throttle::throttlers::{CriticalAction, Throttlers};

/// Writes a heartbeat (microseconds since the epoch) into `cfg.changelog_table()` on the source every
/// `heartbeat_interval`; the applier reads them back from the binary log to measure lag. Also used by move-tables.
pub(crate) async fn heartbeat_loop(cfg: MigrationConfig, shared: Arc<Shared>, cancel: CancellationToken) {
    let sql = format!(
        "INSERT INTO {} (hint, value) VALUES ('heartbeat', ?) ON DUPLICATE KEY UPDATE value = VALUES(value)",
        qualified(&cfg.database, &cfg.changelog_table())
    );
    let mut conn: Option<mysql_async::Conn> = None;
    loop {
        if conn.is_none() {
            conn = crate::engine::connection::connect(cfg.source.opts()).await.ok();
        }
        if let Some(c) = conn.as_mut() {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
            if c.exec_drop(&sql, (now.to_string(),)).await.is_err() {
                conn = None;
            }
        }
        let _ = &shared;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(cfg.run.heartbeat_interval) => {}
        }
    }
}

/// The streamer's read position and connection into the status.
fn publish_stream_position(shared: &Shared, streamer: &Mutex<StreamerState>) {
    if let Ok(s) = streamer.lock() {
        shared.with(|i| {
            i.status.binlog.read_file = s.file.clone();
            i.status.binlog.read_pos = s.pos;
            i.status.binlog.streaming = s.connected;
        });
    }
}

/// Decides whether the copy is throttled, and why (gh-ost's wording). Fails closed: a signal that cannot be read
/// throttles. `request_stop` records why the run must stop (critical load, panic flag file) before `engine_cancel`
/// is cancelled. Also drives move-tables' cross-server copy.
pub(crate) async fn throttle_loop(
    cfg: MigrationConfig,
    shared: Arc<Shared>,
    streamer: Arc<Mutex<StreamerState>>,
    cancel: CancellationToken,
    engine_cancel: CancellationToken,
    request_stop: Arc<dyn Fn(&str) + Send + Sync>,
) {
    let mut throttlers = Throttlers::new(cfg.clone());
    loop {
        // The stream's position first: the throttlers' reads below may take a while (connections, queries).
        publish_stream_position(&shared, &streamer);
        let mut reasons: Vec<String> = Vec::new();
        let mut signals = Vec::new();
        let manual = shared.manual_throttle.load(Ordering::Relaxed);
        signals.push(ThrottleSignal { name: "manual".into(), value: if manual { "on" } else { "off" }.into(), threshold: "-".into(), throttling: manual });
        if manual {
            reasons.push("commanded by user".into());
        }
        for f in [&cfg.run.throttle.throttle_flag_file, &cfg.run.throttle.throttle_additional_flag_file].into_iter().flatten() {
            let on = crate::engine::throttle::flag_file::is_set(f);
            signals.push(ThrottleSignal { name: "flag-file".into(), value: f.display().to_string(), threshold: "exists".into(), throttling: on });
            if on {
                reasons.push("flag-file".into());
            }
        }
        let max_lag = shared.max_lag_millis.load(Ordering::Relaxed) as f64 / 1000.0;
        match shared.heartbeat_lag_seconds() {
            Some(lag) => {
                let over = lag > max_lag;
                signals.push(ThrottleSignal { name: "heartbeat lag".into(), value: format!("{lag:.1}s"), threshold: format!("{max_lag:.1}s"), throttling: over });
                if over {
                    reasons.push(format!("lag={lag:.1}s"));
                }
            }
            None => signals.push(ThrottleSignal { name: "heartbeat lag".into(), value: "?".into(), threshold: format!("{max_lag:.1}s"), throttling: false }),
        }
        // The switch and the flag files hold before the first chunk (the copy waits for this first publication); the
        // database and HTTP signals below may take a moment to read.
        if !shared.throttle_checked.load(Ordering::Relaxed) {
            shared.with(|i| {
                i.throttle_reason = if reasons.is_empty() { None } else { Some(reasons.join(", ")) };
                i.signals = signals.clone();
            });
            shared.throttle_checked.store(true, Ordering::Relaxed);
        }
        // Replica lag, max-load, critical-load, throttle-query, throttle-http (throttlers.rs); fail closed.
        let (more_signals, more_reasons, action) = throttlers.check(&shared).await;
        signals.extend(more_signals);
        reasons.extend(more_reasons);
        if let Some(CriticalAction::Abort(why)) = action {
            request_stop(&why);
            engine_cancel.cancel();
        }
        if let Some(p) = &cfg.run.throttle.panic_flag_file {
            if crate::engine::throttle::flag_file::is_set(p) {
                tracing::error!("panic flag file {} exists: aborting (the migration stays resumable)", p.display());
                request_stop(&format!("panic flag file {}", p.display()));
                engine_cancel.cancel();
            }
        }
        publish_stream_position(&shared, &streamer);
        shared.with(|i| {
            i.throttle_reason = if reasons.is_empty() { None } else { Some(reasons.join(", ")) };
            i.signals = signals;
        });
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
