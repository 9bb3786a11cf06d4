//! migrate: one table changed in place, a run of the one pipeline ([`crate::engine::pipeline::driver`]). What
//! each step does is in `steps`; the step bodies' pieces are modules of their own: `setup`, `indexes`, `resume`, `revert`,
//! `finish` (cut-over and clean-up), `instant` (the verification step is the shared `pipeline::verify`); the frame (status, commands, hooks) is `runtime`. This module holds
//! the outcome, the state dump and what the steps share (the copy step, stops, the task plan).

mod finish;
mod follow;
mod indexes;
pub mod instant;
mod resume;
mod revert;
mod setup;
mod steps;

pub(crate) use setup::warning_rules;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{eyre, Result};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::engine::apply::applier::CheckpointTarget;
use crate::engine::checkpoint;
use crate::engine::config::MigrationConfig;
use crate::engine::copy::delete_log::DeleteLog;
use crate::engine::copy::copier::CopyControl;
use crate::engine::copy::parallel::{self, Slice};
use crate::engine::failpoint;
use crate::engine::hooks::{Hook, Hooks};
use crate::engine::pipeline::commands::CheckpointLocation;
use crate::engine::pipeline::gate::{self, Interrupted};
use crate::engine::pipeline::report::WithResume;
use crate::engine::pipeline::resume::Resume;
use crate::engine::pipeline::runtime::{self, Ending, Frame, RunContext, RunOutcome};
use crate::engine::pipeline::tasks::{applied_table, join_slot, watched_changelog, Running, StopReason, TaskPlan, TaskResult};
use crate::engine::plan::preflight::{refuse, Plan};
use crate::engine::plan::schema::{ColumnMapping, TableInfo};
use crate::engine::shared::Shared;
use crate::engine::status::{EngineHandle, TargetInfo};
use crate::engine::stream::binlog::BinlogPosition;

pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a migration ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// Swapped; the original is kept as `old_table` (or dropped with --ok-to-drop-table).
    Done { old_table: String, stall_ms: u64, old_table_dropped: bool },
    /// `--test-on-replica`: swapped and swapped back on the replica; the original serves under its name, the
    /// migrated copy is `ghost_table`; replication stays stopped unless the stop was skipped.
    TestedOnReplica { ghost_table: String, stall_ms: u64, replication_stopped: bool },
    /// `--attempt-instant-ddl` and the server altered the table in place (`ALGORITHM=INSTANT`): no ghost, no copy.
    AlteredInstantly { took_ms: u64 },
    /// Dry run: validated, nothing changed; what would be done.
    DryRun { plan: Vec<String> },
    /// Stopped on request (Stop/Abort/signal/panic flag) with a checkpoint; resumable.
    Stopped { state: StateDump },
}

/// The state printed on SIGINT/SIGTERM (and `--state-file`): where the migration stands, and how to resume.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct StateDump {
    pub tool_version: String,
    pub host: String,
    pub database: String,
    pub table: String,
    pub alter: String,
    pub alter_fingerprint: String,
    pub phase: String,
    pub reason: String,
    #[serde(flatten)]
    pub applied: checkpoint::AppliedPosition,
    pub copy_watermark: Option<String>,
    pub copy_complete: bool,
    pub rows_copied: u64,
    pub resume_command: Option<String>,
}

/// Starts a migration in the background.
pub fn start(cfg: MigrationConfig) -> (EngineHandle, JoinHandle<Result<Outcome>>) {
    let shared = runtime::shared_for(&cfg.run);
    shared.with(|i| {
        i.status.target = TargetInfo {
            // Replica mode: gh-ost's "inspecting" the replica, "migrating" (writes) its primary.
            host: cfg.binlog_server().display(),
            applier_host: cfg.binlog_source.as_ref().map(|_| cfg.source.display()).unwrap_or_default(),
            database: cfg.database.clone(),
            table: cfg.table.clone(),
            alter: cfg.alter.clone(),
            ghost_table: cfg.ghost_table(),
            old_table: cfg.old_table(),
            dry_run: !cfg.run.execute,
            ..Default::default()
        };
    });
    let checkpoint = CheckpointLocation { opts: cfg.source.opts(), database: cfg.database.clone(), table: cfg.checkpoint_table() };
    let frame = Frame::new(shared, Hooks::for_migration(&cfg), checkpoint, &cfg.run, "the copy is done", true);
    runtime::spawn(frame, move |ctx: RunContext| async move { crate::engine::pipeline::follow::follow(&mut follow::Migration { cfg }, &ctx).await })
}

impl RunOutcome for Outcome {
    fn ending(&self) -> Ending {
        match self {
            Outcome::Done { .. } | Outcome::TestedOnReplica { .. } | Outcome::AlteredInstantly { .. } | Outcome::DryRun { .. } => Ending::Done,
            Outcome::Stopped { state } => Ending::Stopped { reason: state.reason.clone(), resume_command: state.resume_command.clone() },
        }
    }
}

/// The single-run lock's name: `revenant.<db>.<table>`, or, past the server's 64 characters for lock names, a
/// digest of the same (the same for every run of the table, as the lock must be).
fn lock_name(cfg: &MigrationConfig) -> String {
    use sha2::{Digest, Sha256};
    let plain = format!("revenant.{}.{}", cfg.database, cfg.table);
    if plain.chars().count() <= 64 {
        return plain;
    }
    let digest = hex::encode(Sha256::digest(format!("{}\0{}", cfg.database, cfg.table).as_bytes()));
    format!("revenant.{}", &digest[..48])
}

/// An attempt after a failover: the run already started, was validated and began its copy (its hooks fired once; a
/// refusal now would stop a migration that is half done), so on-startup, on-validated and on-before-row-copy are
/// not fired again.
pub(super) fn adopted(shared: &Shared) -> bool {
    shared.with(|i| i.status.failover.count > 0)
}

async fn fire_unless_adopted(ctx: &RunContext, hook: Hook) -> Result<()> {
    match adopted(&ctx.shared) {
        true => Ok(()),
        false => ctx.hooks.fire(hook, &[], &ctx.shared.snapshot(0)).await,
    }
}

/// The copy step, with its hooks; `Some(outcome)` when the run stopped or a task ended meanwhile.
pub(super) async fn copy(cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, job: &crate::engine::copy::copier::CopyJob, slices: &mut [Slice]) -> Result<Option<Outcome>> {
    let shared = &ctx.shared;
    let copy_ran = !shared.copy_complete.load(Ordering::Relaxed);
    gate::first_throttle_check(shared).await;
    if copy_ran {
        if let Err(e) = fire_unless_adopted(ctx, Hook::OnBeforeRowCopy).await {
            running.stop().await;
            return Err(e.with_resume(cfg));
        }
        let opts = cfg.source.opts();
        let control = CopyControl { chunk_target: cfg.run.chunk_target, retry_for: cfg.run.retry_for, cancel: running.tasks_cancel.clone() };
        let copy_fut = async {
            match slices {
                [only] => job.run(&opts, &mut only.range, shared.clone(), &control).await,
                _ => parallel::run(job, &opts, slices, shared.clone(), &control).await,
            }
        };
        tokio::pin!(copy_fut);
        let result = loop {
            tokio::select! {
                r = &mut copy_fut => break r,
                r = join_slot(&mut running.streamer) => return fail_or_stop(cfg, shared, &ctx.stop, running, r, "binlog streamer").await.map(Some),
                r = join_slot(&mut running.applier) => return fail_or_stop(cfg, shared, &ctx.stop, running, r, "applier").await.map(Some),
                _ = ctx.cancel.cancelled() => running.tasks_cancel.cancel(),
            }
        };
        match result {
            Ok(true) => {}
            Ok(false) => return stop_now(cfg, shared, &ctx.stop, running).await.map(Some),
            Err(e) => {
                running.tasks_cancel.cancel();
                return Err(e.wrap_err("the row copy failed").with_resume(cfg));
            }
        }
    }
    if cfg.exact_rowcount {
        shared.rows_estimate.store(shared.rows_copied.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    if copy_ran {
        if let Err(e) = ctx.hooks.fire(Hook::OnRowCopyComplete, &[], &shared.snapshot(0)).await {
            running.stop().await;
            return Err(e.with_resume(cfg));
        }
    }
    failpoint::hit("after-copy")?;
    Ok(None)
}

async fn fire_refusable(hooks: &Hooks, hook: Hook, shared: &Shared, todo: &str) -> Result<()> {
    hooks.fire(hook, &[], &shared.snapshot(0)).await.map_err(|e| refuse(format!("{e:#}"), todo))
}

/// A wait that ended early: a stop (with the state dump) or a task that ended (its error).
async fn interrupted(cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, i: Interrupted) -> Result<Outcome> {
    match i {
        Interrupted::Stopped => stop_now(cfg, &ctx.shared, &ctx.stop, running).await,
        Interrupted::TaskEnded(what, r) => fail_or_stop(cfg, &ctx.shared, &ctx.stop, running, r, what).await,
        Interrupted::VerifyRequested => {
            running.stop().await;
            Err(eyre!("a verification was requested outside the ready phase").with_resume(cfg))
        }
    }
}

/// A dry run of a resume that only has the end left.
fn dry_run_of_resume(cfg: &MigrationConfig, decision: &Resume) -> Outcome {
    let what = match decision {
        Resume::Cleanup => format!("the tables were swapped: would clean up ({} stays as the original)", cfg.old_table()),
        _ => format!("the two-step cut-over stopped between its renames: would apply the binary log and rename {} to {}", cfg.ghost_table(), cfg.table),
    };
    let plan = vec![what, "dry run: nothing was changed; add --execute to resume".to_string()];
    for s in &plan {
        tracing::info!("{s}");
    }
    Outcome::DryRun { plan }
}

/// What a dry run validated and what `--execute` would do.
fn dry_run(cfg: &MigrationConfig, plan: &Plan, artifact_actions: &[String]) -> Outcome {
    let mut steps = vec![
        format!("validated: {} {} on {}", plan.original.name, plan.alter.clause, cfg.source.display()),
        format!(
            "shared key: {} ({}); {} columns copied",
            plan.mapping.key.name,
            plan.mapping.key.columns.join(", "),
            plan.mapping.shared.len()
        ),
    ];
    steps.extend(plan.notes.iter().cloned());
    steps.extend(artifact_actions.iter().map(|a| format!("would run: {a}")));
    steps.push(format!(
        "would create {}, {} and {}; copy rows in chunks of {}; apply the binlog; cut over ({:?})",
        cfg.ghost_table(),
        cfg.changelog_table(),
        cfg.checkpoint_table(),
        cfg.run.chunk_size,
        cfg.cut_over
    ));
    if cfg.attempt_instant_ddl {
        steps.push(format!("would first try: {} (if the server refuses, the migration above)", instant::statement(cfg)));
    }
    steps.push("dry run: nothing was changed; add --execute to migrate".into());
    for s in &steps {
        tracing::info!("{s}");
    }
    Outcome::DryRun { plan: steps }
}

/// What migrate streams and applies: the original's row events onto the ghost (checking deletes against the
/// copy), the changelog's heartbeats and markers; the checkpoint next to the ghost.
fn task_plan(cfg: &MigrationConfig, plan: &Plan, mapping: &ColumnMapping, changelog: &TableInfo, start: BinlogPosition, delete_log: Arc<DeleteLog>) -> TaskPlan {
    let mut table = applied_table(plan, mapping, &cfg.table, &cfg.database, &cfg.ghost_table());
    table.target.deletes = Some(delete_log);
    TaskPlan {
        source: cfg.binlog_server().opts(),
        target: cfg.source.opts(),
        mariadb: plan.mariadb,
        start,
        tables: vec![table],
        changelog: watched_changelog(changelog),
        checkpoint: CheckpointTarget { database: cfg.database.clone(), table: cfg.checkpoint_table() },
        guarded_tables: vec![(cfg.database.clone(), cfg.table.clone())],
        ddl_allowed: false,
        own_statements: match cfg.revert_from {
            Some(_) => [crate::engine::cutover::swap::own_renames(cfg).to_vec(), revert::migration_renames(cfg)].concat(),
            None => crate::engine::cutover::swap::own_renames(cfg).into(),
        },
        retry_for: cfg.run.retry_for,
        client_id_base: 1_000_000,
        client_server_id: cfg.replica_server_id,
        throttle: cfg.clone(),
    }
}

async fn stop_now(cfg: &MigrationConfig, shared: &Shared, control: &StopReason, running: &mut Running) -> Result<Outcome> {
    running.stop().await;
    let reason = control.get().unwrap_or_else(|| "stopped".into());
    let state = dump_state(cfg, shared, &reason).await;
    Ok(Outcome::Stopped { state })
}

async fn fail_or_stop(
    cfg: &MigrationConfig,
    shared: &Shared,
    control: &StopReason,
    running: &mut Running,
    r: TaskResult,
    what: &str,
) -> Result<Outcome> {
    // The applier ends quietly when the streamer's channel closes: the streamer's own result says why.
    let streamer_result = match (&r, running.streamer.is_some()) {
        (Ok(Ok(())), true) if control.get().is_none() => {
            tokio::time::timeout(Duration::from_secs(10), join_slot(&mut running.streamer)).await.ok()
        }
        _ => None,
    };
    running.tasks_cancel.cancel();
    if let Some(Ok(Err(e))) = streamer_result {
        return Err(e.wrap_err("the binlog streamer failed").with_resume(cfg));
    }
    match r {
        Ok(Ok(())) if control.get().is_some() => stop_now(cfg, shared, control, running).await,
        Ok(Ok(())) => Err(eyre!("the {what} ended unexpectedly")).map_err(|e| e.with_resume(cfg)),
        Ok(Err(e)) => Err(e.wrap_err(format!("the {what} failed")).with_resume(cfg)),
        Err(e) => Err(eyre!("the {what} panicked: {e}").with_resume(cfg)),
    }
}

/// Writes the summary and builds the state dump.
pub async fn dump_state(cfg: &MigrationConfig, shared: &Shared, reason: &str) -> StateDump {
    let mut dump = StateDump {
        tool_version: TOOL_VERSION.into(),
        host: cfg.source.display(),
        database: cfg.database.clone(),
        table: cfg.table.clone(),
        alter: cfg.alter.clone(),
        phase: shared.phase().map(|p| p.label().to_string()).unwrap_or_default(),
        reason: reason.to_string(),
        resume_command: cfg.run.resume_command.clone(),
        ..Default::default()
    };
    // A failover's stop writes nothing to the primary it gives up (the run continues on the new one).
    if reason.starts_with(crate::engine::pipeline::failover::STOP_PREFIX) {
        return dump;
    }
    if let Ok(mut c) = crate::engine::connection::connect(cfg.source.opts()).await {
        let _ = checkpoint::set_phase(&mut c, &cfg.database, &cfg.checkpoint_table(), &format!("stopped:{}", dump.phase)).await;
        if let Ok(Some(st)) = checkpoint::read(&mut c, &cfg.database, &cfg.checkpoint_table()).await {
            dump.applied = st.applied();
            dump.alter_fingerprint = st.alter_fingerprint;
            dump.copy_watermark = st.copy_watermark;
            dump.copy_complete = st.copy_complete;
            dump.rows_copied = st.rows_copied;
        }
        let _ = c.disconnect().await;
    }
    dump
}
