//! move-tables: copies whole tables from a source server to a target server (created there with the same
//! definition, or with an ALTER applied), applies the source's binary log row events for them to the target, keeps
//! the checkpoint on the target, and finishes with a cooperative, crash-safe cut-over: a gate, the
//! `gh-ost-on-before-cut-over` hook, a fence (the source tables are renamed to `_<t>_del`), the drain GTID read on
//! the same connection right after the rename, a drain until the target has applied that GTID, and the
//! `gh-ost-on-success` hook. Every step is recorded on the target before the next one starts, so `--resume`
//! continues from any crash without renaming twice. docs/move-tables.md describes the protocol.

use std::collections::HashMap;
use std::path::PathBuf;
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

use crate::engine::apply::applier::{Applied, Applier, ChangelogWatch, CheckpointTarget};
use crate::engine::stream::binlog::{self, BinlogPosition, StreamConfig, StreamerState, WatchedTable};
use crate::engine::checkpoint;
use crate::engine::config::{ConnectionConfig, MigrationConfig};
use crate::engine::copy::copier::{estimate_rows, CopyJob, CopyRange, CrossServer};
use crate::engine::failpoint;
use crate::engine::stream::gtid::GtidSet;
use crate::engine::hooks::{Hook, HookHints, HookIdentity, Hooks};
use crate::engine::pipeline::migrate::{apply_target, get_value, heartbeat_loop, join_slot, plain_report, set_value, throttle_loop, watched_columns, Running, TOOL_VERSION};
use crate::engine::pipeline::phase::Phase;
use crate::engine::plan::preflight::{self, refuse, Plan};
use crate::engine::plan::schema::{self, ColumnMapping};
use crate::engine::shared::Shared;
use crate::engine::sql::{qualified, quote_ident};
use crate::engine::status::{Command, CommandReply, CommandRequest, EngineHandle, Status, TableProgress, TargetInfo};
use crate::engine::throttle::throttlers::ThrottleSettings;

/// The checkpoint table of a move, in the target database.
pub const CHECKPOINT_TABLE: &str = "_revenant_move_ghk";

/// The heartbeat table of a move, in the source database: the move writes heartbeats into it and reads them back
/// from the binary log (heartbeat lag). Created at setup, dropped at the end when its comment says it is ours.
pub const CHANGELOG_TABLE: &str = "_revenant_move_ghc";

/// The table name migrate's heartbeat and throttle code is given, so that its changelog is [`CHANGELOG_TABLE`].
const CHANGELOG_BASE: &str = "revenant_move";

/// The comment that marks [`CHANGELOG_TABLE`] as revenant's (only then is it dropped at the end).
const CHANGELOG_COMMENT: &str = "revenant move changelog";

/// The ALTER preflight validates when none is given (it changes nothing).
const NO_ALTER: &str = "ENGINE=InnoDB";

/// Everything a move needs (validated and merged by the CLI, or built by tests).
#[derive(Debug, Clone)]
pub struct MoveTablesConfig {
    pub source: ConnectionConfig,
    pub target: ConnectionConfig,
    /// Database of the tables on the source.
    pub database: String,
    /// Database the tables are created in on the target.
    pub target_database: String,
    pub tables: Vec<String>,
    /// An ALTER clause applied to every table on the target (None: the same definition).
    pub alter: Option<String>,
    pub chunk_size: u64,
    pub chunk_target: Duration,
    pub dml_batch_size: u64,
    /// The cut-over waits for approval (console `C`, socket `unpostpone`).
    pub postpone_cut_over: bool,
    /// The cut-over waits while this file exists.
    pub postpone_cut_over_flag_file: Option<PathBuf>,
    /// Directory of gh-ost style hook executables (src/engine/hooks.rs runs them).
    pub hooks_path: Option<PathBuf>,
    pub hook_hints: HookHints,
    pub hook_timeout: Duration,
    /// Lock wait timeout of the fencing rename (retried up to `default_retries` times).
    pub cut_over_lock_timeout: Duration,
    pub default_retries: u32,
    pub resume: bool,
    pub retry_for: Duration,
    /// The command a user runs to resume (printed when the run stops resumable).
    pub resume_command: Option<String>,
    /// Test aid: a pause between reading a chunk on the source and writing it on the target (zero otherwise).
    pub copy_hold: Duration,
    /// Without it: a dry run that validates both servers and every table, says what it would do, and changes
    /// nothing on either server (as `migrate` without `--execute`).
    pub execute: bool,
    /// Heartbeat and throttle settings as `migrate` takes them (heartbeat interval, max lag, throttle flag files,
    /// panic flag file, max-load, critical-load, throttle-query, throttle-http, control replicas, nice ratio); the
    /// move fills in the source, database and changelog table ([`MoveTablesConfig::throttle_config`]).
    pub throttle: MigrationConfig,
}

impl MoveTablesConfig {
    pub fn new(source: ConnectionConfig, target: ConnectionConfig, database: &str, target_database: &str, tables: &[&str]) -> Self {
        let throttle = MigrationConfig::new(source.clone(), database, CHANGELOG_BASE, NO_ALTER);
        MoveTablesConfig {
            source,
            target,
            database: database.to_string(),
            target_database: target_database.to_string(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            alter: None,
            chunk_size: 1000,
            chunk_target: Duration::from_millis(500),
            dml_batch_size: 1000,
            postpone_cut_over: false,
            postpone_cut_over_flag_file: None,
            hooks_path: None,
            hook_hints: HookHints::default(),
            hook_timeout: Duration::from_secs(60),
            cut_over_lock_timeout: Duration::from_secs(3),
            default_retries: 60,
            resume: false,
            retry_for: Duration::from_secs(60),
            resume_command: None,
            copy_hold: Duration::ZERO,
            execute: false,
            throttle,
        }
    }

    /// What migrate's heartbeat and throttle loops read: the throttle settings, on this move's source database,
    /// with [`CHANGELOG_TABLE`] as the changelog.
    pub fn throttle_config(&self) -> MigrationConfig {
        let mut c = self.throttle.clone();
        c.source = self.source.clone();
        c.database = self.database.clone();
        c.table = CHANGELOG_BASE.to_string();
        c.postpone_cut_over = self.postpone_cut_over;
        c.postpone_cut_over_flag_file = self.postpone_cut_over_flag_file.clone();
        c.execute = self.execute;
        c.resume = self.resume;
        c.retry_for = self.retry_for;
        c.resume_command = self.resume_command.clone();
        c
    }

    /// The name a source table is fenced under.
    pub fn old_table(table: &str) -> String {
        format!("_{table}_del")
    }

    /// The statement that undoes the fence on the source (renames the tables back).
    pub fn rollback_statement(&self) -> String {
        let pairs: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("{} TO {}", qualified(&self.database, &Self::old_table(t)), qualified(&self.database, t)))
            .collect();
        format!("RENAME TABLE {}", pairs.join(", "))
    }

    fn fence_statement(&self) -> String {
        let pairs: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("{} TO {}", qualified(&self.database, t), qualified(&self.database, &Self::old_table(t))))
            .collect();
        format!("RENAME TABLE {}", pairs.join(", "))
    }

    fn copy_row(table: &str) -> String {
        format!("{}:{table}", checkpoint::COPY)
    }

    /// What the summary row records as "the tables": the list in order.
    fn tables_text(&self) -> String {
        self.tables.join(",")
    }
}

/// How a move ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum MoveOutcome {
    /// Drained and announced: the target holds every write the source took; the source tables are `_<t>_del`.
    Done { drain_gtid: String },
    /// Dry run (no `--execute`): validated, nothing changed on either server; what would be done.
    DryRun { plan: Vec<String> },
    /// Stopped on request (a stop, a signal, a panic flag file, critical load), with a checkpoint; resumable. The
    /// state is what the CLI prints (stdout or `--state-file`).
    Stopped { state: MoveStateDump },
}

/// Where a stopped move stands, as JSON on SIGINT/SIGTERM or a stop (like migrate's `StateDump`): the tables, the
/// engine phase and cut-over step, the target checkpoint's applied position, per-table copy watermarks, the drain
/// GTID, and the resume command. Never a password.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MoveStateDump {
    pub tool_version: String,
    pub source_host: String,
    pub target_host: String,
    pub database: String,
    pub target_database: String,
    pub tables: Vec<String>,
    pub alter: String,
    pub alter_fingerprint: String,
    /// The engine phase when it stopped (`copy`, `catch-up`, `ready`, `cut-over`...).
    pub phase: String,
    /// The cut-over step (`gate`, `before-hook`, `fence`, `drain`...), empty before the cut-over.
    pub step: String,
    /// The phase recorded in the target's checkpoint (what `--resume` continues from).
    pub checkpoint_phase: String,
    pub reason: String,
    pub applied_gtid_set: String,
    pub applied_file: String,
    pub applied_pos: u64,
    pub events_applied: u64,
    /// The GTID set the drain waits for, once the source tables are fenced.
    pub drain_gtid: Option<String>,
    pub tables_copied: Vec<TableWatermark>,
    pub resume_command: Option<String>,
}

/// One table's copy progress in a [`MoveStateDump`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TableWatermark {
    pub table: String,
    /// The last copied key (the checkpoint's encoding), None before the first chunk.
    pub watermark: Option<String>,
    pub copy_complete: bool,
    pub rows_copied: u64,
}

impl MoveStateDump {
    /// The part known without a server: who, what, why, how to resume.
    fn stopped(cfg: &MoveTablesConfig, reason: String) -> Self {
        MoveStateDump {
            tool_version: TOOL_VERSION.into(),
            source_host: cfg.source.display(),
            target_host: cfg.target.display(),
            database: cfg.database.clone(),
            target_database: cfg.target_database.clone(),
            tables: cfg.tables.clone(),
            alter: cfg.alter.clone().unwrap_or_default(),
            reason,
            resume_command: cfg.resume_command.clone(),
            ..Default::default()
        }
    }

    /// Fills in the engine's phase and step, and what the target's checkpoint recorded (best effort: an unreachable
    /// target leaves those fields empty; the checkpoint table stays authoritative).
    async fn complete(&mut self, cfg: &MoveTablesConfig, shared: &Shared) {
        self.phase = shared.phase().map(|p| p.label().to_string()).unwrap_or_default();
        self.step = shared.with(|i| i.status.cutover.step.clone());
        let Ok(mut tgt) = mysql_async::Conn::new(cfg.target.opts()).await else { return };
        if let Ok(Some(st)) = checkpoint::read(&mut tgt, &cfg.target_database, CHECKPOINT_TABLE).await {
            self.checkpoint_phase = st.phase;
            self.alter_fingerprint = st.alter_fingerprint;
            self.applied_gtid_set = st.applied_gtid_set;
            self.applied_file = st.applied_file;
            self.applied_pos = st.applied_pos;
            self.events_applied = st.events_applied;
            self.drain_gtid = st.drain_gtid;
        }
        if let Ok(rows) = read_copy_rows(&mut tgt, &cfg.target_database).await {
            self.tables_copied = cfg
                .tables
                .iter()
                .map(|t| {
                    let r = rows.get(t).cloned().unwrap_or_default();
                    TableWatermark { table: t.clone(), watermark: r.watermark, copy_complete: r.complete, rows_copied: r.rows_copied }
                })
                .collect();
        }
        let _ = tgt.disconnect().await;
    }
}

/// An error after the fence: the exact statement that gives the tables back to the source.
fn after_fence(e: color_eyre::Report, cfg: &MoveTablesConfig) -> color_eyre::Report {
    let resume = cfg.resume_command.clone().unwrap_or_else(|| "the same command with --resume".into());
    e.suggestion(format!(
        "the source tables are fenced (renamed); {resume} finishes the drain; to give the tables back to the source \
         instead, run `revenant move-tables ... --rollback` or: {};",
        cfg.rollback_statement()
    ))
}

fn with_resume(e: color_eyre::Report, cfg: &MoveTablesConfig) -> color_eyre::Report {
    match &cfg.resume_command {
        Some(c) => e.suggestion(format!("the move is resumable: {c}")),
        None => e.suggestion("the move is resumable: run the same command with --resume"),
    }
}

/// Starts a move in the background.
pub fn start(cfg: MoveTablesConfig) -> (EngineHandle, JoinHandle<Result<MoveOutcome>>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (status_tx, status_rx) = watch::channel(Status::default());
    let handle = EngineHandle { commands: cmd_tx, status: status_rx };
    let join = tokio::spawn(run(cfg, cmd_rx, status_tx));
    (handle, join)
}

async fn run(cfg: MoveTablesConfig, cmd_rx: mpsc::Receiver<CommandRequest>, status_tx: watch::Sender<Status>) -> Result<MoveOutcome> {
    let shared = Arc::new(Shared::new());
    shared.chunk_size.store(cfg.chunk_size.max(1), Ordering::Relaxed);
    shared.dml_batch_size.store(cfg.dml_batch_size.max(1), Ordering::Relaxed);
    let throttle_cfg = cfg.throttle_config();
    shared.max_lag_millis.store(throttle_cfg.max_lag_millis, Ordering::Relaxed);
    shared.nice_ratio_bits.store(throttle_cfg.nice_ratio.to_bits(), Ordering::Relaxed);
    shared.update_throttle_settings(|t| *t = ThrottleSettings::from_config(&throttle_cfg));
    shared.with(|i| {
        i.status.target = TargetInfo {
            host: cfg.source.display(),
            database: cfg.database.clone(),
            table: cfg.tables_text(),
            alter: format!("move to {}/{}{}", cfg.target.display(), cfg.target_database, cfg.alter.as_deref().map(|a| format!(" with {a}")).unwrap_or_default()),
            ghost_table: cfg.tables_text(),
            old_table: cfg.tables.iter().map(|t| MoveTablesConfig::old_table(t)).collect::<Vec<_>>().join(","),
            applier_host: cfg.target.display(),
            dry_run: !cfg.execute,
            ..Default::default()
        };
        i.status.tables = cfg.tables.iter().map(|t| TableProgress { table: t.clone(), ..Default::default() }).collect();
        i.status.cutover.postponed = cfg.postpone_cut_over || cfg.postpone_cut_over_flag_file.is_some();
    });
    let cancel = CancellationToken::new();
    let stop_reason = Arc::new(Mutex::new(None::<String>));
    let status_task = {
        let shared = shared.clone();
        let done = cancel.child_token();
        let status_tx = status_tx.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                seq += 1;
                status_tx.send_replace(shared.snapshot(seq));
                tokio::select! {
                    _ = done.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        })
    };
    let cmd_task = tokio::spawn(command_loop(cmd_rx, shared.clone(), cfg.clone(), stop_reason.clone(), cancel.clone()));
    let mut result = run_steps(&cfg, shared.clone(), cancel.clone(), stop_reason.clone()).await;
    if let Ok(MoveOutcome::Stopped { state }) = &mut result {
        state.complete(&cfg, &shared).await;
    }
    match &result {
        Ok(MoveOutcome::Done { .. }) | Ok(MoveOutcome::DryRun { .. }) => shared.enter(Phase::Done),
        Ok(MoveOutcome::Stopped { state }) => shared.end(Phase::Stopped, format!("stopped: {}", state.reason), state.resume_command.clone()),
        Err(e) => shared.end(Phase::Failed, plain_report(e), cfg.resume_command.clone()),
    }
    cancel.cancel();
    let _ = status_task.await;
    status_tx.send_replace(shared.snapshot(u64::MAX / 2));
    cmd_task.abort();
    result
}

async fn command_loop(
    mut rx: mpsc::Receiver<CommandRequest>,
    shared: Arc<Shared>,
    cfg: MoveTablesConfig,
    stop_reason: Arc<Mutex<Option<String>>>,
    cancel: CancellationToken,
) {
    while let Some(req) = rx.recv().await {
        let phase = shared.phase();
        let reply = match &req.command {
            Command::CutOver => {
                if phase.is_some_and(|p| p > Phase::ReadyToCutOver) {
                    CommandReply::refused(format!("the cut-over is already past ({})", phase.map(|p| p.label()).unwrap_or("")))
                } else {
                    shared.cutover_approved.store(true, Ordering::Relaxed);
                    if let Some(f) = &cfg.postpone_cut_over_flag_file {
                        let _ = crate::engine::throttle::flag_file::remove_own(f);
                    }
                    CommandReply::ok("cut-over approved: it starts once the tables are copied and the backlog applied")
                }
            }
            Command::Stop | Command::Abort => {
                if let Ok(mut r) = stop_reason.lock() {
                    r.get_or_insert_with(|| if req.command == Command::Stop { "stop requested".into() } else { "aborted (panic)".into() });
                }
                cancel.cancel();
                CommandReply::ok("stopping at the next safe point; the move stays resumable")
            }
            Command::Throttle | Command::NoThrottle | Command::Pause | Command::Resume => {
                crate::engine::pipeline::migrate::operator_switch(&req.command, &shared).unwrap_or_else(|| CommandReply::refused("not a switch"))
            }
            // The postpone flag file of a move is fixed at start (the gate reads the configured path).
            Command::Set { name, .. } if name == "postpone-cut-over-flag-file" => {
                CommandReply::refused("postpone-cut-over-flag-file cannot be changed on a running move")
            }
            // migrate's live settings: chunk and batch sizes, max-lag, nice-ratio and the throttlers' thresholds.
            Command::Set { name, value } => set_value(&shared, name, value),
            Command::Get { name } => get_value(&shared, name),
            other => CommandReply::refused(format!("{other:?} is not available for move-tables")),
        };
        tracing::info!("command {:?}: {}", req.command, reply.message);
        let _ = req.reply.send(reply);
    }
}

/// One moved table: what preflight learned, and how it maps onto the target table.
struct MovedTable {
    name: String,
    plan: Plan,
    mapping: ColumnMapping,
}

/// Where the source tables stand: serving under their names, or fenced as `_<t>_del`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SourceState {
    Serving,
    Fenced,
}

async fn table_exists(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<bool> {
    let n: Option<String> = conn
        .exec_first("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (db, table))
        .await
        .wrap_err_with(|| format!("looking for {db}.{table}"))?;
    Ok(n.is_some())
}

async fn source_state(conn: &mut mysql_async::Conn, cfg: &MoveTablesConfig) -> Result<SourceState> {
    let mut serving = 0;
    let mut fenced = 0;
    for t in &cfg.tables {
        let here = table_exists(conn, &cfg.database, t).await?;
        let away = table_exists(conn, &cfg.database, &MoveTablesConfig::old_table(t)).await?;
        if !here && !away {
            return Err(refuse(
                format!("table {}.{t} does not exist on the source {}", cfg.database, cfg.source.display()),
                "check --database and --tables",
            ));
        }
        serving += usize::from(here);
        fenced += usize::from(away);
    }
    let n = cfg.tables.len();
    if serving == n && fenced == 0 {
        Ok(SourceState::Serving)
    } else if fenced == n && serving == 0 {
        Ok(SourceState::Fenced)
    } else {
        Err(refuse(
            format!(
                "the source tables are neither all serving nor all fenced ({serving} of {n} under their names, {fenced} of {n} as _<t>_del)"
            ),
            "check the tables on the source by hand: the fence renames them all in one statement, so revenant did not do this",
        ))
    }
}

/// Per-table copy rows of the checkpoint (`copy:<table>`).
#[derive(Debug, Clone, Default)]
struct CopyRow {
    range_end: Option<String>,
    watermark: Option<String>,
    complete: bool,
    rows_copied: u64,
    rows_estimate: u64,
}

async fn read_copy_rows(conn: &mut mysql_async::Conn, db: &str) -> Result<HashMap<String, CopyRow>> {
    type Row = (String, Option<String>, Option<String>, u8, u64, u64);
    let rows: Vec<Row> = conn
        .query(format!(
            "SELECT id, copy_range_end, copy_watermark, copy_complete, rows_copied, rows_estimate FROM {} WHERE id LIKE 'copy:%'",
            qualified(db, CHECKPOINT_TABLE)
        ))
        .await
        .wrap_err("reading the copy rows of the checkpoint")?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, end, wm, done, n, estimate)| {
            id.strip_prefix("copy:").map(|t| {
                (t.to_string(), CopyRow { range_end: end, watermark: wm, complete: done == 1, rows_copied: n, rows_estimate: estimate })
            })
        })
        .collect())
}

async fn gtid_executed(conn: &mut mysql_async::Conn, mariadb: bool) -> Result<String> {
    let q = if mariadb { "SELECT @@GLOBAL.gtid_binlog_pos" } else { "SELECT @@GLOBAL.gtid_executed" };
    let v: Option<String> = conn.query_first(q).await.wrap_err("reading the source's executed GTID set")?;
    Ok(GtidSet::parse(mariadb, &v.unwrap_or_default())?.to_string())
}

async fn set_summary(conn: &mut mysql_async::Conn, cfg: &MoveTablesConfig, assignments: &str) -> Result<()> {
    conn.exec_drop(
        format!("UPDATE {} SET {assignments} WHERE id = ?", qualified(&cfg.target_database, CHECKPOINT_TABLE)),
        (checkpoint::SUMMARY,),
    )
    .await
    .wrap_err_with(|| format!("recording `{assignments}` in the target's checkpoint"))
}

async fn check_gtids(conn: &mut mysql_async::Conn, which: &str) -> Result<bool> {
    let version: String = conn.query_first("SELECT @@version").await?.unwrap_or_default();
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    if !mariadb {
        let mode: Option<String> = conn.query_first("SELECT @@GLOBAL.gtid_mode").await.wrap_err("reading gtid_mode")?;
        let mode = mode.unwrap_or_default();
        if !mode.eq_ignore_ascii_case("ON") {
            return Err(refuse(
                format!("gtid_mode is {mode} on the {which} server"),
                "enable GTIDs on both servers (gtid_mode=ON, enforce_gtid_consistency=ON): move-tables records positions as GTID sets",
            ));
        }
    }
    Ok(mariadb)
}

async fn run_steps(
    cfg: &MoveTablesConfig,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    stop_reason: Arc<Mutex<Option<String>>>,
) -> Result<MoveOutcome> {
    shared.enter(Phase::Preflight);
    if cfg.tables.is_empty() {
        return Err(refuse("no tables to move", "name them with --tables t1,t2"));
    }
    let hooks = hooks_for(cfg)?;
    let source_opts = cfg.source.opts();
    let target_opts = cfg.target.opts();
    let mut src = mysql_async::Conn::new(source_opts.clone())
        .await
        .map_err(|e| refuse(format!("cannot connect to the source {}: {e}", cfg.source.display()), "check --host, --port, --user and the password source"))?;
    let mut tgt = mysql_async::Conn::new(target_opts.clone()).await.map_err(|e| {
        refuse(
            format!("cannot connect to the target {}: {e}", cfg.target.display()),
            "check --target-host, --target-port, --target-user and --target-conf",
        )
    })?;
    let mariadb = check_gtids(&mut src, "source").await?;
    let target_mariadb = check_gtids(&mut tgt, "target").await?;
    if mariadb != target_mariadb {
        return Err(refuse("the source and the target are of different flavours (MySQL and MariaDB)", "move tables between servers of one flavour"));
    }
    if !table_exists_db(&mut tgt, &cfg.target_database).await? {
        return Err(refuse(
            format!("the target database {} does not exist on {}", cfg.target_database, cfg.target.display()),
            format!("create it first: CREATE DATABASE {}", quote_ident(&cfg.target_database)),
        ));
    }
    let state = checkpoint::read(&mut tgt, &cfg.target_database, CHECKPOINT_TABLE).await?;
    let source_now = source_state(&mut src, cfg).await?;
    match (&state, cfg.resume) {
        (Some(_), false) => {
            return Err(refuse(
                format!("a checkpoint of an earlier move exists ({}.{CHECKPOINT_TABLE} on the target)", cfg.target_database),
                "run the same command with --resume to continue it, or drop it after checking (docs/move-tables.md)",
            ))
        }
        (None, true) => {
            return Err(refuse(
                format!("nothing to resume: no checkpoint table {}.{CHECKPOINT_TABLE} on the target", cfg.target_database),
                "run without --resume to start a new move",
            ))
        }
        (Some(st), true) => {
            if st.database_name != cfg.database || st.table_name != cfg.tables_text() {
                return Err(refuse(
                    format!("the checkpoint on the target is for {}.[{}]", st.database_name, st.table_name),
                    "resume with the same --database and --tables",
                ));
            }
            let alter = cfg.alter.clone().unwrap_or_default();
            if checkpoint::fingerprint(&alter) != st.alter_fingerprint {
                return Err(refuse(format!("the --alter differs from the one being resumed ('{}')", st.alter_statement), "resume with exactly the same --alter"));
            }
            if st.phase == "rolled-back" {
                return Err(refuse(
                    "this move was rolled back (the source tables serve again)",
                    "drop the target tables and the checkpoint table, then start a new move (docs/move-tables.md)",
                ));
            }
            if st.drain_gtid.is_some() && source_now == SourceState::Serving {
                return Err(refuse(
                    "the checkpoint says the source tables were fenced, but they serve under their names again",
                    "someone renamed them back by hand: the target may lack their later writes; check both sides, then start a new move",
                ));
            }
        }
        (None, false) => {
            if source_now == SourceState::Fenced {
                return Err(refuse("the source tables are already renamed to _<t>_del", "check the source by hand"));
            }
            for t in &cfg.tables {
                if table_exists(&mut tgt, &cfg.target_database, t).await? {
                    return Err(refuse(
                        format!("table {}.{t} already exists on the target {}", cfg.target_database, cfg.target.display()),
                        "move into a database without these tables, or drop them after checking they hold nothing you need",
                    ));
                }
                if table_exists(&mut src, &cfg.database, &MoveTablesConfig::old_table(t)).await? {
                    return Err(refuse(
                        format!("table {}.{} already exists on the source (the fence needs the name)", cfg.database, MoveTablesConfig::old_table(t)),
                        "drop or rename it after checking it holds nothing you need",
                    ));
                }
            }
        }
    }
    // Preflight of every table (on its fenced name once fenced: the binary log before the fence names it `t`).
    let mut plans = Vec::new();
    for t in &cfg.tables {
        let name = if source_now == SourceState::Fenced { MoveTablesConfig::old_table(t) } else { t.clone() };
        let mcfg = MigrationConfig::new(cfg.source.clone(), &cfg.database, &name, cfg.alter.as_deref().unwrap_or(NO_ALTER));
        let plan = preflight::run(&mut src, &mcfg).await.wrap_err_with(|| format!("table {}.{name} on the source", cfg.database))?;
        plans.push((t.clone(), plan));
    }
    shared.with(|i| {
        i.status.target.flavor = if mariadb { "mariadb".into() } else { "mysql".into() };
        i.status.target.version = plans.first().map(|(_, p)| p.version.clone()).unwrap_or_default();
    });
    // One move of these tables at a time.
    // Lock names are at most 64 characters: the tables go in as a fingerprint.
    let lock_name = format!("revenant.move.{}", &checkpoint::fingerprint(&format!("{}.{}", cfg.database, cfg.tables_text()))[..32]);
    let mut lock_conn = mysql_async::Conn::new(source_opts.clone()).await?;
    let got: Option<i64> = lock_conn.exec_first("SELECT GET_LOCK(?, 0)", (lock_name.as_str(),)).await?;
    if got != Some(1) {
        return Err(refuse(
            format!("another move of {}.[{}] is running (lock {lock_name} is held)", cfg.database, cfg.tables_text()),
            "wait for it to finish, or attach to it with `revenant attach`",
        ));
    }
    let changelog_ours = match changelog_comment(&mut src, cfg).await? {
        None => None,
        Some(c) if c == CHANGELOG_COMMENT => Some(true),
        Some(_) => {
            return Err(refuse(
                format!("{}.{CHANGELOG_TABLE} exists on the source and is not revenant's (its comment is not '{CHANGELOG_COMMENT}')", cfg.database),
                "the move writes its heartbeats there: rename or drop that table after checking it holds nothing you need",
            ))
        }
    };
    if !cfg.execute {
        let plan = dry_run_plan(&mut src, cfg, &plans, state.as_ref(), source_now, mariadb, changelog_ours.is_some()).await?;
        for line in &plan {
            tracing::info!("{line}");
        }
        return Ok(MoveOutcome::DryRun { plan });
    }

    // Setup (fresh, or a resume whose setup never finished).
    shared.enter(Phase::Setup);
    let setup_done = state.as_ref().is_some_and(|st| st.phase != "setup");
    if !setup_done {
        if state.is_some() {
            tracing::info!("the interrupted run never finished its setup: setting up again");
            for t in &cfg.tables {
                tgt.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&cfg.target_database, t))).await?;
            }
            tgt.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&cfg.target_database, CHECKPOINT_TABLE))).await?;
        }
        setup_target(&mut src, &mut tgt, cfg, &plans).await?;
    }
    // The heartbeat table (again after a crash: CREATE ... IF NOT EXISTS).
    let changelog = ensure_changelog(&mut src, cfg).await?;
    failpoint::hit("move-after-setup")?;
    let mut tables = Vec::new();
    for (t, plan) in plans {
        let target_info = schema::read_table(&mut tgt, &cfg.target_database, &t)
            .await?
            .ok_or_else(|| eyre!("the target table {}.{t} is missing", cfg.target_database))?;
        let mapping = schema::map_columns(&plan.original, &target_info, &plan.renames, &plan.alter.dropped_columns)
            .wrap_err_with(|| format!("mapping {}.{t} onto the target table", cfg.database))?;
        tables.push(MovedTable { name: t, plan, mapping });
    }
    let mut copy_rows = read_copy_rows(&mut tgt, &cfg.target_database).await?;
    if !setup_done {
        record_start(&mut src, &mut tgt, cfg, &tables, mariadb, &mut copy_rows).await?;
    }
    let st = checkpoint::read(&mut tgt, &cfg.target_database, CHECKPOINT_TABLE)
        .await?
        .ok_or_else(|| eyre!("the checkpoint table vanished on the target"))?;
    if st.phase == "done" {
        tracing::info!("the move was already complete (the success hook ran); nothing is left to do");
        drop_changelog(&mut src, cfg).await;
        return Ok(MoveOutcome::Done { drain_gtid: st.drain_gtid.unwrap_or_default() });
    }
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
    let fenced_already = source_now == SourceState::Fenced || st.drain_gtid.is_some();
    if st.cutover_complete {
        // Drained before the interruption: only the announcement is left.
        shared.enter(Phase::CutOver);
        let drain = st.drain_gtid.clone().unwrap_or_default();
        let done = announce(cfg, &hooks, &mut tgt, &shared, &drain).await.map_err(|e| after_fence(e, cfg))?;
        drop_changelog(&mut src, cfg).await;
        return Ok(done);
    }
    let mut running = start_tasks(cfg, &tables, &changelog, &shared, start, mariadb, &cancel, &stop_reason, fenced_already)?;
    let stop = |running: &mut Running| {
        running.tasks_cancel.cancel();
        let reason = stop_reason.lock().ok().and_then(|r| r.clone()).unwrap_or_else(|| "stopped".into());
        MoveOutcome::Stopped { state: MoveStateDump::stopped(cfg, reason) }
    };

    if !fenced_already {
        // Copy, table after table.
        shared.enter(Phase::Copy);
        set_summary(&mut tgt, cfg, "phase = 'copy'").await?;
        // A throttle that holds at start (a flag file, a lagging replica) holds before the first chunk (as migrate).
        for _ in 0..100 {
            if shared.throttle_checked.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (index, table) in tables.iter().enumerate() {
            let row = copy_rows.get(&table.name).cloned().unwrap_or_default();
            if row.complete {
                continue;
            }
            let job = copy_job(cfg, table);
            let mut range = CopyRange {
                range_end: row.range_end.as_deref().map(checkpoint::decode_key).transpose()?,
                watermark: row.watermark.as_deref().map(checkpoint::decode_key).transpose()?,
            };
            let base = shared.rows_copied.load(Ordering::Relaxed).saturating_sub(row.rows_copied);
            shared.copy_complete.store(false, Ordering::Relaxed);
            let across = CrossServer { target_opts: target_opts.clone(), hold: cfg.copy_hold };
            let copy = job.run_across(&source_opts, across, &mut range, shared.clone(), cfg.chunk_target, cfg.retry_for, running.tasks_cancel.clone());
            tokio::pin!(copy);
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let result = loop {
                tokio::select! {
                    r = &mut copy => break r,
                    r = join_slot(&mut running.streamer) => {
                        running.tasks_cancel.cancel();
                        return task_ended(r, "binlog streamer", cfg, &stop_reason).map(|_| stop(&mut running));
                    }
                    r = join_slot(&mut running.applier) => {
                        running.tasks_cancel.cancel();
                        return task_ended(r, "applier", cfg, &stop_reason).map(|_| stop(&mut running));
                    }
                    _ = cancel.cancelled() => running.tasks_cancel.cancel(),
                    _ = tick.tick() => {
                        let copied = shared.rows_copied.load(Ordering::Relaxed).saturating_sub(base);
                        shared.with(|i| {
                            if let Some(tp) = i.status.tables.get_mut(index) {
                                tp.rows_copied = copied;
                                tp.rows_estimate = tp.rows_estimate.max(copied);
                            }
                        });
                    }
                }
            };
            match result {
                Ok(true) => {
                    let copied = shared.rows_copied.load(Ordering::Relaxed).saturating_sub(base);
                    shared.with(|i| {
                        if let Some(tp) = i.status.tables.get_mut(index) {
                            tp.rows_copied = copied;
                            tp.rows_estimate = tp.rows_estimate.max(copied);
                            tp.complete = true;
                        }
                    });
                    tracing::info!("{}.{}: copied to the target ({copied} rows)", cfg.database, table.name);
                }
                Ok(false) => {
                    let out = stop(&mut running);
                    running.stop().await;
                    return Ok(out);
                }
                Err(e) => {
                    running.tasks_cancel.cancel();
                    return Err(with_resume(e.wrap_err(format!("copying {}.{}", cfg.database, table.name)), cfg));
                }
            }
        }
        shared.copy_complete.store(true, Ordering::Relaxed);
        failpoint::hit("move-after-copy")?;

        // Catch up with what the source executed by the end of the copy, then wait at the gate.
        shared.enter(Phase::Catchup);
        set_summary(&mut tgt, cfg, "phase = 'catchup'").await?;
        let goal = GtidSet::parse(mariadb, &gtid_executed(&mut src, mariadb).await?)?;
        if let Some(out) = wait_applied(&mut running, &shared, &goal, mariadb, &cancel, cfg, &stop_reason, false).await? {
            return Ok(out);
        }
        shared.enter(Phase::ReadyToCutOver);
        set_summary(&mut tgt, cfg, "phase = 'ready'").await?;
        shared.with(|i| i.status.cutover.step = "gate".into());
        let mut lag_logged = false;
        loop {
            if cancel.is_cancelled() {
                let out = stop(&mut running);
                running.stop().await;
                return Ok(out);
            }
            if let Some(r) = running.finished().await {
                return task_ended(r.1, r.0, cfg, &stop_reason).map(|_| stop(&mut running));
            }
            let flag = cfg.postpone_cut_over_flag_file.as_ref().is_some_and(|f| f.exists());
            let approved = shared.cutover_approved.load(Ordering::Relaxed);
            let postponed = flag || (cfg.postpone_cut_over && !approved);
            // As migrate: no fence while the target lags (the source tables would refuse writes for the whole
            // drain), and the status says so.
            let max_lag = shared.max_lag_millis.load(Ordering::Relaxed) as f64 / 1000.0;
            let lagging = match shared.heartbeat_lag_seconds() {
                None => Some("heartbeat lag unknown (no heartbeat applied yet)".to_string()),
                Some(lag) if lag > max_lag => Some(format!("heartbeat lag {lag:.1}s > max-lag {max_lag:.1}s")),
                Some(_) => None,
            };
            shared.with(|i| {
                i.status.cutover.postponed = postponed;
                i.status.cutover.blocked_reason = lagging.clone().or_else(|| postponed.then(|| "postponed: waiting for approval".to_string()));
            });
            if !postponed && lagging.is_none() {
                break;
            }
            if !postponed && lagging.is_some() && !lag_logged {
                tracing::warn!("cut-over approved but waiting: {}", lagging.as_deref().unwrap_or_default());
                lag_logged = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        failpoint::hit("move-gate")?;

        // T0: the application may refuse the cut-over; nothing on the source is touched yet.
        shared.enter(Phase::CutOver);
        set_summary(&mut tgt, cfg, "phase = 'cut-over'").await?;
        shared.with(|i| i.status.cutover.step = "before-hook".into());
        if let Err(e) = run_hook(cfg, &hooks, Hook::OnBeforeCutOver, &shared, None).await {
            running.tasks_cancel.cancel();
            running.stop().await;
            return Err(with_resume(e.wrap_err("the before-cut-over hook refused the cut-over; the source tables keep serving"), cfg));
        }
        failpoint::hit("move-after-before-hook")?;
    } else {
        shared.enter(Phase::CutOver);
        tracing::info!("the source tables were fenced before the interruption: draining, never renaming again");
    }

    // T1 + T2: fence and read the drain GTID on the same connection (unless that happened before a crash).
    let drain_text = match (st.drain_gtid.clone(), fenced_already) {
        (Some(g), _) => g,
        (None, true) => {
            // The rename committed but the drain GTID was never recorded: no write can reach a renamed table, so
            // the source's executed set now is a safe drain target.
            let g = gtid_executed(&mut src, mariadb).await?;
            tracing::warn!("the fence happened before the crash but its drain GTID was not recorded; draining to {g}");
            persist_drain(&mut tgt, cfg, &g).await.map_err(|e| after_fence(e, cfg))?;
            g
        }
        (None, false) => {
            shared.with(|i| i.status.cutover.step = "fence".into());
            let _ = running.ddl_allowed.send(true);
            let g = fence(cfg, &source_opts, mariadb, &shared).await.map_err(|e| {
                running.tasks_cancel.cancel();
                with_resume(e, cfg)
            })?;
            tracing::info!("fenced: {} renamed; drain GTID {g}", cfg.tables_text());
            failpoint::hit("move-after-rename").map_err(|e| after_fence(e, cfg))?;
            persist_drain(&mut tgt, cfg, &g).await.map_err(|e| after_fence(e, cfg))?;
            g
        }
    };
    failpoint::hit("move-after-persist").map_err(|e| after_fence(e, cfg))?;
    shared.with(|i| {
        i.status.cutover.drain_gtid = Some(drain_text.clone());
        i.status.cutover.step = "drain".into();
    });

    // T3: drain.
    let drain = GtidSet::parse(mariadb, &drain_text)?;
    let drained = wait_applied(&mut running, &shared, &drain, mariadb, &cancel, cfg, &stop_reason, true)
        .await
        .map_err(|e| after_fence(e, cfg))?;
    if let Some(out) = drained {
        return Ok(out);
    }
    set_summary(&mut tgt, cfg, "cutover_complete = 1, phase = 'complete'").await.map_err(|e| after_fence(e, cfg))?;
    shared.with(|i| {
        i.status.cutover.events_left_to_drain = Some(0);
        i.status.cutover.step = "complete".into();
    });
    failpoint::hit("move-after-drain").map_err(|e| after_fence(e, cfg))?;
    // T4: stop the stream.
    running.tasks_cancel.cancel();
    running.stop().await;
    // T5.
    let done = announce(cfg, &hooks, &mut tgt, &shared, &drain_text).await.map_err(|e| after_fence(e, cfg))?;
    drop_changelog(&mut src, cfg).await;
    Ok(done)
}

/// The comment of the source's [`CHANGELOG_TABLE`], if it exists.
async fn changelog_comment(conn: &mut mysql_async::Conn, cfg: &MoveTablesConfig) -> Result<Option<String>> {
    conn.exec_first(
        "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (cfg.database.as_str(), CHANGELOG_TABLE),
    )
    .await
    .wrap_err_with(|| format!("looking for {}.{CHANGELOG_TABLE} on the source", cfg.database))
}

/// Creates the heartbeat table on the source when missing (the layout of migrate's changelog) and reads its columns
/// for the streamer.
async fn ensure_changelog(src: &mut mysql_async::Conn, cfg: &MoveTablesConfig) -> Result<schema::TableInfo> {
    src.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         last_update TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \
         hint VARCHAR(64) CHARACTER SET ascii NOT NULL, value VARCHAR(4096) CHARACTER SET utf8mb4 NOT NULL, \
         UNIQUE KEY hint_uidx (hint)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='{CHANGELOG_COMMENT}'",
        qualified(&cfg.database, CHANGELOG_TABLE)
    ))
    .await
    .wrap_err_with(|| format!("creating the heartbeat table {}.{CHANGELOG_TABLE} on the source", cfg.database))?;
    schema::read_table(src, &cfg.database, CHANGELOG_TABLE)
        .await?
        .ok_or_else(|| eyre!("the heartbeat table {}.{CHANGELOG_TABLE} vanished on the source", cfg.database))
}

/// Drops the heartbeat table at the end of a move, only when it is ours; a failure only logs (the move is done).
async fn drop_changelog(src: &mut mysql_async::Conn, cfg: &MoveTablesConfig) {
    match changelog_comment(src, cfg).await {
        Ok(Some(c)) if c == CHANGELOG_COMMENT => {
            if let Err(e) = src.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&cfg.database, CHANGELOG_TABLE))).await {
                tracing::warn!("could not drop the heartbeat table {}.{CHANGELOG_TABLE}: {e}; drop it by hand", cfg.database);
            }
        }
        Ok(Some(_)) => tracing::warn!("{}.{CHANGELOG_TABLE} is not revenant's: left as it is", cfg.database),
        Ok(None) => {}
        Err(e) => tracing::warn!("{e:#}"),
    }
}

/// What a dry run reports: what was validated on both servers, and what `--execute` would do.
#[allow(clippy::too_many_arguments)]
async fn dry_run_plan(
    src: &mut mysql_async::Conn,
    cfg: &MoveTablesConfig,
    plans: &[(String, Plan)],
    state: Option<&checkpoint::CheckpointState>,
    source_now: SourceState,
    mariadb: bool,
    changelog_exists: bool,
) -> Result<Vec<String>> {
    let flavor = if mariadb { "MariaDB" } else { "MySQL" };
    let mut steps = vec![format!(
        "validated: source {} and target {} ({flavor}, GTIDs on both); target database {} exists",
        cfg.source.display(),
        cfg.target.display(),
        cfg.target_database
    )];
    for (t, plan) in plans {
        let estimate = estimate_rows(src, &cfg.database, &plan.original.name, false).await?;
        steps.push(format!(
            "validated {}.{}: key {} ({}); {} columns copied; about {estimate} rows",
            cfg.database,
            if source_now == SourceState::Fenced { MoveTablesConfig::old_table(t) } else { t.clone() },
            plan.mapping.key.name,
            plan.mapping.key.columns.join(", "),
            plan.mapping.shared.len()
        ));
        steps.extend(plan.notes.iter().map(|n| format!("{}: {n}", t)));
    }
    match state {
        Some(st) => steps.push(format!(
            "would resume the move recorded in {}.{CHECKPOINT_TABLE} on the target (phase {}, applied {})",
            cfg.target_database,
            st.phase,
            if st.applied_gtid_set.is_empty() { "(nothing yet)" } else { &st.applied_gtid_set }
        )),
        None => {
            steps.push(format!(
                "would create on the target: {} in {} ({}) and the checkpoint table {}.{CHECKPOINT_TABLE}",
                cfg.tables_text(),
                cfg.target_database,
                cfg.alter.as_deref().map(|a| format!("with {a}")).unwrap_or_else(|| "the source's definition".into()),
                cfg.target_database
            ));
            steps.push(format!(
                "would {} the heartbeat table {}.{CHANGELOG_TABLE} on the source",
                if changelog_exists { "reuse" } else { "create" },
                cfg.database
            ));
            steps.push(format!(
                "would copy in chunks of {} under source share locks, apply the source's binary log to the target",
                cfg.chunk_size
            ));
        }
    }
    if source_now == SourceState::Serving {
        steps.push(format!(
            "would wait at the gate{}, run the before-cut-over hooks, then fence the source with: {}",
            if cfg.postpone_cut_over || cfg.postpone_cut_over_flag_file.is_some() { " (postponed until approved)" } else { "" },
            cfg.fence_statement()
        ));
    }
    steps.push("would drain to the GTID read after the fence, then run the success hooks".into());
    steps.push("dry run: nothing was changed on either server; run it without --dry-run to move".into());
    Ok(steps)
}

async fn table_exists_db(conn: &mut mysql_async::Conn, db: &str) -> Result<bool> {
    let n: Option<String> = conn
        .exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,))
        .await
        .wrap_err("looking for the target database")?;
    Ok(n.is_some())
}

/// T5: the success hook, then `done` in the checkpoint. A crash between the two runs the hook again on resume.
async fn announce(cfg: &MoveTablesConfig, hooks: &Hooks, tgt: &mut mysql_async::Conn, shared: &Arc<Shared>, drain: &str) -> Result<MoveOutcome> {
    shared.with(|i| {
        i.status.cutover.drain_gtid = Some(drain.to_string());
        i.status.cutover.step = "success-hook".into();
    });
    run_hook(cfg, hooks, Hook::OnSuccess, shared, Some(drain)).await.wrap_err("the success hook failed (the target is complete)")?;
    failpoint::hit("move-after-hook")?;
    set_summary(tgt, cfg, "phase = 'done'").await?;
    shared.with(|i| i.status.cutover.step = "done".into());
    tracing::info!("move complete: the target holds everything up to {drain}");
    Ok(MoveOutcome::Done { drain_gtid: drain.to_string() })
}

async fn persist_drain(tgt: &mut mysql_async::Conn, cfg: &MoveTablesConfig, drain: &str) -> Result<()> {
    tgt.exec_drop(
        format!(
            "UPDATE {} SET cutover_started = COALESCE(cutover_started, CURRENT_TIMESTAMP(6)), drain_gtid = ?, phase = 'drain' WHERE id = ?",
            qualified(&cfg.target_database, CHECKPOINT_TABLE)
        ),
        (drain, checkpoint::SUMMARY),
    )
    .await
    .wrap_err("recording the drain GTID on the target")
}

/// T1 and T2: renames every source table to `_<t>_del` in one statement, then reads the executed GTID set on the
/// same connection. Every write to the tables committed before the rename (it waits for them), so the set covers
/// them all. A lock wait timeout leaves everything as it was and is retried.
async fn fence(cfg: &MoveTablesConfig, opts: &mysql_async::Opts, mariadb: bool, shared: &Shared) -> Result<String> {
    let mut conn = mysql_async::Conn::new(opts.clone()).await.wrap_err("connecting to fence the source")?;
    conn.query_drop(format!("SET SESSION lock_wait_timeout = {}", cfg.cut_over_lock_timeout.as_secs().max(1))).await?;
    let stmt = cfg.fence_statement();
    let mut attempt = 0;
    loop {
        attempt += 1;
        shared.with(|i| i.status.cutover.attempts = attempt);
        match conn.query_drop(&stmt).await {
            Ok(()) => break,
            Err(mysql_async::Error::Server(e)) if e.code == 1205 && attempt < cfg.default_retries.max(1) => {
                tracing::warn!("fence attempt {attempt}: {}; the source tables keep serving; retrying", e.message);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(eyre!(e).wrap_err(format!("fencing the source tables ({stmt}); they keep serving"))),
        }
    }
    gtid_executed(&mut conn, mariadb).await
}

/// A task ended while it should run: an error (or a stop, when one was requested).
fn task_ended(
    r: std::result::Result<Result<()>, tokio::task::JoinError>,
    what: &str,
    cfg: &MoveTablesConfig,
    stop_reason: &Arc<Mutex<Option<String>>>,
) -> Result<()> {
    let stopping = stop_reason.lock().ok().is_some_and(|r| r.is_some());
    match r {
        Ok(Ok(())) if stopping => Ok(()),
        Ok(Ok(())) => Err(with_resume(eyre!("the {what} ended unexpectedly"), cfg)),
        Ok(Err(e)) => Err(with_resume(e.wrap_err(format!("the {what} failed")), cfg)),
        Err(e) => Err(with_resume(eyre!("the {what} panicked: {e}"), cfg)),
    }
}

/// Waits until the applied position contains `goal` with nothing left in the queue. Returns a stop outcome when
/// stopped on request.
#[allow(clippy::too_many_arguments)]
async fn wait_applied(
    running: &mut Running,
    shared: &Arc<Shared>,
    goal: &GtidSet,
    mariadb: bool,
    cancel: &CancellationToken,
    cfg: &MoveTablesConfig,
    stop_reason: &Arc<Mutex<Option<String>>>,
    draining: bool,
) -> Result<Option<MoveOutcome>> {
    let mut first = true;
    loop {
        if cancel.is_cancelled() {
            running.tasks_cancel.cancel();
            running.stop().await;
            let reason = stop_reason.lock().ok().and_then(|r| r.clone()).unwrap_or_else(|| "stopped".into());
            return Ok(Some(MoveOutcome::Stopped { state: MoveStateDump::stopped(cfg, reason) }));
        }
        if let Some((what, r)) = running.finished().await {
            task_ended(r, what, cfg, stop_reason)?;
            return Err(eyre!("the {what} stopped while waiting for the target to apply {goal}"));
        }
        let applied_text = running.applied_rx.borrow().position.as_ref().map(|p| p.gtid_set.clone());
        let applied_text = applied_text.unwrap_or_else(|| shared.with(|i| i.status.binlog.applied_gtid_set.clone()));
        let applied = GtidSet::parse(mariadb, &applied_text)?;
        let left = goal.count_after(&applied);
        if draining {
            shared.with(|i| i.status.cutover.events_left_to_drain = Some(left));
            if first {
                failpoint::hit("move-mid-drain")?;
            }
        }
        first = false;
        if applied.contains(goal) && shared.backlog.load(Ordering::Relaxed) == 0 {
            return Ok(None);
        }
        tokio::select! {
            _ = running.applied_rx.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

fn copy_job(cfg: &MoveTablesConfig, table: &MovedTable) -> CopyJob {
    CopyJob {
        source_db: cfg.database.clone(),
        source_table: table.name.clone(),
        target_db: cfg.target_database.clone(),
        target_table: table.name.clone(),
        columns: table.mapping.shared.clone(),
        key: table.mapping.key.columns.iter().filter_map(|n| table.plan.original.column(n).cloned()).collect(),
        key_index: table.mapping.key.name.clone(),
        checkpoint_db: cfg.target_database.clone(),
        checkpoint_table: CHECKPOINT_TABLE.to_string(),
        checkpoint_row: MoveTablesConfig::copy_row(&table.name),
        deletes: None,
    }
}

/// Creates the checkpoint table and the target tables (same definition, then the ALTER).
async fn setup_target(src: &mut mysql_async::Conn, tgt: &mut mysql_async::Conn, cfg: &MoveTablesConfig, plans: &[(String, Plan)]) -> Result<()> {
    let db = &cfg.target_database;
    tgt.query_drop(checkpoint::create_statement(db, CHECKPOINT_TABLE)).await.wrap_err("creating the checkpoint table on the target")?;
    let alter = cfg.alter.clone().unwrap_or_default();
    let fingerprints: Vec<String> = plans.iter().map(|(_, p)| checkpoint::table_fingerprint(&p.original.create_statement)).collect();
    let ck = qualified(db, CHECKPOINT_TABLE);
    tgt.exec_drop(
        format!(
            "INSERT INTO {ck} (id, phase, database_name, table_name, ghost_table, alter_statement, alter_fingerprint, \
             table_fingerprint, tool_version) VALUES (?, 'setup', ?, ?, ?, ?, ?, ?, ?)"
        ),
        (
            checkpoint::SUMMARY,
            cfg.database.as_str(),
            cfg.tables_text(),
            format!("{}:{}/{}", cfg.target.host, cfg.target.port, db),
            alter.as_str(),
            checkpoint::fingerprint(&alter),
            checkpoint::fingerprint(&fingerprints.join(",")),
            TOOL_VERSION,
        ),
    )
    .await?;
    tgt.exec_drop(format!("INSERT INTO {ck} (id) VALUES (?)"), (checkpoint::APPLY,)).await?;
    for (t, _) in plans {
        tgt.exec_drop(format!("INSERT INTO {ck} (id) VALUES (?)"), (MoveTablesConfig::copy_row(t),)).await?;
        let row: Option<(String, String)> = src.query_first(format!("SHOW CREATE TABLE {}", qualified(&cfg.database, t))).await?;
        let (_, create) = row.ok_or_else(|| eyre!("SHOW CREATE TABLE {}.{t} returned nothing", cfg.database))?;
        tgt.query_drop(format!("USE {}", quote_ident(db))).await?;
        tgt.query_drop(create).await.wrap_err_with(|| format!("creating {db}.{t} on the target"))?;
        if let Some(a) = &cfg.alter {
            let plan_clause = plans.iter().find(|(n, _)| n == t).map(|(_, p)| p.alter.clause.clone()).unwrap_or_else(|| a.clone());
            tgt.query_drop(format!("ALTER TABLE {} {plan_clause}", qualified(db, t)))
                .await
                .wrap_err_with(|| format!("applying the ALTER to {db}.{t} on the target"))?;
        }
    }
    Ok(())
}

/// Records the start position (read before the copy ranges) and every table's range in one target transaction.
async fn record_start(
    src: &mut mysql_async::Conn,
    tgt: &mut mysql_async::Conn,
    cfg: &MoveTablesConfig,
    tables: &[MovedTable],
    mariadb: bool,
    copy_rows: &mut HashMap<String, CopyRow>,
) -> Result<()> {
    let start = binlog::current_position(src, mariadb).await?;
    let mut raw = crate::engine::apply::applier::writer_conn(&cfg.source.opts()).await?;
    let ck = qualified(&cfg.target_database, CHECKPOINT_TABLE);
    let mut tx = tgt.start_transaction(mysql_async::TxOpts::default()).await?;
    let mut estimate_total = 0;
    for table in tables {
        let job = copy_job(cfg, table);
        let bounds = job.key_bounds(&mut raw).await?;
        let estimate = estimate_rows(src, &cfg.database, &table.name, false).await?;
        estimate_total += estimate;
        let end = bounds.as_ref().map(|b| checkpoint::encode_key(&b.1));
        tx.exec_drop(
            format!("UPDATE {ck} SET copy_range_start = ?, copy_range_end = ?, copy_complete = ?, rows_estimate = ? WHERE id = ?"),
            (bounds.as_ref().map(|b| checkpoint::encode_key(&b.0)), end.clone(), u8::from(bounds.is_none()), estimate, job.checkpoint_row.as_str()),
        )
        .await?;
        copy_rows.insert(
            table.name.clone(),
            CopyRow { range_end: end, watermark: None, complete: bounds.is_none(), rows_copied: 0, rows_estimate: estimate },
        );
    }
    tx.exec_drop(
        format!("UPDATE {ck} SET applied_gtid_set = ?, applied_file = ?, applied_pos = ? WHERE id = ?"),
        (start.gtid_set.clone(), start.file.clone(), start.pos, checkpoint::APPLY),
    )
    .await?;
    tx.exec_drop(format!("UPDATE {ck} SET rows_estimate = ?, phase = 'copy' WHERE id = ?"), (estimate_total, checkpoint::SUMMARY)).await?;
    tx.commit().await.wrap_err("recording the start position and the copy ranges on the target")?;
    let _ = raw.disconnect().await;
    Ok(())
}


/// Streams the source's binary log for every moved table (and the heartbeat table) and applies it to the target
/// tables; writes heartbeats on the source and runs migrate's throttle loop over the copy.
#[allow(clippy::too_many_arguments)]
fn start_tasks(
    cfg: &MoveTablesConfig,
    tables: &[MovedTable],
    changelog: &schema::TableInfo,
    shared: &Arc<Shared>,
    start: BinlogPosition,
    mariadb: bool,
    cancel: &CancellationToken,
    stop_reason: &Arc<Mutex<Option<String>>>,
    ddl_allowed: bool,
) -> Result<Running> {
    let tasks_cancel = cancel.child_token();
    let mut watched: Vec<WatchedTable> = tables
        .iter()
        .map(|t| WatchedTable { database: cfg.database.clone(), table: t.name.clone(), columns: watched_columns(&t.plan, &t.mapping) })
        .collect();
    watched.push(WatchedTable { database: cfg.database.clone(), table: CHANGELOG_TABLE.to_string(), columns: changelog.columns.clone() });
    let mut targets: Vec<_> = tables.iter().map(|t| Some(apply_target(&t.plan, &t.mapping, &cfg.target_database, &t.name))).collect();
    targets.push(None);
    let column = |name: &str| changelog.columns.iter().position(|c| c.name == name).unwrap_or(0);
    let changelog_watch = ChangelogWatch { index: tables.len(), hint_col: column("hint"), value_col: column("value") };
    let (tx, rx) = mpsc::channel(1000);
    let client_id = 2_000_000
        + (std::process::id() % 1_000_000)
        + SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() % 1000).unwrap_or(0);
    let stream_cfg = StreamConfig {
        opts: cfg.source.opts(),
        mariadb,
        client_server_id: client_id,
        start,
        watched,
        retry_for: cfg.retry_for,
    };
    shared.with(|i| i.status.binlog.backlog_capacity = 1000);
    let streamer_state = Arc::new(Mutex::new(StreamerState::default()));
    let streamer = tokio::spawn(binlog::run(stream_cfg, tx, streamer_state.clone(), tasks_cancel.clone()));
    let (applied_tx, applied_rx) = watch::channel(Applied::default());
    let (ddl_tx, ddl_rx) = watch::channel(ddl_allowed);
    let applier = Applier {
        conn_opts: cfg.target.opts(),
        targets,
        changelog: Some(changelog_watch),
        checkpoint: CheckpointTarget { database: cfg.target_database.clone(), table: CHECKPOINT_TABLE.to_string() },
        shared: shared.clone(),
        applied_tx,
        guarded_tables: cfg.tables.iter().map(|t| (cfg.database.clone(), t.clone())).collect(),
        ddl_allowed: ddl_rx,
        retry_for: cfg.retry_for,
    };
    let applier = tokio::spawn(applier.run(rx, tasks_cancel.clone()));
    let throttle_cfg = cfg.throttle_config();
    let stop_reason = stop_reason.clone();
    let request_stop: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |why: &str| {
        if let Ok(mut r) = stop_reason.lock() {
            r.get_or_insert_with(|| why.to_string());
        }
    });
    let side = vec![
        tokio::spawn(heartbeat_loop(throttle_cfg.clone(), shared.clone(), tasks_cancel.clone())),
        tokio::spawn(throttle_loop(throttle_cfg, shared.clone(), streamer_state, tasks_cancel.clone(), cancel.clone(), request_stop)),
    ];
    Ok(Running { streamer: Some(streamer), applier: Some(applier), side, tasks_cancel, applied_rx, ddl_allowed: ddl_tx })
}

/// The hooks of this move: gh-ost's identity variables name every table (comma separated), the source as the
/// migrated host; the target and the table list also go out as `TARGET_HOST`, `TARGET_DATABASE` and `TABLES`.
fn hooks_for(cfg: &MoveTablesConfig) -> Result<Hooks> {
    let identity = HookIdentity {
        database: cfg.database.clone(),
        table: cfg.tables_text(),
        ghost_table: cfg.tables_text(),
        old_table: cfg.tables.iter().map(|t| MoveTablesConfig::old_table(t)).collect::<Vec<_>>().join(","),
        ddl: cfg.alter.clone().unwrap_or_default(),
        migrated_host: cfg.source.display(),
        inspected_host: cfg.source.display(),
        executing_host: std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default(),
        dry_run: false,
    };
    Hooks::new(cfg.hooks_path.clone(), cfg.hook_timeout, cfg.hook_hints.clone(), identity)
}

/// Fires `hook` with the move's extra variables (and the drain GTID once there is one). Any failure is an error:
/// a refusing on-before-cut-over aborts before the fence; a failing on-success leaves the move not `done`, so a
/// resume announces it again.
async fn run_hook(cfg: &MoveTablesConfig, hooks: &Hooks, hook: Hook, shared: &Shared, drain: Option<&str>) -> Result<()> {
    let mut extra = vec![
        ("TABLES".to_string(), cfg.tables_text()),
        ("TARGET_HOST".to_string(), cfg.target.display()),
        ("TARGET_DATABASE".to_string(), cfg.target_database.clone()),
    ];
    if let Some(g) = drain {
        extra.push(("DRAIN_GTID".to_string(), g.to_string()));
    }
    let status = shared.snapshot(0);
    hooks.fire(hook, &extra, &status).await
}

/// `--rollback`: gives the fenced tables back to the source (renames `_<t>_del` to `t`) and marks the target's
/// checkpoint rolled back, so a later `--resume` refuses; drops the heartbeat table when it is ours. Refuses unless
/// every table is fenced. Without `execute`
/// only checks and returns the statement it would run.
pub async fn rollback(cfg: &MoveTablesConfig) -> Result<String> {
    let mut src = mysql_async::Conn::new(cfg.source.opts()).await.wrap_err("connecting to the source")?;
    if source_state(&mut src, cfg).await? != SourceState::Fenced {
        return Err(refuse("the source tables are not fenced: there is nothing to roll back", "check the source tables by hand"));
    }
    let stmt = cfg.rollback_statement();
    if !cfg.execute {
        return Ok(stmt);
    }
    src.query_drop(&stmt).await.wrap_err_with(|| format!("running {stmt}"))?;
    drop_changelog(&mut src, cfg).await;
    if let Ok(mut tgt) = mysql_async::Conn::new(cfg.target.opts()).await {
        let _ = set_summary(&mut tgt, cfg, "phase = 'rolled-back'").await;
    }
    Ok(stmt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_throttle_code_sees_the_move_heartbeat_table_on_the_source() {
        let conn = |host: &str| ConnectionConfig { host: host.into(), port: 3306, user: "u".into(), password: Default::default(), socket: None };
        let mut cfg = MoveTablesConfig::new(conn("src"), conn("tgt"), "shop", "shop2", &["a", "b"]);
        cfg.throttle.max_lag_millis = 900;
        cfg.postpone_cut_over_flag_file = Some(PathBuf::from("/tmp/p.flag"));
        let t = cfg.throttle_config();
        assert_eq!(t.changelog_table(), CHANGELOG_TABLE);
        assert_eq!((t.source.host.as_str(), t.database.as_str(), t.max_lag_millis), ("src", "shop", 900));
        assert_eq!(t.postpone_cut_over_flag_file, cfg.postpone_cut_over_flag_file);
        assert!(!cfg.execute, "a move is a dry run unless asked to execute, as migrate");
    }
}
