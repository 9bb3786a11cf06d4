//! move-tables: copies whole tables from a source server to a target server (created there with the same
//! definition, or with an ALTER applied), applies the source's binary log row events for them to the target, keeps
//! the checkpoint on the target, and finishes with a cooperative, crash-safe cut-over: a gate, the
//! `gh-ost-on-before-cut-over` hook, a fence (the source tables are renamed to `_<t>_del`), the drain GTID read on
//! the same connection right after the rename, a drain until the target has applied that GTID, and the
//! `gh-ost-on-success` hook. Every step is recorded on the target before the next one starts, so `--resume`
//! continues from any crash without renaming twice. docs/move-tables.md describes the protocol.

mod finish;
mod follow;
mod preflight;
mod setup;
mod steps;

use std::time::Duration;

use color_eyre::eyre::Result;
use color_eyre::Section;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::engine::apply::applier::CheckpointTarget;
use crate::engine::checkpoint;
use crate::engine::config::{ConnectionConfig, FailoverSettings, MigrationConfig, RunSettings};
use crate::engine::hooks::{Hook, HookIdentity, Hooks};
use crate::engine::pipeline::commands::CheckpointLocation;
use crate::engine::pipeline::migrate::TOOL_VERSION;
use crate::engine::pipeline::runtime::{self, Ending, Frame, RunContext, RunOutcome};
use crate::engine::pipeline::tasks::{applied_table, watched_changelog, TaskPlan};
use crate::engine::plan::preflight::Plan;
use crate::engine::plan::schema::{self, ColumnMapping};
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;
use crate::engine::status::{EngineHandle, TableProgress, TargetInfo};
use crate::engine::stream::binlog::BinlogPosition;

pub use finish::rollback;

/// The checkpoint table of a move, in the target database.
pub const CHECKPOINT_TABLE: &str = "_revenant_move_ghk";

/// The heartbeat table of a move, in the source database: the move writes heartbeats into it and reads them back
/// from the binary log (heartbeat lag). Created at setup, dropped at the end when its comment says it is ours.
pub const CHANGELOG_TABLE: &str = "_revenant_move_ghc";

/// The table name migrate's heartbeat and throttle code is given, so that its changelog is [`CHANGELOG_TABLE`].
pub(super) const CHANGELOG_BASE: &str = "revenant_move";

/// The comment that marks [`CHANGELOG_TABLE`] as revenant's (only then is it dropped at the end).
pub(super) const CHANGELOG_COMMENT: &str = "revenant move changelog";

/// The ALTER preflight validates when none is given (it changes nothing).
pub(super) const NO_ALTER: &str = "ENGINE=InnoDB";

/// Everything a move needs (validated and merged by the CLI, or built by tests): the servers, the tables, and
/// the run-wide settings migrate takes too.
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
    /// Test aid: a pause between reading a chunk on the source and writing it on the target (zero otherwise).
    pub copy_hold: Duration,
    /// Following failovers (docs/failover.md): `candidates` are the source's (`--failover-candidates`, as
    /// migrate's for `--host`); the timeout bounds each wait, for either server.
    pub failover: FailoverSettings,
    /// `--target-failover-candidates`: servers that may be the target's new primary, tried after `--target-host`.
    pub target_failover_candidates: Vec<(String, u16)>,
    /// Copy, throttle, cut-over (here: the fence), hook and run settings, as `migrate` takes them.
    pub run: RunSettings,
    /// Verify every table (source against target) after catch-up and before the ready gate (`--checksum`, on
    /// by default), as `migrate` verifies its ghost.
    pub checksum: bool,
}

impl MoveTablesConfig {
    pub fn new(source: ConnectionConfig, target: ConnectionConfig, database: &str, target_database: &str, tables: &[&str]) -> Self {
        MoveTablesConfig {
            source,
            target,
            database: database.to_string(),
            target_database: target_database.to_string(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            alter: None,
            copy_hold: Duration::ZERO,
            failover: FailoverSettings::default(),
            target_failover_candidates: Vec::new(),
            run: RunSettings::default(),
            checksum: true,
        }
    }

    /// What migrate's heartbeat and throttle loops read: this move's settings, on its source database, with
    /// [`CHANGELOG_TABLE`] as the changelog.
    pub fn throttle_config(&self) -> MigrationConfig {
        let mut c = MigrationConfig::new(self.source.clone(), &self.database, CHANGELOG_BASE, NO_ALTER);
        c.run = self.run.clone();
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

    pub(super) fn fence_statement(&self) -> String {
        let pairs: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("{} TO {}", qualified(&self.database, t), qualified(&self.database, &Self::old_table(t))))
            .collect();
        format!("RENAME TABLE {}", pairs.join(", "))
    }

    pub(super) fn copy_row(table: &str) -> String {
        format!("{}:{table}", checkpoint::COPY)
    }

    /// The checkpoint row of a table's verification.
    pub(super) fn verify_row(table: &str) -> String {
        format!("{}:{table}", crate::engine::verify::CHECKPOINT_ROW)
    }

    /// What the summary row records as "the tables": the list in order.
    pub(super) fn tables_text(&self) -> String {
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
    #[serde(flatten)]
    pub applied: checkpoint::AppliedPosition,
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
    pub(super) fn stopped(cfg: &MoveTablesConfig, reason: String) -> Self {
        MoveStateDump {
            tool_version: TOOL_VERSION.into(),
            source_host: cfg.source.display(),
            target_host: cfg.target.display(),
            database: cfg.database.clone(),
            target_database: cfg.target_database.clone(),
            tables: cfg.tables.clone(),
            alter: cfg.alter.clone().unwrap_or_default(),
            reason,
            resume_command: cfg.run.resume_command.clone(),
            ..Default::default()
        }
    }

    /// Fills in the engine's phase and step, and what the target's checkpoint recorded (best effort: an unreachable
    /// target leaves those fields empty; the checkpoint table stays authoritative).
    pub(super) async fn complete(&mut self, cfg: &MoveTablesConfig, shared: &Shared) {
        self.phase = shared.phase().map(|p| p.label().to_string()).unwrap_or_default();
        self.step = shared.with(|i| i.status.cutover.step.clone());
        let Ok(mut tgt) = crate::engine::connection::connect(cfg.target.opts()).await else { return };
        if let Ok(Some(st)) = checkpoint::read(&mut tgt, &cfg.target_database, CHECKPOINT_TABLE).await {
            self.applied = st.applied();
            self.checkpoint_phase = st.phase;
            self.alter_fingerprint = st.alter_fingerprint;
            self.drain_gtid = st.drain_gtid;
        }
        if let Ok(rows) = setup::read_copy_rows(&mut tgt, &cfg.target_database).await {
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

pub(super) fn with_resume(e: color_eyre::Report, cfg: &MoveTablesConfig) -> color_eyre::Report {
    match &cfg.run.resume_command {
        Some(c) => e.suggestion(format!("the move is resumable: {c}")),
        None => e.suggestion("the move is resumable: run the same command with --resume"),
    }
}

/// Starts a move in the background.
pub fn start(cfg: MoveTablesConfig) -> (EngineHandle, JoinHandle<Result<MoveOutcome>>) {
    let shared = runtime::shared_for(&cfg.run);
    shared.with(|i| {
        i.status.target = TargetInfo {
            host: cfg.source.display(),
            database: cfg.database.clone(),
            table: cfg.tables_text(),
            alter: move_text(&cfg),
            ghost_table: cfg.tables_text(),
            old_table: cfg.tables.iter().map(|t| MoveTablesConfig::old_table(t)).collect::<Vec<_>>().join(","),
            applier_host: cfg.target.display(),
            dry_run: !cfg.run.execute,
            ..Default::default()
        };
        i.status.tables = cfg.tables.iter().map(|t| TableProgress { table: t.clone(), ..Default::default() }).collect();
    });
    let checkpoint = CheckpointLocation { opts: cfg.target.opts(), database: cfg.target_database.clone(), table: CHECKPOINT_TABLE.to_string() };
    // A move fires its success hook as a step: no closing hooks.
    let frame = Frame::new(shared, hooks_for(&cfg), checkpoint, &cfg.run, "the tables are copied", false);
    runtime::spawn(frame, move |ctx: RunContext| async move { crate::engine::pipeline::follow::follow(&mut follow::Moving { cfg }, &ctx).await })
}

/// What the status calls the change: "move to host:port/db" (with the ALTER).
pub(super) fn move_text(cfg: &MoveTablesConfig) -> String {
    format!("move to {}/{}{}", cfg.target.display(), cfg.target_database, cfg.alter.as_deref().map(|a| format!(" with {a}")).unwrap_or_default())
}

impl RunOutcome for MoveOutcome {
    fn ending(&self) -> Ending {
        match self {
            MoveOutcome::Done { .. } | MoveOutcome::DryRun { .. } => Ending::Done,
            MoveOutcome::Stopped { state } => Ending::Stopped { reason: state.reason.clone(), resume_command: state.resume_command.clone() },
        }
    }
}

/// One moved table: what preflight learned, and how it maps onto the target table.
pub(super) struct MovedTable {
    name: String,
    plan: Plan,
    mapping: ColumnMapping,
    /// Which duplicate-key skips of the copy are expected on the target table.
    warnings: crate::engine::copy::warnings::WarningRules,
    /// The target table's structure (what the verification compares against).
    target: schema::TableInfo,
}

/// Where the source tables stand: serving under their names, or fenced as `_<t>_del`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum SourceState {
    Serving,
    Fenced,
}

/// What a move streams and applies: every moved table's row events (named as on the source before the fence) onto
/// the target table, the source's heartbeat table; the checkpoint on the target.
pub(super) fn task_plan(cfg: &MoveTablesConfig, tables: &[MovedTable], changelog: &schema::TableInfo, start: BinlogPosition, mariadb: bool, ddl_allowed: bool) -> TaskPlan {
    TaskPlan {
        source: cfg.source.opts(),
        target: cfg.target.opts(),
        mariadb,
        start,
        tables: tables.iter().map(|t| applied_table(&t.plan, &t.mapping, &t.name, &cfg.target_database, &t.name)).collect(),
        changelog: watched_changelog(changelog),
        checkpoint: CheckpointTarget { database: cfg.target_database.clone(), table: CHECKPOINT_TABLE.to_string() },
        guarded_tables: cfg.tables.iter().map(|t| (cfg.database.clone(), t.clone())).collect(),
        ddl_allowed,
        own_statements: vec![cfg.fence_statement(), cfg.rollback_statement()],
        retry_for: cfg.run.retry_for,
        client_id_base: 2_000_000,
        client_server_id: None,
        throttle: cfg.throttle_config(),
    }
}

/// The hooks of this move: gh-ost's identity variables name every table (comma separated), the source as the
/// migrated host; the target and the table list also go out as `TARGET_HOST`, `TARGET_DATABASE` and `TABLES`.
pub(super) fn hooks_for(cfg: &MoveTablesConfig) -> Result<Hooks> {
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
        revert: false,
    };
    Hooks::new(cfg.run.hooks_path.clone(), cfg.run.hook_timeout, cfg.run.hook_hints.clone(), identity)
}

/// Fires `hook` with the move's extra variables (and the drain GTID once there is one). Any failure is an error:
/// a refusing on-before-cut-over aborts before the fence; a failing on-success leaves the move not `done`, so a
/// resume announces it again.
pub(super) async fn run_hook(cfg: &MoveTablesConfig, hooks: &Hooks, hook: Hook, shared: &Shared, drain: Option<&str>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_throttle_code_sees_the_move_heartbeat_table_on_the_source() {
        let conn = |host: &str| ConnectionConfig { host: host.into(), port: 3306, user: "u".into(), password: Default::default(), socket: None, tls: None, gtid_domain_id: None };
        let mut cfg = MoveTablesConfig::new(conn("src"), conn("tgt"), "shop", "shop2", &["a", "b"]);
        cfg.run.throttle.max_lag_millis = 900;
        cfg.run.postpone_cut_over_flag_file = Some(std::path::PathBuf::from("/tmp/p.flag"));
        let t = cfg.throttle_config();
        assert_eq!(t.changelog_table(), CHANGELOG_TABLE);
        assert_eq!((t.source.host.as_str(), t.database.as_str(), t.run.throttle.max_lag_millis), ("src", "shop", 900));
        assert_eq!(t.run.postpone_cut_over_flag_file, cfg.run.postpone_cut_over_flag_file);
        assert!(!cfg.run.execute, "a move is a dry run unless asked to execute, as migrate");
    }
}
