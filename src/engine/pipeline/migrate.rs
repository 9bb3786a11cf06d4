//! The migration itself: runs the phases in order (preflight, setup, copy, catch-up, ready, cut-over, cleanup) with
//! the streamer, applier, copier, heartbeat and throttler as tasks under one cancellation token, publishes the
//! status snapshot, and answers the operator's commands. Every stop leaves a state `--resume` continues.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::apply::applier::{Applied, Applier, ApplyTarget, ChangelogWatch, CheckpointTarget};
use crate::engine::stream::binlog::{self, BinlogPosition, StreamConfig, StreamerState, WatchedTable};
use crate::engine::checkpoint::{self, CheckpointState};
use crate::engine::config::{CutOverMode, MigrationConfig};
use crate::engine::copy::copier::{estimate_rows, CopyJob, CopyRange};
use crate::engine::cutover::swap;
use crate::engine::copy::delete_log::DeleteLog;
use crate::engine::failpoint;
use crate::engine::hooks::{self, Hook, Hooks};
use crate::engine::pipeline::phase::Phase;
use crate::engine::plan::preflight::{self, refuse, Plan};
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;
use crate::engine::throttle::throttlers::{self, CriticalAction, ThrottleSettings, Throttlers};
use crate::engine::status::{Command, CommandReply, CommandRequest, EngineHandle, Status, TargetInfo, ThrottleSignal};

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
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (status_tx, status_rx) = watch::channel(Status::default());
    let handle = EngineHandle { commands: cmd_tx, status: status_rx };
    let join = tokio::spawn(run(cfg, cmd_rx, status_tx));
    (handle, join)
}

/// Control state the command task changes.
#[derive(Debug, Default)]
struct Control {
    stop_reason: Option<String>,
}

async fn run(cfg: MigrationConfig, cmd_rx: mpsc::Receiver<CommandRequest>, status_tx: watch::Sender<Status>) -> Result<Outcome> {
    let shared = Arc::new(Shared::new());
    shared.chunk_size.store(cfg.chunk_size.max(1), Ordering::Relaxed);
    shared.dml_batch_size.store(cfg.dml_batch_size.max(1), Ordering::Relaxed);
    shared.max_lag_millis.store(cfg.max_lag_millis, Ordering::Relaxed);
    shared.nice_ratio_bits.store(cfg.nice_ratio.to_bits(), Ordering::Relaxed);
    shared.update_throttle_settings(|t| *t = ThrottleSettings::from_config(&cfg));
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
        i.status.cutover.postponed = cfg.postpone_cut_over || cfg.postpone_cut_over_flag_file.is_some();
    });
    let cancel = CancellationToken::new();
    let control = Arc::new(Mutex::new(Control::default()));

    // Status publisher.
    let status_task = {
        let shared = shared.clone();
        let done = cancel.child_token();
        let status_tx = status_tx.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                seq += 1;
                let snap = shared.snapshot(seq);
                status_tx.send_replace(snap);
                tokio::select! {
                    _ = done.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        })
    };
    let publisher_stop = CancellationToken::new();
    let hooks = Hooks::for_migration(&cfg).map(Arc::new);
    let hooks_for_commands = hooks.as_ref().map(|h| h.clone()).unwrap_or_else(|_| Arc::new(Hooks::disabled()));
    let cmd_task = tokio::spawn(command_loop(cmd_rx, shared.clone(), cfg.clone(), control.clone(), cancel.clone(), publisher_stop.clone(), hooks_for_commands.clone()));
    let hooks_task = tokio::spawn(hooks::background_hooks(hooks_for_commands.clone(), shared.clone(), cfg.hooks_status_interval, cancel.child_token()));

    let result = match &hooks {
        Ok(h) => run_phases(&cfg, shared.clone(), cancel.clone(), control.clone(), h).await,
        Err(e) => Err(refuse(format!("{e}"), "check --hooks-path; nothing was changed")),
    };
    // Final status.
    match &result {
        Ok(Outcome::Done { .. }) => shared.enter(Phase::Done),
        Ok(Outcome::DryRun { .. }) => shared.enter(Phase::Done),
        Ok(Outcome::Stopped { state }) => shared.end(Phase::Stopped, format!("stopped: {}", state.reason), state.resume_command.clone()),
        Err(e) => shared.end(Phase::Failed, plain_report(e), cfg.resume_command.clone()),
    }
    // The closing hooks see the final status; their failures only log (gh-ost's on-failure; on-success runs after
    // the swap, when nothing is left to undo).
    let final_snapshot = shared.snapshot(0);
    match &result {
        Ok(Outcome::Done { .. }) | Ok(Outcome::DryRun { .. }) => hooks_for_commands.fire_logged(Hook::OnSuccess, &[], &final_snapshot).await,
        Err(_) => hooks_for_commands.fire_logged(Hook::OnFailure, &[], &final_snapshot).await,
        Ok(Outcome::Stopped { .. }) => {}
    }
    cancel.cancel();
    let _ = hooks_task.await;
    let _ = status_task.await;
    status_tx.send_replace(shared.snapshot(u64::MAX / 2));
    publisher_stop.cancel();
    cmd_task.abort();
    result
}

async fn command_loop(
    mut rx: mpsc::Receiver<CommandRequest>,
    shared: Arc<Shared>,
    cfg: MigrationConfig,
    control: Arc<Mutex<Control>>,
    cancel: CancellationToken,
    _stop: CancellationToken,
    hooks: Arc<Hooks>,
) {
    while let Some(req) = rx.recv().await {
        // gh-ost-on-interactive-command runs before a command that changes something; its failure refuses it.
        if !matches!(req.command, Command::Get { .. }) && hooks.enabled() {
            let extra = [("COMMAND".to_string(), command_text(&req.command))];
            if let Err(e) = hooks.fire(Hook::OnInteractiveCommand, &extra, &shared.snapshot(0)).await {
                let reply = CommandReply::refused(format!("refused by the hook: {e:#}"));
                tracing::warn!("command {:?}: {}", req.command, reply.message);
                let _ = req.reply.send(reply);
                continue;
            }
        }
        let reply = handle_command(&req.command, &shared, &cfg, &control, &cancel).await;
        tracing::info!("command {:?}: {}", req.command, reply.message);
        let _ = req.reply.send(reply);
    }
}

/// A command as gh-ost's text protocol spells it (GH_OST_COMMAND).
fn command_text(cmd: &Command) -> String {
    match cmd {
        Command::Throttle => "throttle".into(),
        Command::NoThrottle => "no-throttle".into(),
        Command::Pause => "pause".into(),
        Command::Resume => "resume".into(),
        Command::Checkpoint => "checkpoint".into(),
        Command::CutOver => "unpostpone".into(),
        Command::Stop => "stop".into(),
        Command::Abort => "panic".into(),
        Command::Set { name, value } => format!("{name}={value}"),
        Command::Get { name } => format!("{name}=?"),
    }
}

fn set_stop(control: &Arc<Mutex<Control>>, reason: &str) {
    if let Ok(mut c) = control.lock() {
        c.stop_reason.get_or_insert_with(|| reason.to_string());
    }
}

async fn handle_command(
    cmd: &Command,
    shared: &Arc<Shared>,
    cfg: &MigrationConfig,
    control: &Arc<Mutex<Control>>,
    cancel: &CancellationToken,
) -> CommandReply {
    let phase = shared.phase();
    match cmd {
        Command::Throttle | Command::NoThrottle | Command::Pause | Command::Resume => {
            operator_switch(cmd, shared).unwrap_or_else(|| CommandReply::refused("not a switch"))
        }
        Command::CutOver => {
            if phase.is_some_and(|p| p > Phase::ReadyToCutOver) {
                return CommandReply::refused(format!("the cut-over is already past ({})", phase.map(|p| p.label()).unwrap_or("")));
            }
            shared.cutover_approved.store(true, Ordering::Relaxed);
            if let Some(f) = &shared.throttle_settings().postpone_flag_file {
                if let Err(e) = crate::engine::throttle::flag_file::remove_own(f) {
                    tracing::warn!("postpone flag file: {e}");
                }
            }
            if phase == Some(Phase::ReadyToCutOver) {
                let postponed_reason = "postponed: waiting for approval";
                match shared.with(|i| i.status.cutover.blocked_reason.clone()).filter(|r| r != postponed_reason) {
                    Some(why) => CommandReply::ok(format!("cut-over approved, but it waits: {why}")),
                    None => CommandReply::ok("cut-over approved: starting"),
                }
            } else {
                CommandReply::ok(format!(
                    "cut-over approved: it starts once the copy is done and the backlog applied (now: {})",
                    phase.map(|p| p.label()).unwrap_or("starting")
                ))
            }
        }
        Command::Stop => {
            set_stop(control, "stop requested");
            cancel.cancel();
            CommandReply::ok("stopping at the next safe point; a checkpoint will be written")
        }
        Command::Abort => {
            set_stop(control, "aborted (panic)");
            cancel.cancel();
            CommandReply::ok("aborting now; the migration stays resumable and nothing is dropped")
        }
        Command::Checkpoint => match checkpoint_now(shared, cfg).await {
            Ok(msg) => CommandReply::ok(msg),
            Err(e) => CommandReply::refused(format!("checkpoint failed: {e:#}")),
        },
        Command::Set { name, value } => set_value(shared, name, value),
        Command::Get { name } => get_value(shared, name),
    }
}

/// The operator's switches, the same for a migration and a move: throttle (the copy waits at once; the throttle
/// loop keeps the reason, so lifting the manual switch never clears another throttler's reason), pause, resume.
pub(crate) fn operator_switch(cmd: &Command, shared: &Shared) -> Option<CommandReply> {
    Some(match cmd {
        Command::Throttle => {
            shared.manual_throttle.store(true, Ordering::Relaxed);
            shared.with(|i| {
                i.throttle_reason.get_or_insert_with(|| "commanded by user".into());
            });
            CommandReply::ok("throttled (commanded by user): the copy waits; the binlog is still applied")
        }
        Command::NoThrottle => {
            shared.manual_throttle.store(false, Ordering::Relaxed);
            CommandReply::ok("manual throttle lifted")
        }
        Command::Pause => {
            shared.paused.store(true, Ordering::Relaxed);
            CommandReply::ok("paused: copy and apply wait (the backlog grows)")
        }
        Command::Resume => {
            shared.paused.store(false, Ordering::Relaxed);
            CommandReply::ok("resumed")
        }
        _ => return None,
    })
}

/// A live `name=value` setting from the console or socket (also for move-tables).
pub(crate) fn set_value(shared: &Shared, name: &str, value: &str) -> CommandReply {
    let parse_u64 = |v: &str| v.trim().parse::<u64>().map_err(|_| format!("{name}: '{v}' is not a whole number"));
    let r: std::result::Result<String, String> = match name {
        "chunk-size" => parse_u64(value).and_then(|n| {
            if !(crate::engine::copy::copier::MIN_CHUNK..=crate::engine::copy::copier::MAX_CHUNK).contains(&n) {
                return Err(format!("chunk-size must be between {} and {}", crate::engine::copy::copier::MIN_CHUNK, crate::engine::copy::copier::MAX_CHUNK));
            }
            shared.chunk_size.store(n, Ordering::Relaxed);
            Ok(format!("chunk-size={n}"))
        }),
        "dml-batch-size" => parse_u64(value).and_then(|n| {
            if n == 0 || n > 100_000 {
                return Err("dml-batch-size must be between 1 and 100000".into());
            }
            shared.dml_batch_size.store(n, Ordering::Relaxed);
            Ok(format!("dml-batch-size={n}"))
        }),
        "max-lag-millis" => parse_u64(value).and_then(|n| {
            if n < 100 {
                return Err("max-lag-millis must be at least 100".into());
            }
            shared.max_lag_millis.store(n, Ordering::Relaxed);
            Ok(format!("max-lag-millis={n}"))
        }),
        "nice-ratio" => value
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("nice-ratio: '{value}' is not a number"))
            .and_then(|f| {
                if !(0.0..=100.0).contains(&f) {
                    return Err("nice-ratio must be between 0 and 100".into());
                }
                shared.nice_ratio_bits.store(f.to_bits(), Ordering::Relaxed);
                Ok(format!("nice-ratio={f}"))
            }),
        "max-load" | "critical-load" => throttlers::parse_load(value).map_err(|e| format!("{name}: {e}")).map(|l| {
            let text = throttlers::format_load(&l);
            shared.update_throttle_settings(|t| if name == "max-load" { t.max_load = l } else { t.critical_load = l });
            format!("{name}={text}")
        }),
        "throttle-query" | "postpone-cut-over-flag-file" => crate::engine::throttle::live::set(shared, name, value),
        "throttle-control-replicas" => {
            let port = shared.with(|i| i.status.target.host.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())).unwrap_or(3306);
            throttlers::parse_replicas(value, port).map_err(|e| format!("{name}: {e}")).map(|r| {
                let text = throttlers::format_replicas(&r);
                shared.update_throttle_settings(|t| {
                    t.control_replicas = r;
                    t.replicas_generation += 1;
                });
                format!("throttle-control-replicas={text} (replicas discovered from the primary are looked up again)")
            })
        }
        other => Err(format!("'{other}' cannot be set on this migration")),
    };
    match r {
        Ok(m) => CommandReply::ok(m),
        Err(m) => CommandReply::refused(m),
    }
}

pub(crate) fn get_value(shared: &Shared, name: &str) -> CommandReply {
    match name {
        "chunk-size" => CommandReply::ok(shared.chunk_size.load(Ordering::Relaxed).to_string()),
        "dml-batch-size" => CommandReply::ok(shared.dml_batch_size.load(Ordering::Relaxed).to_string()),
        "max-lag-millis" => CommandReply::ok(shared.max_lag_millis.load(Ordering::Relaxed).to_string()),
        "nice-ratio" => CommandReply::ok(shared.nice_ratio().to_string()),
        "max-load" => CommandReply::ok(throttlers::format_load(&shared.throttle_settings().max_load)),
        "critical-load" => CommandReply::ok(throttlers::format_load(&shared.throttle_settings().critical_load)),
        "throttle-query" => CommandReply::ok(shared.throttle_settings().throttle_query.unwrap_or_default()),
        "throttle-control-replicas" => CommandReply::ok(throttlers::format_replicas(&shared.throttle_settings().control_replicas)),
        "postpone-cut-over-flag-file" => CommandReply::ok(
            shared.throttle_settings().postpone_flag_file.map(|p| p.display().to_string()).unwrap_or_default(),
        ),
        other => CommandReply::refused(format!("unknown setting '{other}'")),
    }
}

/// Forces a summary write and reports the recorded position.
async fn checkpoint_now(shared: &Shared, cfg: &MigrationConfig) -> Result<String> {
    let mut c = mysql_async::Conn::new(cfg.source.opts()).await?;
    let phase = shared.phase().map(|p| p.label()).unwrap_or("preflight");
    c.exec_drop(
        format!(
            "UPDATE {} SET phase = ?, rows_estimate = ?, updated_at = CURRENT_TIMESTAMP(6) WHERE id = ?",
            qualified(&cfg.database, &cfg.checkpoint_table())
        ),
        (phase, shared.rows_estimate.load(Ordering::Relaxed), checkpoint::SUMMARY),
    )
    .await?;
    let st = checkpoint::read(&mut c, &cfg.database, &cfg.checkpoint_table())
        .await?
        .ok_or_else(|| eyre!("no checkpoint table yet (the migration has not been set up)"))?;
    let _ = c.disconnect().await;
    shared.checkpoint_committed(Some(&st.applied_gtid_set), st.copy_watermark.as_deref().map(watermark_text));
    Ok(format!(
        "checkpoint recorded: applied GTID set {} ({}:{}), copy watermark {}, {} rows copied, {} events applied",
        if st.applied_gtid_set.is_empty() { "(none yet)" } else { &st.applied_gtid_set },
        st.applied_file,
        st.applied_pos,
        st.copy_watermark.as_deref().map(watermark_text).unwrap_or_else(|| "(start)".to_string()),
        st.rows_copied,
        st.events_applied
    ))
}

fn watermark_text(json: &str) -> String {
    checkpoint::decode_key(json).map(|v| checkpoint::describe_key(&v)).unwrap_or_else(|_| json.to_string())
}

/// The stop reason, if a stop was requested.
fn stop_reason(control: &Arc<Mutex<Control>>) -> Option<String> {
    control.lock().ok().and_then(|c| c.stop_reason.clone())
}

/// The tasks of a run (migrate and move-tables): binlog streamer, applier, and the side tasks (heartbeat writer,
/// throttle loop), under one cancellation token.
pub(crate) struct Running {
    pub(crate) streamer: Option<JoinHandle<Result<()>>>,
    pub(crate) applier: Option<JoinHandle<Result<()>>>,
    pub(crate) side: Vec<JoinHandle<()>>,
    pub(crate) tasks_cancel: CancellationToken,
    pub(crate) applied_rx: watch::Receiver<Applied>,
    pub(crate) ddl_allowed: watch::Sender<bool>,
}

/// A task's result as its join handle gives it.
pub(crate) type TaskResult = std::result::Result<Result<()>, tokio::task::JoinError>;

impl Running {
    /// The streamer or the applier, if one of them already ended, with its result.
    pub(crate) async fn finished(&mut self) -> Option<(&'static str, TaskResult)> {
        let done = |h: &Option<JoinHandle<Result<()>>>| h.as_ref().is_some_and(|h| h.is_finished());
        if done(&self.streamer) {
            return Some(("binlog streamer", join_slot(&mut self.streamer).await));
        }
        if done(&self.applier) {
            return Some(("applier", join_slot(&mut self.applier).await));
        }
        None
    }

    /// Stops every task and waits for it (their checkpoints are committed as they go).
    pub(crate) async fn stop(&mut self) {
        self.tasks_cancel.cancel();
        if self.applier.is_some() {
            let _ = join_slot(&mut self.applier).await;
        }
        if self.streamer.is_some() {
            let _ = join_slot(&mut self.streamer).await;
        }
        for t in self.side.drain(..) {
            let _ = t.await;
        }
    }
}

async fn run_phases(
    cfg: &MigrationConfig,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    control: Arc<Mutex<Control>>,
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
        &apply_target(&plan, &mapping, &cfg.database, &cfg.ghost_table()),
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
    let mut running = start_tasks(cfg, &plan, &mapping, &changelog, &shared, start, &cancel, &control, delete_log).await?;

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

/// A report as plain text with its suggestions (for the status snapshot: no colours, no backtrace).
pub(crate) fn plain_report(e: &color_eyre::Report) -> String {
    let mut text = format!("{e:#}");
    for section in format!("{e:?}").lines() {
        let clean: String = strip_ansi(section);
        if let Some(s) = clean.trim().strip_prefix("Suggestion:") {
            text.push_str(&format!("\nSuggestion: {}", s.trim()));
        }
    }
    text
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for n in chars.by_ref() {
                if n.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Awaits a task once; afterwards the slot is empty and awaiting it again never completes.
pub(crate) async fn join_slot<T>(slot: &mut Option<JoinHandle<T>>) -> std::result::Result<T, tokio::task::JoinError> {
    match slot.as_mut() {
        Some(h) => {
            let r = h.await;
            *slot = None;
            r
        }
        None => std::future::pending().await,
    }
}

trait WithResume {
    fn with_resume(self, cfg: &MigrationConfig) -> Self;
}

impl WithResume for color_eyre::Report {
    fn with_resume(self, cfg: &MigrationConfig) -> Self {
        match &cfg.resume_command {
            Some(c) => self.suggestion(format!("the migration is resumable: {c}")),
            None => self.suggestion("the migration is resumable: run the same command with --resume"),
        }
    }
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

/// The original table's columns as the streamer decodes them: ENUM/SET columns whose definition the ALTER keeps are
/// written by index (exact for any label).
pub(crate) fn watched_columns(plan: &Plan, mapping: &crate::engine::plan::schema::ColumnMapping) -> Vec<crate::engine::plan::schema::Column> {
    let mut original_columns = plan.original.columns.clone();
    for col in original_columns.iter_mut().filter(|c| c.is_enum() || c.is_set()) {
        if let Some((_, gname)) = mapping.shared.iter().find(|(c, _)| c.name == col.name) {
            if plan.new_structure.column(gname).is_some_and(|g| g.column_type == col.column_type && g.data_type == col.data_type) {
                col.enum_as_index = true;
            }
        }
    }
    original_columns
}

/// How the applier writes the original table's row events to `database.table` (the ghost, or a moved table).
pub(crate) fn apply_target(plan: &Plan, mapping: &crate::engine::plan::schema::ColumnMapping, database: &str, table: &str) -> ApplyTarget {
    ApplyTarget {
        database: database.to_string(),
        table: table.to_string(),
        columns: mapping
            .shared
            .iter()
            .map(|(c, g)| (c.ordinal - 1, c.clone(), g.clone()))
            .collect(),
        key: mapping
            .apply_key_source_columns
            .iter()
            .zip(&mapping.ghost_key_columns)
            .filter_map(|(o, g)| plan.original.column(o).map(|c| (c.ordinal - 1, c.clone(), g.clone())))
            .collect(),
        deletes: None,
    }
}

async fn start_tasks(
    cfg: &MigrationConfig,
    plan: &Plan,
    mapping: &crate::engine::plan::schema::ColumnMapping,
    changelog: &crate::engine::plan::schema::TableInfo,
    shared: &Arc<Shared>,
    start: BinlogPosition,
    cancel: &CancellationToken,
    control: &Arc<Mutex<Control>>,
    delete_log: Arc<DeleteLog>,
) -> Result<Running> {
    let tasks_cancel = cancel.child_token();
    let opts = cfg.source.opts();
    let watched = vec![
        WatchedTable { database: cfg.database.clone(), table: cfg.table.clone(), columns: watched_columns(plan, mapping) },
        WatchedTable { database: cfg.database.clone(), table: cfg.changelog_table(), columns: changelog.columns.clone() },
    ];
    let idx = |name: &str| changelog.columns.iter().position(|c| c.name == name).unwrap_or(0);
    let target = ApplyTarget { deletes: Some(delete_log), ..apply_target(plan, mapping, &cfg.database, &cfg.ghost_table()) };
    let (tx, rx) = mpsc::channel(1000);
    let streamer_state = Arc::new(Mutex::new(StreamerState::default()));
    let client_id = 1_000_000 + (std::process::id() % 1_000_000) + SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() % 1000).unwrap_or(0);
    let stream_cfg = StreamConfig {
        opts: opts.clone(),
        mariadb: plan.mariadb,
        client_server_id: client_id,
        start,
        watched,
        retry_for: cfg.retry_for,
    };
    shared.with(|i| i.status.binlog.backlog_capacity = 1000);
    let streamer = tokio::spawn(binlog::run(stream_cfg, tx, streamer_state.clone(), tasks_cancel.clone()));
    let (applied_tx, applied_rx) = watch::channel(Applied::default());
    let (ddl_tx, ddl_rx) = watch::channel(false);
    let applier = Applier {
        conn_opts: opts.clone(),
        targets: vec![Some(target), None],
        changelog: Some(ChangelogWatch { index: 1, hint_col: idx("hint"), value_col: idx("value") }),
        checkpoint: CheckpointTarget { database: cfg.database.clone(), table: cfg.checkpoint_table() },
        shared: shared.clone(),
        applied_tx,
        guarded_tables: vec![(cfg.database.clone(), cfg.table.clone())],
        ddl_allowed: ddl_rx,
        retry_for: cfg.retry_for,
    };
    let applier = tokio::spawn(applier.run(rx, tasks_cancel.clone()));
    let mut side = Vec::new();
    side.push(tokio::spawn(heartbeat_loop(cfg.clone(), shared.clone(), tasks_cancel.clone())));
    let stop_control = control.clone();
    side.push(tokio::spawn(throttle_loop(
        cfg.clone(),
        shared.clone(),
        streamer_state,
        tasks_cancel.clone(),
        cancel.clone(),
        Arc::new(move |why: &str| set_stop(&stop_control, why)),
    )));
    Ok(Running { streamer: Some(streamer), applier: Some(applier), side, tasks_cancel, applied_rx, ddl_allowed: ddl_tx })
}

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
            conn = mysql_async::Conn::new(cfg.source.opts()).await.ok();
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
            _ = tokio::time::sleep(cfg.heartbeat_interval) => {}
        }
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
        let mut reasons: Vec<String> = Vec::new();
        let mut signals = Vec::new();
        let manual = shared.manual_throttle.load(Ordering::Relaxed);
        signals.push(ThrottleSignal { name: "manual".into(), value: if manual { "on" } else { "off" }.into(), threshold: "-".into(), throttling: manual });
        if manual {
            reasons.push("commanded by user".into());
        }
        for f in [&cfg.throttle_flag_file, &cfg.throttle_additional_flag_file].into_iter().flatten() {
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
        if let Some(p) = &cfg.panic_flag_file {
            if crate::engine::throttle::flag_file::is_set(p) {
                tracing::error!("panic flag file {} exists: aborting (the migration stays resumable)", p.display());
                request_stop(&format!("panic flag file {}", p.display()));
                engine_cancel.cancel();
            }
        }
        let connected = streamer.lock().map(|s| s.connected).unwrap_or(false);
        if let Ok(s) = streamer.lock() {
            shared.with(|i| {
                i.status.binlog.read_file = s.file.clone();
                i.status.binlog.read_pos = s.pos;
                i.status.binlog.streaming = connected;
            });
        }
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

async fn stop_now(cfg: &MigrationConfig, shared: &Shared, control: &Arc<Mutex<Control>>, running: &mut Running) -> Result<Outcome> {
    running.stop().await;
    let reason = stop_reason(control).unwrap_or_else(|| "stopped".into());
    let state = dump_state(cfg, shared, &reason).await;
    Ok(Outcome::Stopped { state })
}

async fn fail_or_stop(
    cfg: &MigrationConfig,
    shared: &Shared,
    control: &Arc<Mutex<Control>>,
    running: &mut Running,
    r: TaskResult,
    what: &str,
) -> Result<Outcome> {
    // The applier ends quietly when the streamer's channel closes: the streamer's own result says why.
    let streamer_result = match (&r, running.streamer.is_some()) {
        (Ok(Ok(())), true) if stop_reason(control).is_none() => {
            tokio::time::timeout(Duration::from_secs(10), join_slot(&mut running.streamer)).await.ok()
        }
        _ => None,
    };
    running.tasks_cancel.cancel();
    if let Some(Ok(Err(e))) = streamer_result {
        return Err(e.wrap_err("the binlog streamer failed").with_resume(cfg));
    }
    match r {
        Ok(Ok(())) if stop_reason(control).is_some() => stop_now(cfg, shared, control, running).await,
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
