//! What each step of the pipeline ([`crate::engine::pipeline::driver`]) does for move-tables: preflight (both
//! servers, the single-run lock, the resume decision from the shared resume table), setup, copy (table after
//! table, across servers), catch-up (to what the source executed by the end of the copy), verify (every table,
//! source against target, as migrate verifies its ghost), ready (the shared gate, verifying again on request),
//! cut-over (before-hook, fence, drain, announce).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use color_eyre::eyre::{eyre, Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::checkpoint::{self, CheckpointState};
use crate::engine::config::MigrationConfig;
use crate::engine::copy::copier::{CopyControl, CopyRange, CrossServer};
use crate::engine::failpoint;
use crate::engine::hooks::Hook;
use crate::engine::pipeline::driver::{Flow, Run};
use crate::engine::pipeline::gate::{self, Interrupted};
use crate::engine::pipeline::lock::{self, LockPurpose, RunLock};
use crate::engine::pipeline::phase::Phase;
use crate::engine::pipeline::resume::{resume_from, CheckpointFacts, Observed, OldTable, Resume, RunKind};
use crate::engine::pipeline::runtime::RunContext;
use crate::engine::pipeline::tasks::{join_slot, start_tasks, Running, TaskResult};
use crate::engine::pipeline::verify;
use crate::engine::verify::Verifier;
use crate::engine::plan::preflight::{self, refuse, Plan};
use crate::engine::plan::schema;
use crate::engine::sql::quote_ident;
use crate::engine::stream::binlog::BinlogPosition;
use crate::engine::stream::gtid::GtidSet;

use super::finish::{after_fence, announce, fence, persist_drain};
use super::preflight::{changelog_comment, check_gtids, dry_run_plan, gtid_executed, source_state, table_exists, table_exists_db};
use super::setup::{copy_job, drop_changelog, ensure_changelog, read_copy_rows, record_start, set_summary, setup_target, CopyRow};
use super::{run_hook, task_plan, with_resume, MoveOutcome, MoveStateDump, MoveTablesConfig, MovedTable, SourceState, CHANGELOG_COMMENT, CHANGELOG_TABLE, CHECKPOINT_TABLE, NO_ALTER};

/// The two connections of a move and the flavour they share.
struct Servers {
    src: mysql_async::Conn,
    tgt: mysql_async::Conn,
    mariadb: bool,
}

/// move-tables' steps over one configuration.
pub(super) struct Move<'a> {
    pub(super) cfg: &'a MoveTablesConfig,
}

/// What preflight hands to setup.
pub(super) struct Checked {
    sv: Servers,
    lock: RunLock,
    state: Option<CheckpointState>,
    decision: Resume,
    plans: Vec<(String, Plan)>,
}

/// A set-up move: the servers, the mapped tables, their copy rows, and the running stream and applier.
pub(super) struct Live {
    sv: Servers,
    _lock: RunLock,
    tables: Vec<MovedTable>,
    copy_rows: HashMap<String, CopyRow>,
    /// The drain GTID recorded before an interruption.
    recorded_drain: Option<String>,
    /// The source tables were fenced before an interruption: only the drain and the announcement are left.
    fenced: bool,
    running: Running,
}

impl Run for Move<'_> {
    type Outcome = MoveOutcome;
    type Checked = Checked;
    type Live = Live;

    async fn preflight(&mut self, ctx: &RunContext) -> Result<Flow<Checked, MoveOutcome>> {
        let cfg = self.cfg;
        if cfg.tables.is_empty() {
            return Err(refuse("no tables to move", "name them with --tables t1,t2"));
        }
        let mut sv = connect(cfg).await?;
        let fingerprint = checkpoint::fingerprint(&format!("{}.{}", cfg.database, cfg.tables_text()));
        // Lock names are at most 64 characters: the tables go in as a fingerprint.
        let purpose = LockPurpose { name: format!("revenant.move.{}", &fingerprint[..32]), what: format!("move of {}.[{}]", cfg.database, cfg.tables_text()), wait: lock::wait_for(&ctx.shared) };
        let lock = RunLock::acquire(&cfg.source.opts(), purpose, ctx.stop.clone(), ctx.cancel.clone()).await?;
        let state = checkpoint::read(&mut sv.tgt, &cfg.target_database, CHECKPOINT_TABLE).await?;
        let source_now = source_state(&mut sv.src, cfg).await?;
        let decision = decide(cfg, &mut sv, state.as_ref(), source_now).await?;
        let plans = table_plans(&mut sv.src, cfg, source_now).await?;
        ctx.shared.with(|i| {
            i.status.target.flavor = if sv.mariadb { "mariadb".into() } else { "mysql".into() };
            i.status.target.version = plans.first().map(|(_, p)| p.version.clone()).unwrap_or_default();
        });
        let changelog_exists = check_changelog_owner(&mut sv.src, cfg).await?;
        if !cfg.run.execute {
            let plan = dry_run_plan(&mut sv.src, cfg, &plans, state.as_ref(), source_now, sv.mariadb, changelog_exists).await?;
            for line in &plan {
                tracing::info!("{line}");
            }
            return Ok(Flow::End(MoveOutcome::DryRun { plan }));
        }
        if let Some(done) = finished_before(cfg, ctx, &mut sv, &decision, state.as_ref()).await? {
            return Ok(Flow::End(done));
        }
        Ok(Flow::Go(Checked { sv, lock, state, decision, plans }))
    }

    async fn setup(&mut self, ctx: &RunContext, c: Checked) -> Result<Flow<Live, MoveOutcome>> {
        let cfg = self.cfg;
        let Checked { mut sv, lock, state, decision, plans } = c;
        // Copy ranges made now: the verification may cut its chunks where the copy's ended.
        ctx.shared.with(|i| i.copy_boundaries.start(decision == Resume::SetupAgain));
        if decision == Resume::SetupAgain {
            crate::engine::stream::start::no_prepared_xa(&mut sv.src).await?;
            setup_again(cfg, &mut sv, plans.as_slice(), state.is_some()).await?;
        }
        let changelog = ensure_changelog(&mut sv.src, cfg).await?;
        failpoint::hit("move-after-setup")?;
        let tables = map_tables(cfg, &mut sv.tgt, plans).await?;
        let mut copy_rows = read_copy_rows(&mut sv.tgt, &cfg.target_database).await?;
        if decision == Resume::SetupAgain {
            record_start(&mut sv.src, &mut sv.tgt, cfg, &tables, sv.mariadb, &mut copy_rows).await?;
        }
        let st = checkpoint::read(&mut sv.tgt, &cfg.target_database, CHECKPOINT_TABLE)
            .await?
            .ok_or_else(|| eyre!("the checkpoint table vanished on the target"))?;
        let start = restore_counters(ctx, &copy_rows, &st);
        // Test builds: where this run starts copying (the first table not complete) and streaming, for the redo bound.
        let first = tables.iter().find_map(|t| copy_rows.get(&t.name).filter(|r| !r.complete).map(|r| r.watermark.clone().unwrap_or_else(|| "start".into())));
        failpoint::trace(&format!("run-start {} {}", first.unwrap_or_else(|| "start".into()), start.gtid_set));
        let fenced = decision == Resume::Drain;
        ctx.shared.verify_available.store(cfg.checksum && !fenced, Ordering::Relaxed);
        ctx.shared.with(|i| i.status.verify.enabled = cfg.checksum);
        let running = start_tasks(task_plan(cfg, &tables, &changelog, start, sv.mariadb, fenced), &ctx.shared, &ctx.cancel, &ctx.stop)?;
        Ok(Flow::Go(Live { sv, _lock: lock, tables, copy_rows, recorded_drain: st.drain_gtid.clone(), fenced, running }))
    }

    fn runs(&self, live: &Live, phase: Phase) -> bool {
        // The target tables are created with all their indexes.
        match phase {
            Phase::Verify => self.cfg.checksum && !live.fenced,
            Phase::Indexes => false,
            _ => !live.fenced,
        }
    }

    async fn record(&mut self, live: &mut Live, phase: Phase) -> Result<()> {
        let assignment = match phase {
            Phase::Copy => "phase = 'copy'",
            Phase::Catchup => "phase = 'catchup'",
            Phase::Verify => "phase = 'verify'",
            Phase::ReadyToCutOver => "phase = 'ready'",
            _ => return Ok(()),
        };
        set_summary(&mut live.sv.tgt, self.cfg, assignment).await
    }

    async fn step(&mut self, ctx: &RunContext, live: &mut Live, phase: Phase) -> Result<Flow<(), MoveOutcome>> {
        let cfg = self.cfg;
        let waited = match phase {
            Phase::Copy => return copy_tables(cfg, ctx, live).await,
            Phase::Catchup => {
                // Catch up with what the source executed by the end of the copy.
                let goal = GtidSet::parse(live.sv.mariadb, &gtid_executed(&mut live.sv.src, live.sv.mariadb).await?)?;
                gate::wait_applied(ctx, &mut live.running, &goal, live.sv.mariadb, false).await?
            }
            Phase::Verify => verify_step(cfg, ctx, live, false).await?,
            _ => ready(cfg, ctx, live).await?,
        };
        match waited {
            Ok(()) => Ok(Flow::Go(())),
            Err(i) => Ok(Flow::End(interrupted(cfg, ctx, &mut live.running, i).await?)),
        }
    }

    async fn cut_over(&mut self, ctx: &RunContext, mut live: Live) -> Result<MoveOutcome> {
        let cfg = self.cfg;
        if live.fenced {
            tracing::info!("the source tables were fenced before the interruption: draining, never renaming again");
        } else {
            failpoint::hit("move-gate")?;
            if let Some(out) = before_fence(cfg, ctx, &mut live).await? {
                return Ok(out);
            }
        }
        let recorded = live.recorded_drain.take();
        fence_drain_announce(cfg, ctx, &mut live.sv, &mut live.running, recorded, live.fenced).await
    }
}

async fn connect(cfg: &MoveTablesConfig) -> Result<Servers> {
    let mut src = crate::engine::connection::connect(cfg.source.opts())
        .await
        .map_err(|e| refuse(format!("cannot connect to the source {}: {e}", cfg.source.display()), cfg.source.connect_hint()))?;
    let mut tgt = crate::engine::connection::connect(cfg.target.opts()).await.map_err(|e| {
        refuse(format!("cannot connect to the target {}: {e}", cfg.target.display()), "check --target-host, --target-port, --target-user, --target-conf and the target's TLS settings (--target-ssl-ca must name the CA that signed its certificate)")
    })?;
    if cfg.run.writes.allow_zero_in_date {
        // The dry run's ALTER runs on the source, the target tables' on the target.
        crate::engine::sql::allow_zero_dates(&mut src).await?;
        crate::engine::sql::allow_zero_dates(&mut tgt).await?;
    }
    let mariadb = check_gtids(&mut src, "source").await?;
    if mariadb != check_gtids(&mut tgt, "target").await? {
        return Err(refuse("the source and the target are of different flavours (MySQL and MariaDB)", "move tables between servers of one flavour"));
    }
    if !table_exists_db(&mut tgt, &cfg.target_database).await? {
        return Err(refuse(
            format!("the target database {} does not exist on {}", cfg.target_database, cfg.target.display()),
            format!("create it first: CREATE DATABASE {}", quote_ident(&cfg.target_database)),
        ));
    }
    Ok(Servers { src, tgt, mariadb })
}

/// Where the move continues: a fresh move (checked for leftovers) sets up; a resume asks the resume table.
async fn decide(cfg: &MoveTablesConfig, sv: &mut Servers, state: Option<&CheckpointState>, source_now: SourceState) -> Result<Resume> {
    match (state, cfg.run.resume) {
        (Some(_), false) => Err(refuse(
            format!("a checkpoint of an earlier move exists ({}.{CHECKPOINT_TABLE} on the target)", cfg.target_database),
            "run the same command with --resume to continue it, or drop it after checking (docs/move-tables.md)",
        )),
        (None, true) => Err(refuse(
            format!("nothing to resume: no checkpoint table {}.{CHECKPOINT_TABLE} on the target", cfg.target_database),
            "run without --resume to start a new move",
        )),
        (None, false) => check_fresh(cfg, sv, source_now).await.map(|_| Resume::SetupAgain),
        (Some(st), true) => decide_resume(cfg, sv, st, source_now).await,
    }
}

async fn decide_resume(cfg: &MoveTablesConfig, sv: &mut Servers, st: &CheckpointState, source_now: SourceState) -> Result<Resume> {
    if st.database_name != cfg.database || st.table_name != cfg.tables_text() {
        return Err(refuse(
            format!("the checkpoint on the target is for {}.[{}]", st.database_name, st.table_name),
            "resume with the same --database and --tables",
        ));
    }
    if checkpoint::fingerprint(&cfg.alter.clone().unwrap_or_default()) != st.alter_fingerprint {
        return Err(refuse(format!("the --alter differs from the one being resumed ('{}')", st.alter_statement), "resume with exactly the same --alter"));
    }
    let mut targets = true;
    for t in &cfg.tables {
        targets &= table_exists(&mut sv.tgt, &cfg.target_database, t).await?;
    }
    let observed = match source_now {
        SourceState::Serving => Observed { original: true, old: OldTable::Absent, ghost: targets },
        SourceState::Fenced => Observed { original: false, old: OldTable::Table, ghost: targets },
    };
    let facts = CheckpointFacts { phase: st.phase.clone(), cutover_started: st.cutover_started, cutover_complete: st.cutover_complete, drain_gtid: st.drain_gtid.clone() };
    match resume_from(RunKind::MoveTables, Some(&facts), observed) {
        Resume::Refuse { what, todo } => Err(refuse(format!("{}.[{}]: {what}", cfg.database, cfg.tables_text()), todo)),
        other => Ok(other),
    }
}

/// A new move: the source tables serve, and neither the target tables nor the fence names exist yet.
async fn check_fresh(cfg: &MoveTablesConfig, sv: &mut Servers, source_now: SourceState) -> Result<()> {
    if source_now == SourceState::Fenced {
        return Err(refuse("the source tables are already renamed to _<t>_del", "check the source by hand"));
    }
    for t in &cfg.tables {
        if table_exists(&mut sv.tgt, &cfg.target_database, t).await? {
            return Err(refuse(
                format!("table {}.{t} already exists on the target {}", cfg.target_database, cfg.target.display()),
                "move into a database without these tables, or drop them after checking they hold nothing you need",
            ));
        }
        if table_exists(&mut sv.src, &cfg.database, &MoveTablesConfig::old_table(t)).await? {
            return Err(refuse(
                format!("table {}.{} already exists on the source (the fence needs the name)", cfg.database, MoveTablesConfig::old_table(t)),
                "drop or rename it after checking it holds nothing you need",
            ));
        }
    }
    Ok(())
}

/// Preflight of every table (on its fenced name once fenced: the binary log before the fence names it `t`).
async fn table_plans(src: &mut mysql_async::Conn, cfg: &MoveTablesConfig, source_now: SourceState) -> Result<Vec<(String, Plan)>> {
    let mut plans = Vec::new();
    for t in &cfg.tables {
        let name = if source_now == SourceState::Fenced { MoveTablesConfig::old_table(t) } else { t.clone() };
        let mcfg = MigrationConfig::new(cfg.source.clone(), &cfg.database, &name, cfg.alter.as_deref().unwrap_or(NO_ALTER));
        let plan = preflight::run(src, &mcfg).await.wrap_err_with(|| format!("table {}.{name} on the source", cfg.database))?;
        plans.push((t.clone(), plan));
    }
    Ok(plans)
}

/// Whether the heartbeat table exists (it must be ours if it does).
async fn check_changelog_owner(src: &mut mysql_async::Conn, cfg: &MoveTablesConfig) -> Result<bool> {
    match changelog_comment(src, cfg).await? {
        None => Ok(false),
        Some(c) if c == CHANGELOG_COMMENT => Ok(true),
        Some(_) => Err(refuse(
            format!("{}.{CHANGELOG_TABLE} exists on the source and is not revenant's (its comment is not '{CHANGELOG_COMMENT}')", cfg.database),
            "the move writes its heartbeats there: rename or drop that table after checking it holds nothing you need",
        )),
    }
}

/// A move that already drained (only the announcement is left) or is done.
async fn finished_before(cfg: &MoveTablesConfig, ctx: &RunContext, sv: &mut Servers, decision: &Resume, st: Option<&CheckpointState>) -> Result<Option<MoveOutcome>> {
    let drain = st.and_then(|s| s.drain_gtid.clone()).unwrap_or_default();
    match decision {
        Resume::AlreadyDone => {
            tracing::info!("the move was already complete (the success hook ran); nothing is left to do");
            drop_changelog(&mut sv.src, cfg).await;
            Ok(Some(MoveOutcome::Done { drain_gtid: drain }))
        }
        Resume::Announce => {
            ctx.shared.enter(Phase::CutOver);
            let done = announce(cfg, &ctx.hooks, &mut sv.tgt, &ctx.shared, &drain).await.map_err(|e| after_fence(e, cfg))?;
            drop_changelog(&mut sv.src, cfg).await;
            Ok(Some(done))
        }
        _ => Ok(None),
    }
}

/// Fresh, or a resume whose setup never committed: the target tables and the checkpoint (ours, empty) again.
async fn setup_again(cfg: &MoveTablesConfig, sv: &mut Servers, plans: &[(String, Plan)], leftovers: bool) -> Result<()> {
    if leftovers {
        tracing::info!("the interrupted run never finished its setup: setting up again");
        for t in &cfg.tables {
            sv.tgt.query_drop(format!("DROP TABLE IF EXISTS {}", crate::engine::sql::qualified(&cfg.target_database, t))).await?;
        }
        sv.tgt.query_drop(format!("DROP TABLE IF EXISTS {}", crate::engine::sql::qualified(&cfg.target_database, CHECKPOINT_TABLE))).await?;
    }
    setup_target(&mut sv.src, &mut sv.tgt, cfg, plans).await
}

async fn map_tables(cfg: &MoveTablesConfig, tgt: &mut mysql_async::Conn, plans: Vec<(String, Plan)>) -> Result<Vec<MovedTable>> {
    let mut tables = Vec::new();
    for (t, plan) in plans {
        let target_info = schema::read_table(tgt, &cfg.target_database, &t)
            .await?
            .ok_or_else(|| eyre!("the target table {}.{t} is missing", cfg.target_database))?;
        let mapping = schema::map_columns(&plan.original, &target_info, &plan.renames, &plan.alter.dropped_columns)
            .wrap_err_with(|| format!("mapping {}.{t} onto the target table", cfg.database))?;
        let warnings = crate::engine::pipeline::migrate::warning_rules(&plan.original, &target_info, &mapping, cfg.run.writes);
        tables.push(MovedTable { name: t, plan, mapping, warnings, target: target_info });
    }
    Ok(tables)
}

/// The checkpoint's counters into the status; the position the stream starts from.
fn restore_counters(ctx: &RunContext, copy_rows: &HashMap<String, CopyRow>, st: &CheckpointState) -> BinlogPosition {
    let shared = &ctx.shared;
    let mut total_copied = 0;
    shared.with(|i| {
        for tp in i.status.tables.iter_mut() {
            if let Some(r) = copy_rows.get(&tp.table) {
                tp.rows_copied = r.rows_copied;
                tp.rows_estimate = r.rows_estimate.max(r.rows_copied);
                tp.complete = r.complete;
                total_copied += r.rows_copied;
            }
        }
    });
    shared.rows_copied.store(total_copied, Ordering::Relaxed);
    shared.rows_estimate.store(st.rows_estimate, Ordering::Relaxed);
    shared.events_applied.store(st.events_applied, Ordering::Relaxed);
    let start = BinlogPosition { gtid_set: st.applied_gtid_set.clone(), file: st.applied_file.clone(), pos: st.applied_pos };
    shared.with(|i| {
        i.status.binlog.applied_gtid_set = start.gtid_set.clone();
        i.status.binlog.applied_file = start.file.clone();
        i.status.binlog.applied_pos = start.pos;
        i.status.checkpoint.gtid_set = start.gtid_set.clone();
    });
    start
}

/// The ready gate, and a verification again whenever one is requested while the cut-over waits.
async fn ready(cfg: &MoveTablesConfig, ctx: &RunContext, live: &mut Live) -> gate::WaitResult {
    loop {
        ctx.shared.with(|i| i.status.cutover.step = "gate".into());
        match gate::ready(ctx, &mut live.running, cfg.run.postpone_cut_over).await.map_err(|e| with_resume(e, cfg))? {
            Err(Interrupted::VerifyRequested) => {
                ctx.shared.enter(Phase::Verify);
                if let Err(i) = verify_step(cfg, ctx, live, true).await? {
                    return Ok(Err(i));
                }
                ctx.shared.enter(Phase::ReadyToCutOver);
            }
            other => return Ok(other),
        }
    }
}

/// Every table verified, source against target (`fresh`: from the start, a re-verification); differences that
/// stay fail the move before the fence, the source tables serving.
async fn verify_step(cfg: &MoveTablesConfig, ctx: &RunContext, live: &mut Live, fresh: bool) -> gate::WaitResult {
    let rows = crate::engine::verify::chunk_rows(cfg.run.chunk_size);
    let tables: Vec<Verifier> = live
        .tables
        .iter()
        .map(|t| {
            let boundaries = ctx.shared.with(|i| i.copy_boundaries.of(&[MoveTablesConfig::copy_row(&t.name)]));
            Verifier::new(cfg.source.opts(), copy_job(cfg, t), &t.target, t.plan.mariadb, verify::POOL, rows)
                .across(cfg.target.opts(), MoveTablesConfig::verify_row(&t.name))
                .with_boundaries(boundaries)
        })
        .collect();
    verify::run(&cfg.throttle_config(), ctx, &mut live.running, &tables, fresh)
        .await
        .map_err(|e| with_resume(e.wrap_err("the verification before the fence failed; the source tables serve, the target tables are kept"), cfg))
}

/// A stop or an ended task while waiting: the stop outcome, or the task's error.
async fn interrupted(cfg: &MoveTablesConfig, ctx: &RunContext, running: &mut Running, i: Interrupted) -> Result<MoveOutcome> {
    match i {
        // The ready step answers `verify` itself; anywhere else it is only a stop.
        Interrupted::Stopped | Interrupted::VerifyRequested => {}
        Interrupted::TaskEnded(what, r) => task_ended(r, what, cfg, ctx)?,
    }
    running.stop().await;
    let reason = ctx.stop.get().unwrap_or_else(|| "stopped".into());
    Ok(MoveOutcome::Stopped { state: MoveStateDump::stopped(cfg, reason) })
}

/// A task ended while it should run: an error (or nothing, when a stop was requested).
fn task_ended(r: TaskResult, what: &str, cfg: &MoveTablesConfig, ctx: &RunContext) -> Result<()> {
    match r {
        Ok(Ok(())) if ctx.stop.requested() => Ok(()),
        Ok(Ok(())) => Err(with_resume(eyre!("the {what} ended unexpectedly"), cfg)),
        Ok(Err(e)) => Err(with_resume(e.wrap_err(format!("the {what} failed")), cfg)),
        Err(e) => Err(with_resume(eyre!("the {what} panicked: {e}"), cfg)),
    }
}

/// The copy step: table after table, across the servers.
async fn copy_tables(cfg: &MoveTablesConfig, ctx: &RunContext, live: &mut Live) -> Result<Flow<(), MoveOutcome>> {
    gate::first_throttle_check(&ctx.shared).await;
    for (index, table) in live.tables.iter().enumerate() {
        if let Some(out) = copy_table(cfg, ctx, &mut live.running, index, table, &live.copy_rows).await? {
            return Ok(Flow::End(out));
        }
    }
    ctx.shared.copy_complete.store(true, Ordering::Relaxed);
    failpoint::hit("move-after-copy")?;
    Ok(Flow::Go(()))
}

/// T0: the before-cut-over hook; the application may refuse the cut-over, and nothing on the source is touched yet.
async fn before_fence(cfg: &MoveTablesConfig, ctx: &RunContext, live: &mut Live) -> Result<Option<MoveOutcome>> {
    let shared = &ctx.shared;
    set_summary(&mut live.sv.tgt, cfg, "phase = 'cut-over'").await?;
    shared.with(|i| i.status.cutover.step = "before-hook".into());
    if let Err(e) = run_hook(cfg, &ctx.hooks, Hook::OnBeforeCutOver, shared, None).await {
        live.running.stop().await;
        return Err(with_resume(e.wrap_err("the before-cut-over hook refused the cut-over; the source tables keep serving"), cfg));
    }
    failpoint::hit("move-after-before-hook")?;
    Ok(None)
}

/// One table's copy across the servers, with its progress in the status.
async fn copy_table(cfg: &MoveTablesConfig, ctx: &RunContext, running: &mut Running, index: usize, table: &MovedTable, copy_rows: &HashMap<String, CopyRow>) -> Result<Option<MoveOutcome>> {
    let shared = &ctx.shared;
    let row = copy_rows.get(&table.name).cloned().unwrap_or_default();
    if row.complete {
        return Ok(None);
    }
    let job = copy_job(cfg, table);
    let mut range = CopyRange {
        range_end: row.range_end.as_deref().map(checkpoint::decode_key).transpose()?,
        watermark: row.watermark.as_deref().map(checkpoint::decode_key).transpose()?,
    };
    let base = shared.rows_copied.load(Ordering::Relaxed).saturating_sub(row.rows_copied);
    let show = |complete: bool| {
        let copied = shared.rows_copied.load(Ordering::Relaxed).saturating_sub(base);
        shared.with(|i| {
            if let Some(tp) = i.status.tables.get_mut(index) {
                tp.rows_copied = copied;
                tp.rows_estimate = tp.rows_estimate.max(copied);
                tp.complete |= complete;
            }
        });
        copied
    };
    shared.copy_complete.store(false, Ordering::Relaxed);
    let across = CrossServer { target_opts: cfg.target.opts(), hold: cfg.copy_hold };
    let source_opts = cfg.source.opts();
    let control = CopyControl { chunk_target: cfg.run.chunk_target, retry_for: cfg.run.retry_for, cancel: running.tasks_cancel.clone() };
    let copy = job.run_across(&source_opts, across, &mut range, shared.clone(), &control);
    tokio::pin!(copy);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let result = loop {
        tokio::select! {
            r = &mut copy => break r,
            r = join_slot(&mut running.streamer) => return interrupted(cfg, ctx, running, Interrupted::TaskEnded("binlog streamer", r)).await.map(Some),
            r = join_slot(&mut running.applier) => return interrupted(cfg, ctx, running, Interrupted::TaskEnded("applier", r)).await.map(Some),
            _ = ctx.cancel.cancelled() => running.tasks_cancel.cancel(),
            _ = tick.tick() => { show(false); }
        }
    };
    match result {
        Ok(true) => {
            let copied = show(true);
            tracing::info!("{}.{}: copied to the target ({copied} rows)", cfg.database, table.name);
            Ok(None)
        }
        Ok(false) => interrupted(cfg, ctx, running, Interrupted::Stopped).await.map(Some),
        Err(e) => {
            running.tasks_cancel.cancel();
            Err(with_resume(e.wrap_err(format!("copying {}.{}", cfg.database, table.name)), cfg))
        }
    }
}

/// T1-T5: fence and read the drain GTID on the same connection (unless that happened before a crash), drain,
/// stop the stream, announce.
async fn fence_drain_announce(cfg: &MoveTablesConfig, ctx: &RunContext, sv: &mut Servers, running: &mut Running, recorded: Option<String>, fenced: bool) -> Result<MoveOutcome> {
    let shared = &ctx.shared;
    let drain_text = match (recorded, fenced) {
        (Some(g), _) => g,
        (None, true) => {
            // The rename committed but the drain GTID was never recorded: no write can reach a renamed table, so
            // the source's executed set now is a safe drain target.
            let g = gtid_executed(&mut sv.src, sv.mariadb).await?;
            tracing::warn!("the fence happened before the crash but its drain GTID was not recorded; draining to {g}");
            persist_drain(&mut sv.tgt, cfg, &g).await.map_err(|e| after_fence(e, cfg))?;
            g
        }
        (None, false) => {
            shared.with(|i| i.status.cutover.step = "fence".into());
            let _ = running.ddl_allowed.send(true);
            let g = fence(cfg, &cfg.source.opts(), sv.mariadb, shared, &ctx.cancel).await.map_err(|e| {
                running.tasks_cancel.cancel();
                with_resume(e, cfg)
            })?;
            tracing::info!("fenced: {} renamed; drain GTID {g}", cfg.tables_text());
            failpoint::hit("move-after-rename").map_err(|e| after_fence(e, cfg))?;
            persist_drain(&mut sv.tgt, cfg, &g).await.map_err(|e| after_fence(e, cfg))?;
            g
        }
    };
    failpoint::hit("move-after-persist").map_err(|e| after_fence(e, cfg))?;
    shared.with(|i| {
        i.status.cutover.drain_gtid = Some(drain_text.clone());
        i.status.cutover.step = "drain".into();
    });
    // T3: drain.
    let drain = GtidSet::parse(sv.mariadb, &drain_text)?;
    if let Err(i) = gate::wait_applied(ctx, running, &drain, sv.mariadb, true).await.map_err(|e| after_fence(e, cfg))? {
        return interrupted(cfg, ctx, running, i).await.map_err(|e| after_fence(e, cfg));
    }
    set_summary(&mut sv.tgt, cfg, "cutover_complete = 1, phase = 'complete'").await.map_err(|e| after_fence(e, cfg))?;
    shared.with(|i| {
        i.status.cutover.events_left_to_drain = Some(0);
        i.status.cutover.step = "complete".into();
    });
    failpoint::hit("move-after-drain").map_err(|e| after_fence(e, cfg))?;
    // T4: stop the stream. T5: announce.
    running.stop().await;
    let done = announce(cfg, &ctx.hooks, &mut sv.tgt, shared, &drain_text).await.map_err(|e| after_fence(e, cfg))?;
    drop_changelog(&mut sv.src, cfg).await;
    Ok(done)
}
