//! What each step of the pipeline ([`crate::engine::pipeline::driver`]) does for migrate: preflight (hooks, the
//! single-run lock, the resume decision, the plan, the instant attempt), setup (ghost, changelog and checkpoint
//! tables; the stream and the applier started), copy, the deferred indexes, catch-up, verify, ready, and the cut-over with its
//! clean-up. A resume past the swap (only the clean-up left, or a two-step cut-over between its renames) ends in
//! preflight with the short path of `finish`.

use std::sync::atomic::Ordering;

use color_eyre::eyre::Result;

use crate::engine::checkpoint::{self, CheckpointState};
use crate::engine::config::MigrationConfig;
use crate::engine::cutover::on_replica;
use crate::engine::copy::copier::CopyJob;
use crate::engine::copy::parallel::Slice;
use crate::engine::failpoint;
use crate::engine::hooks::Hook;
use crate::engine::pipeline::driver::{Flow, Run};
use crate::engine::pipeline::gate::{self, Interrupted};
use crate::engine::pipeline::lock::{self, LockPurpose, RunLock};
use crate::engine::pipeline::phase::Phase;
use crate::engine::pipeline::report::WithResume;
use crate::engine::pipeline::resume::Resume;
use crate::engine::pipeline::runtime::RunContext;
use crate::engine::pipeline::tasks::{start_tasks, Running};
use crate::engine::plan::preflight::{self, refuse, Plan};

use super::{adopted, copy, dry_run, dry_run_of_resume, finish, fire_refusable, indexes, instant, interrupted, lock_name, resume, revert, setup, task_plan, Outcome};
use crate::engine::pipeline::verify;
use crate::engine::verify::Verifier;

/// migrate's steps over one configuration.
pub(super) struct Migrate<'a> {
    pub(super) cfg: &'a MigrationConfig,
}

impl Run for Migrate<'_> {
    type Outcome = Outcome;
    type Checked = Checked;
    type Live = Live;

    async fn preflight(&mut self, ctx: &RunContext) -> Result<Flow<Checked, Outcome>> {
        let (mut conn, lock) = open(self.cfg, ctx).await?;
        let (cfg, shared) = (self.cfg, &ctx.shared);
        let (decision, resumed) = match (cfg.revert_from.is_some(), cfg.run.resume) {
            (true, _) => revert::decide(&mut conn, cfg).await?,
            (false, true) => resume::decide(&mut conn, cfg).await?,
            (false, false) => (Resume::SetupAgain, None),
        };
        if let Some(end) = past_the_swap(cfg, ctx, &mut conn, &decision, resumed.as_ref()).await? {
            return Ok(Flow::End(end));
        }
        let plan = match cfg.revert_from {
            Some(_) => revert::plan(&mut conn, cfg).await?,
            None => preflight::run(&mut conn, cfg).await?,
        };
        if !adopted(shared) {
            fire_refusable(&ctx.hooks, Hook::OnValidated, shared, "the on-validated hook refused the migration; nothing was changed").await?;
        }
        shared.with(|i| {
            i.status.target.flavor = if plan.mariadb { "mariadb".into() } else { "mysql".into() };
            i.status.target.version = plan.version.clone();
        });
        for n in &plan.notes {
            tracing::info!("{n}");
        }
        // A revert's ghost is the old table: never dropped, never refused for being there.
        let artifact_actions = match cfg.revert_from {
            Some(_) => revert::check_reverted_name(&mut conn, cfg).await?,
            None => preflight::check_artifacts(&mut conn, cfg).await?,
        };
        let resumed = match (&decision, resumed) {
            // A fresh revert: the migration's checkpoint, at its swap (a dry run changes nothing).
            (Resume::Continue { .. }, Some(st)) if cfg.revert_from.is_some() && st.cutover_complete => match cfg.run.execute {
                true => Some(revert::start(&mut conn, cfg, &plan, &st, &artifact_actions).await?),
                false => return Ok(Flow::End(revert_dry_run(cfg, &plan))),
            },
            (Resume::Continue { drop_sentry, .. }, Some(st)) => {
                // A dry run checks the same and removes nothing.
                resume::check_continue(&mut conn, cfg, &plan, &st, *drop_sentry && cfg.run.execute).await?;
                Some(st)
            }
            _ => None,
        };
        if !cfg.run.execute {
            return Ok(Flow::End(dry_run(cfg, &plan, &artifact_actions)));
        }
        if resumed.is_none() {
            if let Some(end) = before_setup(cfg, &mut conn).await? {
                return Ok(Flow::End(end));
            }
        }
        Ok(Flow::Go(Checked { conn, lock, plan, resumed, artifact_actions }))
    }

    async fn setup(&mut self, ctx: &RunContext, c: Checked) -> Result<Flow<Live, Outcome>> {
        let (cfg, shared) = (self.cfg, &ctx.shared);
        let Checked { mut conn, lock, plan, resumed, artifact_actions } = c;
        // Copy ranges made now: the verification may cut its chunks where the copy's ended.
        shared.with(|i| i.copy_boundaries.start(resumed.is_none()));
        let prepared = setup::run(&mut conn, cfg, &plan, resumed.as_ref(), &artifact_actions, shared, &ctx.hooks).await?;
        let setup::Prepared { mapping, changelog, job, delete_log, start, slices, missing_indexes } = prepared;
        let range = &slices[0].range;
        failpoint::trace(&format!(
            "run-start {} {}",
            range.watermark.as_deref().map(checkpoint::encode_key).unwrap_or_else(|| "start".into()),
            start.gtid_set
        ));
        trace_slices(&slices);
        shared.with(|i| {
            i.status.binlog.applied_gtid_set = start.gtid_set.clone();
            i.status.binlog.applied_file = start.file.clone();
            i.status.binlog.applied_pos = start.pos;
        });
        // The start position and copy range committed (or were read back on a resume): that is a checkpoint.
        shared.checkpoint_committed(Some(&start.gtid_set), range.watermark.as_deref().map(checkpoint::describe_key));
        shared.verify_available.store(cfg.checksum, Ordering::Relaxed);
        shared.with(|i| i.status.verify.enabled = cfg.checksum);
        let running = start_tasks(task_plan(cfg, &plan, &mapping, &changelog, start, delete_log), shared, &ctx.cancel, &ctx.stop)?;
        let indexes_missing = !missing_indexes.is_empty();
        shared.with(|i| i.status.copy.slices = slices.len() as u64);
        Ok(Flow::Go(Live { conn, _lock: lock, plan, job, slices, running, indexes_missing }))
    }

    fn runs(&self, live: &Live, phase: Phase) -> bool {
        match phase {
            Phase::Verify => self.cfg.checksum,
            Phase::Indexes => live.indexes_missing,
            _ => true,
        }
    }

    async fn record(&mut self, live: &mut Live, phase: Phase) -> Result<()> {
        let cfg = self.cfg;
        let word = match phase {
            Phase::Copy => "copy",
            Phase::Indexes => "indexes",
            Phase::Catchup => "catchup",
            Phase::Verify => "verify",
            Phase::ReadyToCutOver => "ready",
            _ => return Ok(()),
        };
        checkpoint::set_phase(&mut live.conn, &cfg.database, &cfg.checkpoint_table(), word).await
    }

    async fn step(&mut self, ctx: &RunContext, live: &mut Live, phase: Phase) -> Result<Flow<(), Outcome>> {
        let cfg = self.cfg;
        let waited = match phase {
            Phase::Copy => return Ok(copy(cfg, ctx, &mut live.running, &live.job, &mut live.slices).await?.map_or(Flow::Go(()), Flow::End)),
            Phase::Indexes => indexes::build(&mut live.conn, cfg, ctx, &live.plan, &mut live.running).await?,
            Phase::Catchup => {
                // A test holds the run here while the applier streams (tests/failover.rs kills the primary here).
                failpoint::hit("catchup-before-wait")?;
                gate::catch_up(ctx, &mut live.running).await?
            }
            Phase::Verify => verify_step(cfg, ctx, live, false).await?,
            _ => return ready(cfg, ctx, live).await,
        };
        match waited {
            Ok(()) => Ok(Flow::Go(())),
            Err(i) => Ok(Flow::End(interrupted(cfg, ctx, &mut live.running, i).await?)),
        }
    }

    async fn cut_over(&mut self, ctx: &RunContext, mut live: Live) -> Result<Outcome> {
        let cfg = self.cfg;
        let testing = finish::stop_replication_for_test(&mut live.conn, cfg, ctx, &mut live.running, live.plan.mariadb).await?;
        finish::begin(&mut live.conn, cfg, &mut live.running).await?;
        let report = match finish::cut_over(cfg, ctx, &mut live.running, &live.plan).await {
            Ok(report) => report,
            Err(e) if testing => {
                on_replica::start_replication(&mut live.conn, cfg, &ctx.hooks, &ctx.shared).await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        finish::swapped(&mut live.conn, cfg, &ctx.shared, &mut live.running, report).await
    }
}

/// What preflight hands to setup.
pub(super) struct Checked {
    conn: mysql_async::Conn,
    lock: RunLock,
    plan: Plan,
    resumed: Option<CheckpointState>,
    artifact_actions: Vec<String>,
}

/// A set-up migration: its connection, plan, copy job and range, and the running stream and applier.
pub(super) struct Live {
    conn: mysql_async::Conn,
    _lock: RunLock,
    plan: Plan,
    job: CopyJob,
    slices: Vec<Slice>,
    running: Running,
    /// The ghost lacks secondary indexes of the new structure: the index step adds them.
    indexes_missing: bool,
}

/// The on-startup hook, the connection to the source, and the single-run lock (taken before anything is changed).
async fn open(cfg: &MigrationConfig, ctx: &RunContext) -> Result<(mysql_async::Conn, RunLock)> {
    if !adopted(&ctx.shared) {
        fire_refusable(&ctx.hooks, Hook::OnStartup, &ctx.shared, "the on-startup hook refused the migration; nothing was changed").await?;
    }
    let mut conn = crate::engine::connection::connect(cfg.source.opts())
        .await
        .map_err(|e| refuse(format!("cannot connect to {}: {e}", cfg.source.display()), cfg.source.connect_hint()))?;
    if cfg.run.writes.allow_zero_in_date {
        // The dry run's ALTER on a temporary table and the ghost's run on this connection.
        crate::engine::sql::allow_zero_dates(&mut conn).await?;
    }
    let purpose = LockPurpose { name: lock_name(cfg), what: format!("migration of {}.{}", cfg.database, cfg.table), wait: lock::wait_for(&ctx.shared) };
    let lock = RunLock::acquire(&cfg.source.opts(), purpose, ctx.stop.clone(), ctx.cancel.clone()).await?;
    Ok((conn, lock))
}

fn revert_dry_run(cfg: &MigrationConfig, plan: &Plan) -> Outcome {
    let mut steps = revert::dry_run_steps(cfg, plan);
    steps.push("dry run: nothing was changed; add --execute to revert".into());
    for s in &steps {
        tracing::info!("{s}");
    }
    Outcome::DryRun { plan: steps }
}

/// The test trace's `slice-start <slice> <watermark>` lines of a parallel copy (tests/common/trace.rs reads them).
fn trace_slices(slices: &[Slice]) {
    if slices.len() < 2 {
        return;
    }
    for (i, s) in slices.iter().enumerate() {
        let at = if s.complete { "complete".to_string() } else { s.range.watermark.as_deref().map(checkpoint::encode_key).unwrap_or_else(|| "start".into()) };
        failpoint::trace(&format!("slice-start {} {at}", i + 1));
    }
}

/// A resume that finds the tables swapped (only the clean-up left) or a two-step cut-over between its renames
/// finishes on its short path; a dry run of one says what it would do.
async fn past_the_swap(cfg: &MigrationConfig, ctx: &RunContext, conn: &mut mysql_async::Conn, decision: &Resume, resumed: Option<&CheckpointState>) -> Result<Option<Outcome>> {
    match (decision, resumed, cfg.run.execute) {
        (Resume::Cleanup, _, true) => {
            tracing::info!("the tables were swapped before the interruption: finishing the clean-up");
            finish::cleanup(cfg, conn, &ctx.shared, 0).await.map(Some)
        }
        (Resume::FinishRename, Some(st), true) => finish::finish_rename(conn, cfg, ctx, st).await.map(Some),
        (Resume::Cleanup | Resume::FinishRename, _, _) => Ok(Some(dry_run_of_resume(cfg, decision))),
        _ => Ok(None),
    }
}

/// A new run, before anything is created: the instant attempt (done when the server alters in place), a prepared
/// XA transaction refused, a resume whose setup never committed cleared. A refusal here leaves nothing behind.
async fn before_setup(cfg: &MigrationConfig, conn: &mut mysql_async::Conn) -> Result<Option<Outcome>> {
    if cfg.attempt_instant_ddl {
        if let Some(took_ms) = instant::attempt(&cfg.source.opts(), cfg).await? {
            return Ok(Some(Outcome::AlteredInstantly { took_ms }));
        }
    }
    crate::engine::stream::start::no_prepared_xa(conn).await?;
    if cfg.run.resume {
        resume::drop_partial_setup(conn, cfg).await?;
    }
    Ok(None)
}

/// The ready step: the gate, and a verification again whenever one is requested while the cut-over waits; once
/// approved, what comes right before the cut-over (the ghost analyzed, the before-cut-over hook).
async fn ready(cfg: &MigrationConfig, ctx: &RunContext, live: &mut Live) -> Result<Flow<(), Outcome>> {
    loop {
        match gate::ready(ctx, &mut live.running, cfg.run.postpone_cut_over).await {
            Ok(Ok(())) => {
                if let Err(e) = refuse_null_keys(cfg, live).await {
                    live.running.stop().await;
                    return Err(e);
                }
                finish::before_cut_over(&mut live.conn, cfg, ctx, &mut live.running).await?;
                return Ok(Flow::Go(()));
            }
            Ok(Err(Interrupted::VerifyRequested)) => {
                ctx.shared.enter(Phase::Verify);
                if let Err(i) = verify_step(cfg, ctx, live, true).await? {
                    return Ok(Flow::End(interrupted(cfg, ctx, &mut live.running, i).await?));
                }
                ctx.shared.enter(Phase::ReadyToCutOver);
            }
            Ok(Err(i)) => return Ok(Flow::End(interrupted(cfg, ctx, &mut live.running, i).await?)),
            Err(e) => {
                live.running.stop().await;
                return Err(e.with_resume(cfg));
            }
        }
    }
}

/// A nullable key (`--allow-nullable-unique-key`): the original holds no row with a NULL in it right before the
/// cut-over (one written before the start position is in neither the stream nor a key range; the applier refuses
/// any written since).
async fn refuse_null_keys(cfg: &MigrationConfig, live: &mut Live) -> Result<()> {
    let mapping = &live.plan.mapping;
    if !mapping.nullable_key {
        return Ok(());
    }
    let nulls = preflight::null_key_rows(&mut live.conn, &cfg.database, &cfg.table, mapping).await?;
    if nulls > 0 {
        color_eyre::eyre::bail!(
            "{nulls} row(s) of {}.{} hold a NULL in the key `{}`: no key range reaches them, so the run stops before the cut-over (the original is untouched); set those values and --resume",
            cfg.database,
            cfg.table,
            mapping.key.name
        );
    }
    Ok(())
}

/// The verification (`fresh`: a re-verification from the start while the cut-over waits); an error fails the run
/// with the original serving (the verification stopped the tasks).
async fn verify_step(cfg: &MigrationConfig, ctx: &RunContext, live: &mut Live, fresh: bool) -> Result<std::result::Result<(), Interrupted>> {
    let rows = crate::engine::verify::chunk_rows(cfg.run.chunk_size);
    let slices: Vec<String> = live.slices.iter().map(|s| s.row.clone()).collect();
    let boundaries = ctx.shared.with(|i| i.copy_boundaries.of(&slices));
    let table = Verifier::new(cfg.source.opts(), live.job.clone(), &live.plan.new_structure, live.plan.mariadb, verify::POOL, rows).with_boundaries(boundaries);
    verify::run(cfg, ctx, &mut live.running, &[table], fresh)
        .await
        .map_err(|e| e.wrap_err("the verification before the cut-over failed").with_resume(cfg))
}
