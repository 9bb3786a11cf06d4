//! move-tables as a [`Followed`] run (docs/failover.md): both servers are watched. The target holds the checkpoint
//! (`_revenant_move_ghk`), which replicates with the rows it describes, so a new target must hold the checkpoint
//! rows this run committed (`--target-failover-candidates`, then the target's listed replicas). The source is where
//! the stream and the copy read, so a new source must have executed the GTID set the target's checkpoint names
//! (and the drain GTID once the fence recorded one): the stream continues from there (`--failover-candidates`, then
//! the source's listed replicas). When both are lost at once the target is found first, since the source's search
//! reads the checkpoint there. The move then resumes with the new host for that side.

use std::sync::atomic::Ordering;
use std::time::Duration;

use color_eyre::eyre::Result;

use crate::engine::checkpoint;
use crate::engine::config::ConnectionConfig;
use crate::engine::pipeline::driver;
use crate::engine::pipeline::failover::{self, Holds, Search, STOP_PREFIX};
use crate::engine::pipeline::follow::{Followed, Side};
use crate::engine::pipeline::runtime::RunContext;
use crate::engine::shared::Shared;

use super::{steps, MoveOutcome, MoveStateDump, MoveTablesConfig, CHECKPOINT_TABLE};

const TARGET: &str = "target";
const SOURCE: &str = "source";

/// The move, followed through its servers' failovers.
pub(super) struct Moving {
    pub(super) cfg: MoveTablesConfig,
}

impl Followed for Moving {
    type Outcome = MoveOutcome;

    fn sides(&self) -> Vec<Side> {
        let cfg = &self.cfg;
        if !cfg.run.execute || cfg.failover.timeout.is_zero() {
            return Vec::new();
        }
        vec![
            Side { name: TARGET, server: cfg.target.clone(), flags: ("--target-host", "--target-port") },
            Side { name: SOURCE, server: cfg.source.clone(), flags: ("--host", "--port") },
        ]
    }

    fn retry_for(&self) -> Duration {
        self.cfg.run.retry_for
    }

    async fn attempt(&mut self, ctx: &RunContext) -> Result<MoveOutcome> {
        let mut result = driver::drive(&mut steps::Move { cfg: &self.cfg }, ctx).await;
        if let Ok(MoveOutcome::Stopped { state }) = &mut result {
            // A failover's stop reads nothing back (the run goes on elsewhere, or `gave_up` says where it stands).
            if !state.reason.starts_with(STOP_PREFIX) {
                state.complete(&self.cfg, &ctx.shared).await;
            }
        }
        result
    }

    async fn search(&self, side: &Side, ctx: &RunContext, discovered: Vec<(String, u16)>) -> Search {
        let cfg = &self.cfg;
        if side.name == TARGET {
            return Search {
                old: cfg.target.clone(),
                candidates: cfg.target_failover_candidates.clone(),
                discovered,
                holds: Holds::Checkpoint { database: cfg.target_database.clone(), table: CHECKPOINT_TABLE.to_string(), streamed: false },
                committed: ctx.shared.with(|i| i.status.checkpoint.gtid_set.clone()),
                copied_rows: ctx.shared.rows_copied.load(Ordering::Relaxed),
                timeout: cfg.failover.timeout,
            };
        }
        let (committed, drain) = stream_position(cfg, &ctx.shared).await;
        // The throttle-control replicas are the source's replicas.
        let discovered = failover::with_control_replicas(discovered, &cfg.run.throttle.throttle_control_replicas);
        Search { old: cfg.source.clone(), candidates: cfg.failover.candidates.clone(), discovered, holds: Holds::Stream { drain }, committed, copied_rows: 0, timeout: cfg.failover.timeout }
    }

    fn adopt(&mut self, side: &Side, to: &ConnectionConfig, shared: &Shared) {
        let cfg = &mut self.cfg;
        if side.name == TARGET {
            cfg.target = to.clone();
        } else {
            cfg.source = to.clone();
        }
        cfg.run.resume = true;
        cfg.run.resume_command = cfg.run.resume_command.as_deref().map(|c| failover::rehost(c, to, side.flags));
        shared.with(|i| {
            i.status.target.host = cfg.source.display();
            i.status.target.applier_host = cfg.target.display();
            i.status.target.alter = super::move_text(cfg);
            if side.name == TARGET {
                i.checkpoint_server = Some(to.opts());
            }
        });
    }

    /// A resumable stop with the (rehosted) resume command; nothing is written anywhere, and the target's checkpoint
    /// is read back only when the target is not the server given up.
    async fn gave_up(&self, side: &Side, ctx: &RunContext, reason: String) -> MoveOutcome {
        let mut state = MoveStateDump::stopped(&self.cfg, reason);
        if side.name == SOURCE {
            state.complete(&self.cfg, &ctx.shared).await;
        } else {
            state.phase = ctx.shared.phase().map(|p| p.label().to_string()).unwrap_or_default();
            state.step = ctx.shared.with(|i| i.status.cutover.step.clone());
            state.applied.applied_gtid_set = ctx.shared.with(|i| i.status.checkpoint.gtid_set.clone());
        }
        MoveOutcome::Stopped { state }
    }
}

/// Where the stream continues: the target's checkpoint (its applied GTID set, and the drain GTID once recorded);
/// the last committed checkpoint in the status when the target cannot be read.
async fn stream_position(cfg: &MoveTablesConfig, shared: &Shared) -> (String, Option<String>) {
    let fallback = || (shared.with(|i| i.status.checkpoint.gtid_set.clone()), shared.with(|i| i.status.cutover.drain_gtid.clone()));
    let Ok(mut tgt) = failover::connect(&cfg.target).await else { return fallback() };
    let read = checkpoint::read(&mut tgt, &cfg.target_database, CHECKPOINT_TABLE).await;
    let _ = tgt.disconnect().await;
    match read {
        Ok(Some(st)) => (st.applied_gtid_set, st.drain_gtid),
        Ok(None) => fallback(),
        Err(e) => {
            tracing::warn!("reading the target's checkpoint for the source's search: {e:#}");
            fallback()
        }
    }
}
