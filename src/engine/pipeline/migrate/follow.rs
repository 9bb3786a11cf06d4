//! migrate as a [`Followed`] run (docs/failover.md): one server, its primary (`--host`), watched while the run
//! follows (not in a dry run, not in replica mode, where the primary is another server than `--host`, and not with
//! `--test-on-replica` / `--migrate-on-replica`, whose server replicates by design). A candidate must hold the
//! checkpoint table `_<table>_ghk` at the last committed checkpoint and have executed its GTID set; the run resumes
//! there with `--host`/`--port` pointed at it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use color_eyre::eyre::Result;

use crate::engine::config::{ConnectionConfig, MigrationConfig};
use crate::engine::pipeline::driver;
use crate::engine::pipeline::failover::{self, Holds, Search};
use crate::engine::pipeline::follow::{Followed, Side};
use crate::engine::pipeline::runtime::RunContext;
use crate::engine::shared::Shared;

use super::{steps, Outcome, StateDump, TOOL_VERSION};

/// The migration, followed through its primary's failovers.
pub(super) struct Migration {
    pub(super) cfg: MigrationConfig,
}

impl Followed for Migration {
    type Outcome = Outcome;

    fn sides(&self) -> Vec<Side> {
        match follows_failovers(&self.cfg) {
            true => vec![Side { name: "primary", server: self.cfg.source.clone(), flags: ("--host", "--port") }],
            false => Vec::new(),
        }
    }

    fn retry_for(&self) -> Duration {
        self.cfg.run.retry_for
    }

    async fn attempt(&mut self, ctx: &RunContext) -> Result<Outcome> {
        driver::drive(&mut steps::Migrate { cfg: &self.cfg }, ctx).await
    }

    async fn search(&self, _side: &Side, ctx: &RunContext, discovered: Vec<(String, u16)>) -> Search {
        let cfg = &self.cfg;
        Search {
            old: cfg.source.clone(),
            candidates: cfg.failover.candidates.clone(),
            discovered: failover::with_control_replicas(discovered, &cfg.run.throttle.throttle_control_replicas),
            holds: Holds::Checkpoint { database: cfg.database.clone(), table: cfg.checkpoint_table(), streamed: true },
            committed: ctx.shared.with(|i| i.status.checkpoint.gtid_set.clone()),
            copied_rows: ctx.shared.rows_copied.load(Ordering::Relaxed),
            timeout: cfg.failover.timeout,
        }
    }

    fn adopt(&mut self, side: &Side, to: &ConnectionConfig, shared: &Shared) {
        let cfg = &mut self.cfg;
        cfg.source = to.clone();
        cfg.run.resume = true;
        cfg.run.resume_command = cfg.run.resume_command.as_deref().map(|c| failover::rehost(c, to, side.flags));
        shared.with(|i| {
            i.status.target.host = to.display();
            i.checkpoint_server = Some(to.opts());
        });
    }

    /// A resumable stop with the resume command; nothing is written to the old primary.
    async fn gave_up(&self, _side: &Side, ctx: &RunContext, reason: String) -> Outcome {
        let cfg = &self.cfg;
        let mut state = StateDump {
            tool_version: TOOL_VERSION.into(),
            host: cfg.source.display(),
            database: cfg.database.clone(),
            table: cfg.table.clone(),
            alter: cfg.alter.clone(),
            phase: ctx.shared.phase().map(|p| p.label().to_string()).unwrap_or_default(),
            reason,
            rows_copied: ctx.shared.rows_copied.load(Ordering::Relaxed),
            resume_command: cfg.run.resume_command.clone(),
            ..Default::default()
        };
        state.applied.applied_gtid_set = ctx.shared.with(|i| i.status.checkpoint.gtid_set.clone());
        Outcome::Stopped { state }
    }
}

/// A migration follows its primary's failovers when it writes, may wait for a new primary, and the primary is the
/// server it streams from and changes (not in replica mode, nor on a replica).
fn follows_failovers(cfg: &MigrationConfig) -> bool {
    cfg.run.execute && !cfg.failover.timeout.is_zero() && cfg.binlog_source.is_none() && cfg.on_replica.is_none()
}
