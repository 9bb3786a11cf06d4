//! Any run through failovers (docs/failover.md): each attempt is the ordinary pipeline run with a
//! [`failover::Watch`] on each of its servers (migrate: its primary; a move: its target and its source). When an
//! attempt ends because one of them is gone or demoted, its new primary is searched for ([`failover::Search`]) and
//! the run continues there exactly as `--resume` does (the same preflight, resume decision and redo bound), as often
//! as the servers move. No new primary within `--failover-timeout`: the run stops resumably. What differs between
//! runs (which servers, what a candidate must hold, how the configuration changes) is the run's [`Followed`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use color_eyre::eyre::Result;

use crate::engine::config::ConnectionConfig;
use crate::engine::hooks::Hook;
use crate::engine::pipeline::failover::{self, Adopted, Role, Search, Watch};
use crate::engine::pipeline::phase::Phase;
use crate::engine::pipeline::runtime::RunContext;
use crate::engine::shared::Shared;

/// One server of a run, as it is followed.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    /// "primary" (migrate), "source" or "target" (a move).
    pub(crate) name: &'static str,
    pub(crate) server: ConnectionConfig,
    /// The resume command's flags for this server's host and port.
    pub(crate) flags: (&'static str, &'static str),
}

/// A run that follows its servers through failovers.
pub(crate) trait Followed {
    type Outcome;
    /// The servers of the next attempt, in the order they are searched for when several are lost at once; empty:
    /// the run is not followed (one attempt).
    fn sides(&self) -> Vec<Side>;
    /// `--retry-seconds`: how long a server may not answer before it counts as gone.
    fn retry_for(&self) -> Duration;
    /// One attempt: the pipeline under `ctx`.
    async fn attempt(&mut self, ctx: &RunContext) -> Result<Self::Outcome>;
    /// What a new primary for `side` must hold (asked once the sides before it were adopted).
    async fn search(&self, side: &Side, ctx: &RunContext, discovered: Vec<(String, u16)>) -> Search;
    /// The run continues with `to` as `side`'s server: the configuration, the resume command and the status say so.
    fn adopt(&mut self, side: &Side, to: &ConnectionConfig, shared: &Shared);
    /// No new primary for `side` in time (or a stop while waiting): the resumable stop, with `reason`.
    async fn gave_up(&self, side: &Side, ctx: &RunContext, reason: String) -> Self::Outcome;
}

/// Runs `run`, following its servers while `sides` names any.
pub(crate) async fn follow<F: Followed>(run: &mut F, ctx: &RunContext) -> Result<F::Outcome> {
    loop {
        let sides = watched(run.sides()).await;
        if sides.is_empty() {
            return run.attempt(ctx).await;
        }
        // The attempt's own token: a watch ends the attempt, an operator's stop (the frame's token) ends all.
        let attempt = RunContext { cancel: ctx.cancel.child_token(), ..ctx.clone() };
        let watches: Vec<Watch> =
            sides.iter().map(|s| Watch::start(s.name, s.server.clone(), run.retry_for(), attempt.cancel.clone(), ctx.stop.clone())).collect();
        let result = run.attempt(&attempt).await;
        let mut seen = Vec::with_capacity(watches.len());
        for w in watches {
            seen.push(w.end().await);
        }
        if ctx.cancel.is_cancelled() || !reached_setup(&ctx.shared) {
            return result;
        }
        let mut lost = Vec::new();
        for (side, (noticed, discovered)) in sides.into_iter().zip(seen) {
            if let Some(why) = lost_primary(&side.server, noticed, result.is_err()).await {
                lost.push((side, why, discovered));
            }
        }
        if lost.is_empty() {
            return result;
        }
        if let Err(e) = &result {
            tracing::warn!("the attempt ended: {e:#}");
        }
        for (side, why, discovered) in lost {
            match search(run, ctx, &side, &why, discovered).await? {
                (Some(adopted), _) => adopt(run, ctx, &side, adopted).await,
                (None, timeout) => return Ok(run.gave_up(&side, ctx, gave_up_reason(ctx, &side, &why, timeout)).await),
            }
        }
    }
}

/// The sides worth watching: a server that is not a primary when the attempt starts (a move's target that
/// replicates other data by design) is left unwatched, so its failovers are not followed.
async fn watched(sides: Vec<Side>) -> Vec<Side> {
    let mut out = Vec::with_capacity(sides.len());
    for side in sides {
        match failover::probe_at(&side.server).await {
            Ok(p) if p.role != Role::Primary => {
                tracing::info!("the {} {} is not a primary ({:?}): its failovers are not followed", side.name, side.server.display(), p.role);
            }
            // Unreachable: the attempt's preflight refuses (or the watch sees it gone later).
            _ => out.push(side),
        }
    }
    out
}

/// Whether the run got past preflight (before that nothing changed, and a failure is an ordinary refusal).
fn reached_setup(shared: &Shared) -> bool {
    let past = |p: Phase| p >= Phase::Setup && !p.is_terminal();
    shared.with(|i| i.status.phase.is_some_and(past) || i.status.phase_seconds.iter().any(|(p, _)| past(*p)))
}

/// Why a server is given up: what its watch noticed, or, after a failed attempt, what it is now (unreachable,
/// read-only, a replica). None: the server is fine.
async fn lost_primary(server: &ConnectionConfig, noticed: Option<String>, failed: bool) -> Option<String> {
    if noticed.is_some() || !failed {
        return noticed;
    }
    match failover::probe_at(server).await {
        Err(e) if e.chain().any(|c| matches!(c.downcast_ref::<mysql_async::Error>(), Some(mysql_async::Error::Server(_)))) => None,
        Err(e) => Some(format!("unreachable ({e:#})")),
        Ok(p) => match p.role {
            Role::Not(why) => Some(why),
            Role::Primary => None,
        },
    }
}

/// Waits for `side`'s new primary (and says how long it waits at most); the status says so meanwhile.
async fn search<F: Followed>(run: &F, ctx: &RunContext, side: &Side, why: &str, discovered: Vec<(String, u16)>) -> Result<(Option<Adopted>, Duration)> {
    let old = side.server.display();
    let label = if side.name == "primary" { String::new() } else { side.name.to_string() };
    ctx.shared.with(|i| {
        let f = &mut i.status.failover;
        f.waiting = true;
        f.side = label;
        f.reason = format!("{old} {why}");
        f.old_primary = old.clone();
        f.waited_seconds = 0.0;
        f.candidates_tried.clear();
    });
    let search = run.search(side, ctx, discovered).await;
    tracing::warn!("the {} {old} {why}: waiting up to {:?} for its new primary (--failover-timeout)", side.name, search.timeout);
    Ok((search.run(&ctx.shared, &ctx.cancel).await?, search.timeout))
}

/// The run continues on `adopted` as a resume; the status, the log and `revenant-on-failover` say so.
async fn adopt<F: Followed>(run: &mut F, ctx: &RunContext, side: &Side, adopted: Adopted) {
    let old = side.server.display();
    let new = adopted.primary.display();
    run.adopt(side, &adopted.primary, &ctx.shared);
    ctx.stop.clear_failover();
    // The resumed setup says from its checkpoint whether the copy is complete there.
    ctx.shared.copy_complete.store(false, Ordering::Relaxed);
    let snapshot = ctx.shared.with(|i| {
        let f = &mut i.status.failover;
        f.waiting = false;
        f.adopted_on = new.clone();
        f.adopted_gtid_set = adopted.gtid_set.clone();
        f.count += 1;
        tracing::info!("{} (waited {:.1}s, {} before: {old})", f.text(), f.waited_seconds, side.name);
        i.status.clone()
    });
    let env = [
        ("OLD_PRIMARY".to_string(), old),
        ("NEW_PRIMARY".to_string(), new),
        ("FAILOVER_GTID_SET".to_string(), adopted.gtid_set),
        ("FAILOVER_SIDE".to_string(), side.name.to_string()),
    ];
    ctx.hooks.fire_logged(Hook::OnFailover, &env, &snapshot).await;
}

/// Why the run stops after waiting in vain (or being stopped while waiting). Nothing is written to the old server.
fn gave_up_reason(ctx: &RunContext, side: &Side, why: &str, timeout: Duration) -> String {
    let tried = ctx.shared.with(|i| {
        i.status.failover.waiting = false;
        i.status.failover.candidates_tried.join("; ")
    });
    let old = side.server.display();
    let reason = match ctx.cancel.is_cancelled() {
        true => format!("stopped while waiting for a new primary ({} {old} {why})", side.name),
        false => format!(
            "no new primary within --failover-timeout ({}s) after the {} {old} {why}; tried: {tried}; once a primary is writable and has the checkpoint's transactions, resume there ({}/{})",
            timeout.as_secs(),
            side.name,
            side.flags.0,
            side.flags.1
        ),
    };
    tracing::error!("{reason}");
    reason
}
