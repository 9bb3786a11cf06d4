//! The tasks of a run, the same for migrate and move-tables: the binlog streamer (on the source), the applier (on
//! the target, with the checkpoint's `apply` row), the heartbeat writer and the throttle loop, all under one
//! cancellation token. [`TaskPlan`] says what to stream and where to apply it; [`Running`] holds the tasks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use color_eyre::eyre::Result;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::apply::applier::{Applied, Applier, ApplyTarget, ChangelogWatch, CheckpointTarget};
use crate::engine::config::MigrationConfig;
use crate::engine::plan::preflight::Plan;
use crate::engine::plan::schema::{Column, ColumnMapping, TableInfo};
use crate::engine::shared::Shared;
use crate::engine::stream::binlog::{self, BinlogPosition, StreamConfig, StreamerState, WatchedTable};
use crate::engine::stream::queue::{self, QUEUE_BYTES};
use crate::engine::throttle::loops::{heartbeat_loop, throttle_loop};

/// How many transactions (or parts of one) the streamer may queue ahead of the applier; the queue is bounded in
/// bytes of row changes too (`QUEUE_BYTES`).
const QUEUE_TRANSACTIONS: usize = 1000;

/// Why a run was asked to stop (a command, a signal, critical load, the panic flag file); the first reason wins.
#[derive(Debug, Clone, Default)]
pub(crate) struct StopReason(Arc<Mutex<Option<String>>>);

impl StopReason {
    /// Records `why` unless a reason is already recorded.
    pub(crate) fn set(&self, why: &str) {
        if let Ok(mut r) = self.0.lock() {
            r.get_or_insert_with(|| why.to_string());
        }
    }

    /// The recorded reason, if a stop was requested.
    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|r| r.clone())
    }

    pub(crate) fn requested(&self) -> bool {
        self.get().is_some()
    }

    /// Forgets a stop that the failover watch recorded (the run goes on on the new primary); an operator's stays.
    pub(crate) fn clear_failover(&self) {
        if let Ok(mut r) = self.0.lock() {
            if r.as_deref().is_some_and(|w| w.starts_with(crate::engine::pipeline::failover::STOP_PREFIX)) {
                *r = None;
            }
        }
    }
}

/// One table whose row events are applied: its columns as the stream decodes them, and where they go.
pub(crate) struct AppliedTable {
    pub(crate) watched: WatchedTable,
    pub(crate) target: ApplyTarget,
}

/// What a run streams and where it applies it.
pub(crate) struct TaskPlan {
    pub(crate) source: mysql_async::Opts,
    /// The applier's server (the source itself for migrate).
    pub(crate) target: mysql_async::Opts,
    pub(crate) mariadb: bool,
    pub(crate) start: BinlogPosition,
    pub(crate) tables: Vec<AppliedTable>,
    /// The heartbeat/marker table on the source, watched after the tables.
    pub(crate) changelog: WatchedTable,
    pub(crate) checkpoint: CheckpointTarget,
    /// DDL against these (database, table) pairs fails the applier until the cut-over allows it.
    pub(crate) guarded_tables: Vec<(String, String)>,
    pub(crate) ddl_allowed: bool,
    /// DDL the run issues itself (the two-step cut-over's renames), not a change when a resumed stream reads it.
    pub(crate) own_statements: Vec<String>,
    pub(crate) retry_for: Duration,
    /// Distinguishes the binlog client ids of migrate (1,000,000+) and move-tables (2,000,000+).
    pub(crate) client_id_base: u32,
    /// gh-ost's `--replica-server-id`: the binlog client's server id, given (checked free at preflight).
    pub(crate) client_server_id: Option<u32>,
    /// The heartbeat and throttle settings (source, database, changelog table, thresholds).
    pub(crate) throttle: MigrationConfig,
}

/// The tasks of a run: binlog streamer, applier, and the side tasks (heartbeat writer, throttle loop).
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

/// Starts the streamer, the applier, the heartbeat writer and the throttle loop. `engine_cancel` is the run's own
/// token: critical load and the panic flag file cancel it after recording why in `stop`.
pub(crate) fn start_tasks(plan: TaskPlan, shared: &Arc<Shared>, engine_cancel: &CancellationToken, stop: &StopReason) -> Result<Running> {
    let tasks_cancel = engine_cancel.child_token();
    let mut watched: Vec<WatchedTable> = Vec::with_capacity(plan.tables.len() + 1);
    let mut targets: Vec<Option<ApplyTarget>> = Vec::with_capacity(plan.tables.len() + 1);
    for t in plan.tables {
        watched.push(t.watched);
        targets.push(Some(t.target));
    }
    let changelog_index = watched.len();
    let column = |name: &str| plan.changelog.columns.iter().position(|c| c.name == name).unwrap_or(0);
    let changelog = ChangelogWatch { index: changelog_index, hint_col: column("hint"), value_col: column("value") };
    watched.push(plan.changelog);
    targets.push(None);
    let (tx, rx) = queue::channel(QUEUE_TRANSACTIONS, QUEUE_BYTES);
    let stream_cfg = StreamConfig {
        opts: plan.source,
        mariadb: plan.mariadb,
        client_server_id: plan.client_server_id.unwrap_or_else(|| client_server_id(plan.client_id_base)),
        start: plan.start,
        watched,
        retry_for: plan.retry_for,
    };
    shared.with(|i| i.status.binlog.backlog_capacity = QUEUE_TRANSACTIONS as u64);
    let streamer_state = Arc::new(Mutex::new(StreamerState::default()));
    let streamer = tokio::spawn(binlog::run(stream_cfg, tx, streamer_state.clone(), tasks_cancel.clone()));
    let (applied_tx, applied_rx) = watch::channel(Applied::default());
    let (ddl_tx, ddl_rx) = watch::channel(plan.ddl_allowed);
    let applier = Applier {
        conn_opts: plan.target,
        targets,
        changelog: Some(changelog),
        checkpoint: plan.checkpoint,
        shared: shared.clone(),
        applied_tx,
        guarded_tables: plan.guarded_tables,
        ddl_allowed: ddl_rx,
        own_statements: plan.own_statements,
        retry_for: plan.retry_for,
        writes: plan.throttle.run.writes,
        // MariaDB executes a batch in one round trip; MySQL gets multi-row statements instead.
        multi_row_values: !plan.mariadb,
        writers: plan.throttle.run.apply_threads,
    };
    let applier = tokio::spawn(applier.run(rx, tasks_cancel.clone()));
    let stop = stop.clone();
    let request_stop: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |why: &str| stop.set(why));
    let side = vec![
        tokio::spawn(heartbeat_loop(plan.throttle.clone(), shared.clone(), tasks_cancel.clone())),
        tokio::spawn(throttle_loop(plan.throttle, shared.clone(), streamer_state, tasks_cancel.clone(), engine_cancel.clone(), request_stop)),
    ];
    Ok(Running { streamer: Some(streamer), applier: Some(applier), side, tasks_cancel, applied_rx, ddl_allowed: ddl_tx })
}

/// A binlog client id unique to this process and moment (every binlog client needs its own).
fn client_server_id(base: u32) -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() % 1000).unwrap_or(0);
    base + (std::process::id() % 1_000_000) + nanos
}

/// A table's row events as the run applies them: the original's columns as the stream decodes them (named
/// `stream_name` in the binary log) and the target table they are written to.
pub(crate) fn applied_table(plan: &Plan, mapping: &ColumnMapping, stream_name: &str, database: &str, target_table: &str) -> AppliedTable {
    AppliedTable {
        watched: WatchedTable { database: plan.original.database.clone(), table: stream_name.to_string(), columns: watched_columns(plan, mapping) },
        target: apply_target(plan, mapping, database, target_table),
    }
}

/// The heartbeat table as the stream decodes it.
pub(crate) fn watched_changelog(info: &TableInfo) -> WatchedTable {
    WatchedTable { database: info.database.clone(), table: info.name.clone(), columns: info.columns.clone() }
}

/// The original table's columns as the streamer decodes them: ENUM/SET columns whose definition the ALTER keeps are
/// written by index (exact for any label).
pub(crate) fn watched_columns(plan: &Plan, mapping: &ColumnMapping) -> Vec<Column> {
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

/// How the applier writes the original table's row events to `database.table` (the ghost, or a moved table). The
/// columns are the ones the stream decodes (`watched_columns`), so a placeholder binds the value in the form it
/// arrives in: an ENUM written by index is compared by index in the key (a label placeholder made `e = '1'` miss
/// the row, and a key-changing update left the old row behind).
pub(crate) fn apply_target(plan: &Plan, mapping: &ColumnMapping, database: &str, table: &str) -> ApplyTarget {
    let decoded = watched_columns(plan, mapping);
    let column = |name: &str| decoded.iter().find(|c| c.name.eq_ignore_ascii_case(name)).cloned();
    ApplyTarget {
        database: database.to_string(),
        table: table.to_string(),
        columns: mapping.shared.iter().filter_map(|(c, g)| column(&c.name).map(|c| (c.ordinal - 1, c, g.clone()))).collect(),
        key: mapping
            .apply_key_source_columns
            .iter()
            .zip(&mapping.ghost_key_columns)
            .filter_map(|(o, g)| column(o).map(|c| (c.ordinal - 1, c, g.clone())))
            .collect(),
        deletes: None,
        nullable_key: mapping.nullable_key,
    }
}
