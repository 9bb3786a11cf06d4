//! The migration itself: runs the phases in order (preflight, setup, copy, catch-up, ready, cut-over, cleanup) with
//! the streamer, applier, copier, heartbeat and throttler as tasks under one cancellation token, publishes the
//! status snapshot, and answers the operator's commands. Every stop leaves a state `--resume` continues.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{eyre, Result, WrapErr};
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::apply::applier::CheckpointTarget;
use crate::engine::pipeline::commands::{watermark_text, CheckpointLocation};
use crate::engine::pipeline::runtime::{self, Ending, Frame, RunContext, RunOutcome};
use crate::engine::pipeline::report::WithResume;
use crate::engine::pipeline::tasks::{applied_table, join_slot, start_tasks, watched_changelog, Running, StopReason, TaskPlan, TaskResult};
use crate::engine::plan::schema::{ColumnMapping, TableInfo};
use crate::engine::stream::binlog::{self, BinlogPosition};
use crate::engine::checkpoint::{self, CheckpointState};
use crate::engine::config::{CutOverMode, MigrationConfig};
use crate::engine::copy::copier::{estimate_rows, CopyJob, CopyRange};
use crate::engine::cutover::swap;
use crate::engine::copy::delete_log::DeleteLog;
use crate::engine::failpoint;
use crate::engine::hooks::{Hook, Hooks};
use crate::engine::pipeline::phase::Phase;
use crate::engine::plan::preflight::{self, refuse, Plan};
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;
use crate::engine::status::{EngineHandle, TargetInfo};

pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a migration ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// Swapped; the original is kept as `old_table` (or dropped with --ok-to-drop-table).
    Done { old_table: String, stall_ms: u64, old_table_dropped: bool },
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
    pub applied_gtid_set: String,
    pub applied_file: String,
    pub applied_pos: u64,
    pub copy_watermark: Option<String>,
    pub copy_complete: bool,
    pub rows_copied: u64,
    pub events_applied: u64,
    pub resume_command: Option<String>,
}

/// Starts a migration in the background.
pub fn start(cfg: MigrationConfig) -> (EngineHandle, JoinHandle<Result<Outcome>>) {
    let shared = runtime::shared_for(cfg.chunk_size, cfg.dml_batch_size, &cfg);
    shared.with(|i| {
        i.status.target = TargetInfo {
            host: cfg.source.display(),
            database: cfg.database.clone(),
            table: cfg.table.clone(),
            alter: cfg.alter.clone(),
            ghost_table: cfg.ghost_table(),
            old_table: cfg.old_table(),
            dry_run: !cfg.execute,
            ..Default::default()
        };
    });
    let frame = Frame {
        shared,
        hooks: Hooks::for_migration(&cfg),
        checkpoint: CheckpointLocation { opts: cfg.source.opts(), database: cfg.database.clone(), table: cfg.checkpoint_table() },
        waits_for: "the copy is done",
        status_hook_interval: cfg.hooks_status_interval,
        resume_command: cfg.resume_command.clone(),
        closing_hooks: true,
    };
    runtime::spawn(frame, move |ctx: RunContext| async move {
        run_phases(&cfg, ctx.shared.clone(), ctx.cancel.clone(), ctx.stop.clone(), &ctx.hooks).await
    })
}

impl RunOutcome for Outcome {
    fn ending(&self) -> Ending {
        match self {
            Outcome::Done { .. } | Outcome::DryRun { .. } => Ending::Done,
            Outcome::Stopped { state } => Ending::Stopped { reason: state.reason.clone(), resume_command: state.resume_command.clone() },
        }
    }
}

async fn run_phases(
    cfg: &MigrationConfig,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    control: StopReason,
    hooks: &Hooks,
) -> Result<Outcome> {
    shared.enter(Phase::Preflight);
    hooks.fire(Hook::OnStartup, &[], &shared.snapshot(0)).await.map_err(|e| refuse(format!("{e:#}"), "the on-startup hook refused the migration; nothing was changed"))?;
    let opts = cfg.source.opts();
    let mut conn = mysql_async::Conn::new(opts.clone())
        .await
        .map_err(|e| refuse(format!("cannot connect to {}: {e}", cfg.source.display()), "check --host, --port, --user and the password source"))?;
    if cfg.resume && cfg.execute {
        // A cut-over that renamed the tables before the interruption: only the clean-up is left (the preflight's
        // ALTER check would fail on the already migrated table).
        if let Some(st) = checkpoint::read(&mut conn, &cfg.database, &cfg.checkpoint_table()).await? {
            let ghost = crate::engine::plan::schema::read_table(&mut conn, &cfg.database, &cfg.ghost_table()).await?.is_some();
            let old = crate::engine::plan::schema::read_table(&mut conn, &cfg.database, &cfg.old_table()).await?.is_some();
            if st.cutover_started && !ghost && old && !swap::is_sentry(&mut conn, &cfg.database, &cfg.old_table()).await? {
                tracing::info!("the tables were swapped before the interruption: finishing the clean-up");
                shared.enter(Phase::Setup);
                return cleanup(cfg, &mut conn, &shared, 0).await;
            }
        }
    }
    let plan = preflight::run(&mut conn, cfg).await?;
    hooks.fire(Hook::OnValidated, &[], &shared.snapshot(0)).await.map_err(|e| refuse(format!("{e:#}"), "the on-validated hook refused the migration; nothing was changed"))?;
    shared.with(|i| {
        i.status.target.flavor = if plan.mariadb { "mariadb".into() } else { "mysql".into() };
        i.status.target.version = plan.version.clone();
    });
    for n in &plan.notes {
        tracing::info!("{n}");
    }
    // One migration per table: a named lock held by this connection for the whole run.
    let lock_name = format!("revenant.{}.{}", cfg.database, cfg.table);
    let mut lock_conn = mysql_async::Conn::new(opts.clone()).await?;
    let got: Option<i64> = lock_conn.exec_first("SELECT GET_LOCK(?, 0)", (lock_name.as_str(),)).await?;
    if got != Some(1) {
        return Err(refuse(
            format!("another migration of {}.{} is running (lock {lock_name} is held)", cfg.database, cfg.table),
            "wait for it to finish, or attach to it with `revenant attach`",
        ));
    }
    let artifact_actions = preflight::check_artifacts(&mut conn, cfg).await?;
    let existing = if cfg.resume {
        let st = checkpoint::read(&mut conn, &cfg.database, &cfg.checkpoint_table()).await?;
        Some(validate_resume(&mut conn, cfg, &plan, st).await?)
    } else {
        None
    };
    if !cfg.execute {
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
            cfg.chunk_size,
            cfg.cut_over
        ));
        steps.push("dry run: nothing was changed; add --execute to migrate".into());
        for s in &steps {
            tracing::info!("{s}");
        }
        return Ok(Outcome::DryRun { plan: steps });
    }

    // Setup.
    shared.enter(Phase::Setup);
    let resumed_state = match existing {
        Some(ResumePoint::AlreadySwapped) => {
            tracing::info!("the tables were already swapped before the interruption: finishing the clean-up");
            return cleanup(cfg, &mut conn, &shared, 0).await;
        }
        Some(ResumePoint::Continue(st)) => Some(st),
        None => None,
    };
    if resumed_state.is_none() {
        for a in &artifact_actions {
            tracing::info!("{a}");
            conn.query_drop(a.as_str()).await?;
        }
        setup_tables(&mut conn, cfg, &plan).await?;
    }
    failpoint::hit("after-setup")?;
    let ghost = crate::engine::plan::schema::read_table(&mut conn, &cfg.database, &cfg.ghost_table())
        .await?
        .ok_or_else(|| eyre!("the ghost table {} is missing", cfg.ghost_table()))?;
    let changelog = crate::engine::plan::schema::read_table(&mut conn, &cfg.database, &cfg.changelog_table())
        .await?
        .ok_or_else(|| eyre!("the changelog table {} is missing", cfg.changelog_table()))?;
    let mapping = crate::engine::plan::schema::map_columns(&plan.original, &ghost, &plan.renames, &plan.alter.dropped_columns)?;

    // The copy reads the original without locks; the applier's deletes are checked by each chunk (delete_log).
    let delete_log = Arc::new(DeleteLog::new(
        &applied_table(&plan, &mapping, &cfg.table, &cfg.database, &cfg.ghost_table()).target,
        &cfg.database,
        &cfg.table,
        true,
    ));
    // Copy range and start position.
    let job = CopyJob {
        source_db: cfg.database.clone(),
        source_table: cfg.table.clone(),
        target_db: cfg.database.clone(),
        target_table: cfg.ghost_table(),
        columns: mapping.shared.clone(),
        key: mapping.key.columns.iter().filter_map(|n| plan.original.column(n).cloned()).collect(),
        key_index: mapping.key.name.clone(),
        checkpoint_db: cfg.database.clone(),
        checkpoint_table: cfg.checkpoint_table(),
        checkpoint_row: checkpoint::COPY.to_string(),
        deletes: Some(delete_log.clone()),
    };
    // A resumed run whose setup never finished (killed before the copy range and start position were recorded)
    // sets up again: nothing was copied or applied yet.
    let setup_done = resumed_state.as_ref().is_some_and(|st| !st.phase.ends_with("setup"));
    let (start, mut range) = match &resumed_state {
        Some(st) if setup_done => {
            let range = CopyRange {
                range_end: st.copy_range_end.as_deref().map(checkpoint::decode_key).transpose()?,
                watermark: st.copy_watermark.as_deref().map(checkpoint::decode_key).transpose()?,
            };
            shared.rows_copied.store(st.rows_copied, Ordering::Relaxed);
            shared.events_applied.store(st.events_applied, Ordering::Relaxed);
            shared.with(|i| {
                i.status.checkpoint.resumed_from = Some(format!(
                    "{} at {} rows copied; redoing at most one chunk, no batch",
                    st.applied_gtid_set, st.rows_copied
                ))
            });
            shared.rows_estimate.store(st.rows_estimate, Ordering::Relaxed);
            if st.copy_complete {
                shared.copy_complete.store(true, Ordering::Relaxed);
            }
            let start = BinlogPosition { gtid_set: st.applied_gtid_set.clone(), file: st.applied_file.clone(), pos: st.applied_pos };
            (start, range)
        }
        _ => {
            // The position is taken before the copy range: every row change after it is streamed.
            let start = binlog::current_position(&mut conn, plan.mariadb).await?;
            // Key values are read as raw bytes (a writer connection runs with NAMES binary), as the copier binds them.
            let mut raw = crate::engine::apply::applier::writer_conn(&opts).await?;
            let bounds = job.key_bounds(&mut raw).await?;
            let _ = raw.disconnect().await;
            let estimate = estimate_rows(&mut conn, &cfg.database, &cfg.table, cfg.exact_rowcount).await?;
            shared.rows_estimate.store(estimate, Ordering::Relaxed);
            let ck = qualified(&cfg.database, &cfg.checkpoint_table());
            // Range, start position and the end of setup commit together.
            let mut tx = conn.start_transaction(mysql_async::TxOpts::default()).await?;
            tx.exec_drop(
                format!("UPDATE {ck} SET copy_range_start = ?, copy_range_end = ?, copy_complete = ? WHERE id = ?"),
                (
                    bounds.as_ref().map(|b| checkpoint::encode_key(&b.0)),
                    bounds.as_ref().map(|b| checkpoint::encode_key(&b.1)),
                    u8::from(bounds.is_none()),
                    checkpoint::COPY,
                ),
            )
            .await?;
            tx.exec_drop(
                format!("UPDATE {ck} SET applied_gtid_set = ?, applied_file = ?, applied_pos = ? WHERE id = ?"),
                (start.gtid_set.clone(), start.file.clone(), start.pos, checkpoint::APPLY),
            )
            .await?;
            tx.exec_drop(
                format!("UPDATE {ck} SET rows_estimate = ?, phase = 'copy' WHERE id = ?"),
                (estimate, checkpoint::SUMMARY),
            )
            .await?;
            tx.commit().await.wrap_err("recording the copy range and start position")?;
            hooks.fire(Hook::OnRowcountComplete, &[], &shared.snapshot(0)).await.map_err(|e| e.with_resume(cfg))?;
            if bounds.is_none() {
                shared.copy_complete.store(true, Ordering::Relaxed);
            }
            (start, CopyRange { range_end: bounds.map(|b| b.1), watermark: None })
        }
    };
    failpoint::trace(&format!(
        "run-start {} {}",
        range.watermark.as_deref().map(checkpoint::encode_key).unwrap_or_else(|| "start".into()),
        start.gtid_set
    ));
    shared.with(|i| {
        i.status.binlog.applied_gtid_set = start.gtid_set.clone();
        i.status.binlog.applied_file = start.file.clone();
        i.status.binlog.applied_pos = start.pos;
    });
    // The start position and copy range committed above (or were read back on a resume): that is a checkpoint.
    shared.checkpoint_committed(Some(&start.gtid_set), range.watermark.as_deref().map(checkpoint::describe_key));

    if shared.copy_complete.load(Ordering::Relaxed) {
        delete_log.deactivate();
    }
    let mut running = start_tasks(task_plan(cfg, &plan, &mapping, &changelog, start, delete_log), &shared, &cancel, &control)?;

    // Copy.
    checkpoint::set_phase(&mut conn, &cfg.database, &cfg.checkpoint_table(), "copy").await?;
    shared.enter(Phase::Copy);
    let copy_ran = !shared.copy_complete.load(Ordering::Relaxed);
    // A throttle that holds at start (the manual switch, a flag file) holds before the first chunk.
    for _ in 0..100 {
        if shared.throttle_checked.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if copy_ran {
        if let Err(e) = hooks.fire(Hook::OnBeforeRowCopy, &[], &shared.snapshot(0)).await {
            running.stop().await;
            return Err(e.with_resume(cfg));
        }
    }
    let copy_result = if shared.copy_complete.load(Ordering::Relaxed) {
        Ok(true)
    } else {
        let copy_fut = job.run(&opts, &mut range, shared.clone(), cfg.chunk_target, cfg.retry_for, running.tasks_cancel.clone());
        tokio::pin!(copy_fut);
        loop {
            tokio::select! {
                r = &mut copy_fut => break r,
                r = join_slot(&mut running.streamer) => {
                    return fail_or_stop(cfg, &shared, &control, &mut running, r, "binlog streamer").await;
                }
                r = join_slot(&mut running.applier) => {
                    return fail_or_stop(cfg, &shared, &control, &mut running, r, "applier").await;
                }
                _ = cancel.cancelled() => {
                    running.tasks_cancel.cancel();
                }
            }
        }
    };
    match copy_result {
        Ok(true) => {}
        Ok(false) => return stop_now(cfg, &shared, &control, &mut running).await,
        Err(e) => {
            running.tasks_cancel.cancel();
            return Err(e.wrap_err("the row copy failed").with_resume(cfg));
        }
    }
    if cfg.exact_rowcount {
        let rows = shared.rows_copied.load(Ordering::Relaxed);
        shared.rows_estimate.store(rows, Ordering::Relaxed);
    }
    if copy_ran {
        if let Err(e) = hooks.fire(Hook::OnRowCopyComplete, &[], &shared.snapshot(0)).await {
            running.stop().await;
            return Err(e.with_resume(cfg));
        }
    }
    failpoint::hit("after-copy")?;

    // Catch-up, then ready.
    checkpoint::set_phase(&mut conn, &cfg.database, &cfg.checkpoint_table(), "catchup").await?;
    shared.enter(Phase::Catchup);
    let mut entered_ready = false;
    let mut begin_postponed_fired = false;
    let mut last_block_logged: Option<&str> = None;
    loop {
        if cancel.is_cancelled() {
            return stop_now(cfg, &shared, &control, &mut running).await;
        }
        if let Some((what, r)) = running.finished().await {
            return fail_or_stop(cfg, &shared, &control, &mut running, r, what).await;
        }
        let lag = shared.heartbeat_lag_seconds().unwrap_or(f64::MAX);
        let max_lag = shared.max_lag_millis.load(Ordering::Relaxed) as f64 / 1000.0;
        let backlog = shared.backlog.load(Ordering::Relaxed);
        let caught_up = backlog == 0 && lag <= max_lag.max(1.0);
        if caught_up && !entered_ready {
            checkpoint::set_phase(&mut conn, &cfg.database, &cfg.checkpoint_table(), "ready").await?;
            shared.enter(Phase::ReadyToCutOver);
            entered_ready = true;
        }
        if entered_ready {
            let flag = shared.throttle_settings().postpone_flag_file.as_ref().is_some_and(|f| f.exists());
            let approved = shared.cutover_approved.load(Ordering::Relaxed);
            let postponed = flag || (cfg.postpone_cut_over && !approved);
            // The cut-over refuses to start while lag is high, and says so (gh-ost #1685 waited silently).
            let replica_lag = shared.with(|i| {
                i.signals
                    .iter()
                    .filter(|g| g.throttling && g.name.starts_with("replica "))
                    .map(|g| if g.value.starts_with("error") { format!("{} lag unreadable", g.name) } else { format!("{} lag {}", g.name, g.value) })
                    .collect::<Vec<_>>()
            });
            let blocked = if lag > max_lag {
                Some(if lag == f64::MAX {
                    "heartbeat lag unknown (no heartbeat applied yet)".to_string()
                } else {
                    format!("heartbeat lag {lag:.1}s > max-lag {max_lag:.1}s")
                })
            } else if !replica_lag.is_empty() {
                Some(format!("{} > max-lag {max_lag:.1}s", replica_lag.join(", ")))
            } else if backlog > 0 {
                Some(format!("{backlog} events not yet applied"))
            } else {
                None
            };
            shared.with(|i| {
                i.status.cutover.postponed = postponed;
                i.status.cutover.blocked_reason = if postponed { blocked.clone().or(Some("postponed: waiting for approval".into())) } else { blocked.clone() };
            });
            if postponed && !begin_postponed_fired {
                begin_postponed_fired = true;
                if let Err(e) = hooks.fire(Hook::OnBeginPostponed, &[], &shared.snapshot(0)).await {
                    running.stop().await;
                    return Err(e.with_resume(cfg));
                }
            }
            if !postponed && blocked.is_none() {
                break;
            }
            // Logged once per kind of wait, not on every tick.
            let waiting_on = match (&blocked, postponed) {
                (Some(b), false) if b.starts_with("heartbeat") => Some("heartbeat lag"),
                (Some(b), false) if b.starts_with("replica") => Some("replica lag"),
                (Some(_), false) => Some("backlog"),
                _ => None,
            };
            if waiting_on != last_block_logged {
                if let (Some(b), Some(_)) = (&blocked, waiting_on) {
                    tracing::warn!("cut-over approved but waiting: {b}");
                }
                last_block_logged = waiting_on;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Cut-over. A failing gh-ost-on-before-cut-over stops here: nothing was locked or renamed, the original table
    // keeps serving, and the checkpoint (phase ready) resumes.
    if let Err(e) = hooks.fire(Hook::OnBeforeCutOver, &[], &shared.snapshot(0)).await {
        running.stop().await;
        return Err(e.wrap_err("the cut-over did not start: the original table is serving, and --resume continues the migration").with_resume(cfg));
    }
    checkpoint::set_phase(&mut conn, &cfg.database, &cfg.checkpoint_table(), "cut-over").await?;
    conn.exec_drop(
        format!("UPDATE {} SET cutover_started = CURRENT_TIMESTAMP(6) WHERE id = ?", qualified(&cfg.database, &cfg.checkpoint_table())),
        (checkpoint::SUMMARY,),
    )
    .await?;
    shared.enter(Phase::CutOver);
    let _ = running.ddl_allowed.send(true);
    let mut marker_conn = mysql_async::Conn::new(opts.clone()).await?;
    let mut attempt = 0u32;
    let mut backoff = Duration::from_millis(200);
    let report = loop {
        attempt += 1;
        shared.with(|i| {
            i.status.cutover.attempts = attempt;
            i.status.cutover.step = "lock and rename".into();
        });
        let r = match cfg.cut_over {
            CutOverMode::Atomic => swap::atomic_attempt(&opts, cfg, &mut marker_conn, &mut running.applied_rx).await,
            CutOverMode::TwoStep => swap::two_step(&opts, cfg, &mut marker_conn, &mut running.applied_rx).await,
        };
        match r {
            Ok(rep) => break rep,
            Err(e) => {
                tracing::warn!("cut-over attempt {attempt} failed: {e:#}; the original table keeps serving");
                if attempt >= cfg.default_retries.max(1) || cancel.is_cancelled() {
                    let _ = running.ddl_allowed.send(false);
                    running.tasks_cancel.cancel();
                    return Err(e.wrap_err(format!("the cut-over failed {attempt} times; the original table is serving")).with_resume(cfg));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    tracing::info!("cut-over complete: writes stalled for {} ms", report.stall_ms);
    shared.with(|i| {
        i.status.cutover.last_stall_ms = Some(report.stall_ms);
        i.status.cutover.step = "swapped".into();
    });
    failpoint::hit("after-swap")?;
    running.tasks_cancel.cancel();
    for t in running.side.drain(..) {
        let _ = t.await;
    }
    let _ = join_slot(&mut running.applier).await;
    let _ = join_slot(&mut running.streamer).await;
    cleanup(cfg, &mut conn, &shared, report.stall_ms).await
}


/// Drops the changelog and checkpoint tables (ours) and, when asked, the old table.
async fn cleanup(cfg: &MigrationConfig, conn: &mut mysql_async::Conn, shared: &Shared, stall_ms: u64) -> Result<Outcome> {
    shared.enter(Phase::Cleanup);
    let ck = qualified(&cfg.database, &cfg.checkpoint_table());
    let _ = conn
        .exec_drop(format!("UPDATE {ck} SET phase = 'cleanup', cutover_complete = 1 WHERE id = ?"), (checkpoint::SUMMARY,))
        .await;
    conn.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&cfg.database, &cfg.changelog_table()))).await?;
    let mut dropped = false;
    if cfg.ok_to_drop_table {
        conn.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&cfg.database, &cfg.old_table()))).await?;
        dropped = true;
    } else {
        tracing::info!("the original table is kept as {}.{} (drop it when you are sure)", cfg.database, cfg.old_table());
    }
    conn.query_drop(format!("DROP TABLE IF EXISTS {ck}")).await?;
    Ok(Outcome::Done { old_table: cfg.old_table(), stall_ms, old_table_dropped: dropped })
}

async fn setup_tables(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, plan: &Plan) -> Result<()> {
    let db = &cfg.database;
    conn.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(db, &cfg.changelog_table()))).await?;
    conn.query_drop(format!(
        "CREATE TABLE {} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         last_update TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \
         hint VARCHAR(64) CHARACTER SET ascii NOT NULL, value VARCHAR(4096) CHARACTER SET utf8mb4 NOT NULL, \
         UNIQUE KEY hint_uidx (hint)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='revenant changelog'",
        qualified(db, &cfg.changelog_table())
    ))
    .await
    .wrap_err("creating the changelog table")?;
    conn.query_drop(checkpoint::create_statement(db, &cfg.checkpoint_table())).await.wrap_err("creating the checkpoint table")?;
    let ck = qualified(db, &cfg.checkpoint_table());
    conn.exec_drop(
        format!(
            "INSERT INTO {ck} (id, phase, database_name, table_name, ghost_table, alter_statement, alter_fingerprint, \
             table_fingerprint, tool_version) VALUES (?, 'setup', ?, ?, ?, ?, ?, ?, ?)"
        ),
        (
            checkpoint::SUMMARY,
            db.as_str(),
            cfg.table.as_str(),
            cfg.ghost_table(),
            plan.alter.clause.as_str(),
            checkpoint::fingerprint(&plan.alter.clause),
            checkpoint::table_fingerprint(&plan.original.create_statement),
            TOOL_VERSION,
        ),
    )
    .await?;
    conn.exec_drop(format!("INSERT INTO {ck} (id) VALUES (?), (?)"), (checkpoint::COPY, checkpoint::APPLY)).await?;
    conn.query_drop(format!("CREATE TABLE {} LIKE {}", qualified(db, &cfg.ghost_table()), qualified(db, &cfg.table)))
        .await
        .wrap_err("creating the ghost table")?;
    conn.query_drop(format!("ALTER TABLE {} {}", qualified(db, &cfg.ghost_table()), plan.alter.clause))
        .await
        .wrap_err("altering the ghost table")?;
    // Keep the original's AUTO_INCREMENT counter (rows deleted at the end would otherwise lower it), unless the
    // ALTER sets one.
    if !plan.alter.clause.to_ascii_lowercase().contains("auto_increment") {
        if let Some(n) = auto_increment_of(conn, db, &cfg.table).await? {
            conn.query_drop(format!("ALTER TABLE {} AUTO_INCREMENT = {n}", qualified(db, &cfg.ghost_table()))).await?;
        }
    }
    Ok(())
}

/// The table's AUTO_INCREMENT counter, from SHOW CREATE TABLE (information_schema may cache it on MySQL).
async fn auto_increment_of(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<Option<u64>> {
    let row: Option<(String, String)> = conn.query_first(format!("SHOW CREATE TABLE {}", qualified(db, table))).await?;
    Ok(row.and_then(|(_, create)| {
        create
            .split_whitespace()
            .find_map(|w| w.strip_prefix("AUTO_INCREMENT="))
            .and_then(|n| n.parse().ok())
    }))
}

/// What a resume continues from.
enum ResumePoint {
    Continue(CheckpointState),
    AlreadySwapped,
}

async fn validate_resume(
    conn: &mut mysql_async::Conn,
    cfg: &MigrationConfig,
    plan: &Plan,
    st: Option<CheckpointState>,
) -> Result<ResumePoint> {
    let ck = format!("{}.{}", cfg.database, cfg.checkpoint_table());
    let st = st.ok_or_else(|| refuse(format!("nothing to resume: no checkpoint table {ck}"), "run without --resume to start a new migration"))?;
    if st.database_name != cfg.database || st.table_name != cfg.table {
        return Err(refuse(
            format!("the checkpoint in {ck} is for {}.{}", st.database_name, st.table_name),
            "resume with the same --database and --table",
        ));
    }
    let ghost_exists = crate::engine::plan::schema::read_table(conn, &cfg.database, &cfg.ghost_table()).await?.is_some();
    let old_exists = crate::engine::plan::schema::read_table(conn, &cfg.database, &cfg.old_table()).await?.is_some();
    if st.cutover_started && !ghost_exists && old_exists {
        // The rename happened; only the clean-up is left.
        return Ok(ResumePoint::AlreadySwapped);
    }
    if checkpoint::fingerprint(&plan.alter.clause) != st.alter_fingerprint {
        return Err(refuse(
            format!("the ALTER differs from the one being resumed ('{}')", st.alter_statement),
            "resume with exactly the same --alter, or clean up the old migration (docs/checkpoints.md)",
        ));
    }
    if checkpoint::table_fingerprint(&plan.original.create_statement) != st.table_fingerprint {
        return Err(refuse(
            format!("the definition of {}.{} changed since the migration began", cfg.database, cfg.table),
            "the copied rows no longer match the table; clean up (docs/checkpoints.md) and start again",
        ));
    }
    if !ghost_exists {
        return Err(refuse(
            format!("the ghost table {}.{} is missing", cfg.database, cfg.ghost_table()),
            "nothing was dropped; clean up the checkpoint table (docs/checkpoints.md) and start again",
        ));
    }
    if old_exists {
        if swap::is_sentry(conn, &cfg.database, &cfg.old_table()).await? {
            conn.query_drop(format!("DROP TABLE {}", qualified(&cfg.database, &cfg.old_table()))).await?;
            tracing::info!("removed the sentry table left by an interrupted cut-over");
        } else {
            return Err(refuse(
                format!("{}.{} exists next to the ghost table", cfg.database, cfg.old_table()),
                "check it by hand: it is not revenant's sentry",
            ));
        }
    }
    // The binlog position must still be there.
    if !plan.mariadb && !st.applied_gtid_set.is_empty() {
        let executed: String = conn.query_first("SELECT @@GLOBAL.gtid_executed").await?.unwrap_or_default();
        let purged: String = conn.query_first("SELECT @@GLOBAL.gtid_purged").await?.unwrap_or_default();
        let stored = crate::engine::stream::gtid::GtidSet::parse_mysql(&st.applied_gtid_set)?;
        let executed = crate::engine::stream::gtid::GtidSet::parse_mysql(&executed)?;
        let purged = crate::engine::stream::gtid::GtidSet::parse_mysql(&purged)?;
        if !executed.contains(&stored) {
            return Err(refuse(
                format!("this server has not executed the checkpoint's position {}", st.applied_gtid_set),
                "resume on the server (or a replica) that holds the migration's data",
            ));
        }
        if !stored.contains(&purged) {
            return Err(refuse(
                "binary logs needed to resume were purged (gtid_purged is not within the checkpoint's position)",
                "the migration cannot continue; clean up (docs/checkpoints.md) and start again",
            ));
        }
    }
    // Chunks and batches commit with their checkpoint rows, so nothing committed is redone: the copy re-reads only
    // the chunk that was in flight (rolled back with its watermark), the stream restarts after the last batch.
    let recopy = if st.copy_complete {
        "re-copying 0 rows (the copy was complete)".to_string()
    } else {
        format!("re-copying at most {} rows (the chunk in flight was rolled back with its watermark)", cfg.chunk_size)
    };
    tracing::info!(
        "resumed at {} ({}:{}); copy watermark {}, {} rows copied, {} events applied; {recopy}; re-applying 0 events \
         (the stream continues after the last committed batch)",
        st.applied_gtid_set,
        st.applied_file,
        st.applied_pos,
        st.copy_watermark.as_deref().map(watermark_text).unwrap_or_else(|| "(start)".into()),
        st.rows_copied,
        st.events_applied
    );
    Ok(ResumePoint::Continue(st))
}

/// What migrate streams and applies: the original's row events onto the ghost (checking deletes against the
/// copy), the changelog's heartbeats and markers; the checkpoint next to the ghost.
fn task_plan(cfg: &MigrationConfig, plan: &Plan, mapping: &ColumnMapping, changelog: &TableInfo, start: BinlogPosition, delete_log: Arc<DeleteLog>) -> TaskPlan {
    let mut table = applied_table(plan, mapping, &cfg.table, &cfg.database, &cfg.ghost_table());
    table.target.deletes = Some(delete_log);
    TaskPlan {
        source: cfg.source.opts(),
        target: cfg.source.opts(),
        mariadb: plan.mariadb,
        start,
        tables: vec![table],
        changelog: watched_changelog(changelog),
        checkpoint: CheckpointTarget { database: cfg.database.clone(), table: cfg.checkpoint_table() },
        guarded_tables: vec![(cfg.database.clone(), cfg.table.clone())],
        ddl_allowed: false,
        retry_for: cfg.retry_for,
        client_id_base: 1_000_000,
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
        resume_command: cfg.resume_command.clone(),
        ..Default::default()
    };
    if let Ok(mut c) = mysql_async::Conn::new(cfg.source.opts()).await {
        let _ = checkpoint::set_phase(&mut c, &cfg.database, &cfg.checkpoint_table(), &format!("stopped:{}", dump.phase)).await;
        if let Ok(Some(st)) = checkpoint::read(&mut c, &cfg.database, &cfg.checkpoint_table()).await {
            dump.alter_fingerprint = st.alter_fingerprint;
            dump.applied_gtid_set = st.applied_gtid_set;
            dump.applied_file = st.applied_file;
            dump.applied_pos = st.applied_pos;
            dump.copy_watermark = st.copy_watermark;
            dump.copy_complete = st.copy_complete;
            dump.rows_copied = st.rows_copied;
            dump.events_applied = st.events_applied;
        }
        let _ = c.disconnect().await;
    }
    dump
}
