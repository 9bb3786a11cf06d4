//! The waits between the copy and the cut-over, the same for migrate and move-tables: catching up with the binary
//! log (until the applied position holds a GTID set, or until the backlog is empty and the heartbeat recent), and
//! the ready gate (postponed until approved or while the postpone flag file exists; never while the heartbeat or a
//! replica lags or a backlog waits, and the status says which).

use std::sync::atomic::Ordering;
use std::time::Duration;

use color_eyre::eyre::Result;

use crate::engine::hooks::Hook;
use crate::engine::pipeline::runtime::RunContext;
use crate::engine::pipeline::tasks::{Running, TaskResult};
use crate::engine::shared::Shared;
use crate::engine::stream::gtid::GtidSet;
use crate::engine::failpoint;

/// Why a wait ended without reaching its goal.
pub(crate) enum Interrupted {
    /// A stop was requested (the run's token is cancelled).
    Stopped,
    /// The streamer or the applier ended.
    TaskEnded(&'static str, TaskResult),
    /// The operator asked for a verification while the cut-over waited (migrate only).
    VerifyRequested,
}

/// What a wait returns: `Ok(Ok(()))` when its goal is reached.
pub(crate) type WaitResult = Result<std::result::Result<(), Interrupted>>;

const TICK: Duration = Duration::from_millis(100);

/// A stop, or a task that ended, interrupts any wait.
pub(crate) async fn interrupted(ctx: &RunContext, running: &mut Running) -> Option<Interrupted> {
    if ctx.cancel.is_cancelled() {
        return Some(Interrupted::Stopped);
    }
    running.finished().await.map(|(what, r)| Interrupted::TaskEnded(what, r))
}

/// Waits until the applier has caught up: no backlog and a heartbeat no older than `max-lag-millis` (at least 1 s).
pub(crate) async fn catch_up(ctx: &RunContext, running: &mut Running) -> WaitResult {
    loop {
        if let Some(i) = interrupted(ctx, running).await {
            return Ok(Err(i));
        }
        let shared = &ctx.shared;
        let lag = shared.heartbeat_lag_seconds().unwrap_or(f64::MAX);
        let max_lag = max_lag_seconds(shared);
        if shared.backlog.load(Ordering::Relaxed) == 0 && lag <= max_lag.max(1.0) {
            return Ok(Ok(()));
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Waits until the applied position contains `goal` with nothing left in the queue. `draining`: the status shows
/// the events left (a move's drain).
pub(crate) async fn wait_applied(ctx: &RunContext, running: &mut Running, goal: &GtidSet, mariadb: bool, draining: bool) -> WaitResult {
    let mut first = true;
    loop {
        if draining && first {
            // Before the stop check: a test that holds here (`=hold`) sees a stop made meanwhile honoured.
            failpoint::hit("move-mid-drain")?;
        }
        if let Some(i) = interrupted(ctx, running).await {
            return Ok(Err(i));
        }
        let shared = &ctx.shared;
        let applied_text = running.applied_rx.borrow().position.as_ref().map(|p| p.gtid_set.clone());
        let applied_text = applied_text.unwrap_or_else(|| shared.with(|i| i.status.binlog.applied_gtid_set.clone()));
        let applied = GtidSet::parse(mariadb, &applied_text)?;
        if draining {
            let left = goal.count_after(&applied);
            shared.with(|i| i.status.cutover.events_left_to_drain = Some(left));
        }
        first = false;
        if applied.contains(goal) && shared.backlog.load(Ordering::Relaxed) == 0 {
            return Ok(Ok(()));
        }
        tokio::select! {
            _ = running.applied_rx.changed() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// A throttle that holds at start (the manual switch, a flag file) holds before the first chunk (at most 5 s).
pub(crate) async fn first_throttle_check(shared: &Shared) {
    for _ in 0..100 {
        if shared.throttle_checked.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn max_lag_seconds(shared: &Shared) -> f64 {
    shared.max_lag_millis.load(Ordering::Relaxed) as f64 / 1000.0
}

/// Why the cut-over may not start yet, even when approved: lag or a backlog (gh-ost #1685 waited silently).
fn blocked_by(shared: &Shared) -> Option<String> {
    let max_lag = max_lag_seconds(shared);
    let replica_lag = shared.with(|i| {
        i.signals
            .iter()
            .filter(|g| g.throttling && g.name.starts_with("replica "))
            .map(|g| if g.value.starts_with("error") { format!("{} lag unreadable", g.name) } else { format!("{} lag {}", g.name, g.value) })
            .collect::<Vec<_>>()
    });
    let backlog = shared.backlog.load(Ordering::Relaxed);
    match shared.heartbeat_lag_seconds() {
        None => Some("heartbeat lag unknown (no heartbeat applied yet)".to_string()),
        Some(lag) if lag > max_lag => Some(format!("heartbeat lag {lag:.1}s > max-lag {max_lag:.1}s")),
        _ if !replica_lag.is_empty() => Some(format!("{} > max-lag {max_lag:.1}s", replica_lag.join(", "))),
        _ if backlog > 0 => Some(format!("{backlog} events not yet applied")),
        _ => None,
    }
}

/// The kind of wait, for logging each kind once.
fn wait_kind(blocked: &str) -> &'static str {
    if blocked.starts_with("heartbeat") {
        "heartbeat lag"
    } else if blocked.starts_with("replica") {
        "replica lag"
    } else {
        "backlog"
    }
}

/// The ready gate: returns when the cut-over may start. `postpone`: wait for approval (`C`, `unpostpone`); the
/// postpone flag file (live setting) also holds it. gh-ost-on-begin-postponed fires once when it first waits.
pub(crate) async fn ready(ctx: &RunContext, running: &mut Running, postpone: bool) -> WaitResult {
    let shared = &ctx.shared;
    let mut last_logged: Option<&'static str> = None;
    loop {
        if let Some(i) = interrupted(ctx, running).await {
            return Ok(Err(i));
        }
        let flag = shared.throttle_settings().postpone_flag_file.as_ref().is_some_and(|f| f.exists());
        let postponed = flag || (postpone && !shared.cutover_approved.load(Ordering::Relaxed));
        let blocked = blocked_by(shared);
        shared.with(|i| {
            i.status.cutover.postponed = postponed;
            i.status.cutover.blocked_reason = match (&blocked, postponed) {
                (Some(b), _) => Some(b.clone()),
                (None, true) => Some("postponed: waiting for approval".into()),
                (None, false) => None,
            };
        });
        if shared.verify_requested.swap(false, Ordering::Relaxed) {
            return Ok(Err(Interrupted::VerifyRequested));
        }
        if postponed && !shared.begin_postponed_fired.swap(true, Ordering::Relaxed) {
            ctx.hooks.fire(Hook::OnBeginPostponed, &[], &shared.snapshot(0)).await?;
        }
        if !postponed && blocked.is_none() {
            return Ok(Ok(()));
        }
        let kind = blocked.as_deref().filter(|_| !postponed).map(wait_kind);
        if kind != last_logged {
            if let (Some(b), Some(_)) = (&blocked, kind) {
                tracing::warn!("cut-over approved but waiting: {b}");
            }
            last_logged = kind;
        }
        tokio::time::sleep(TICK).await;
    }
}
