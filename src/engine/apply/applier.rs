//! The applier: takes whole source transactions from the streamer and applies their row changes to the ghost table
//! in batched transactions (insert/update as REPLACE, delete by key, a key-changing update as delete + replace).
//! Each batch's transaction also records the applied position in the checkpoint table, so the checkpoint always
//! matches the ghost table. It also reads the changelog table's heartbeats (lag) and cut-over markers.
//! The applier's connection may point at another server than the one the binlog is read from (move-tables).
//!
//! Parts: a source transaction heavier than the assembler's part budget arrives as [`StreamItem::Part`]s and then
//! its last part (a `Transaction`), and may be written in several target transactions. That keeps the checkpoint's
//! promise because the `apply` row moves only with a whole item (a `Transaction` or `Progress`), never with a part:
//! - between parts the `apply` row still holds the position before the source transaction, so a crash (or a
//!   reconnect of the stream) starts again at its first event and applies all of it again from its row images.
//!   REPLACE of an after image and DELETE by a before image's key are idempotent and keep the source's order, so
//!   the rows the transaction touched end as its last change left them whatever part of it was applied before;
//!   rows it did not touch were not written by its parts. Nobody reads the ghost before the cut-over.
//! - the cut-over and the verification wait for their marker, a one-row transaction of their own written after
//!   the writers were blocked: it is applied after every part of every transaction before it. A marker is reported
//!   only once the last part of its transaction is committed (a marker in a part whose last part lands in a later
//!   batch is not reported at all: the wait times out and tries again, never too early).
//! - move-tables' drain waits for a GTID set in the published position, which parts never move.
//! - DDL and statement-format DML come as single-query transactions, never in parts.

//!
//! Parallel apply over `--apply-threads` writers: see `apply::split`.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use color_eyre::eyre::{bail, Result, WrapErr};
use mysql_async::prelude::Queryable;
use mysql_async::{TxOpts, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::engine::stream::assembler::Fatal;
use crate::engine::stream::binlog::{BinlogPosition, ChangeKind, RowChange, StreamItem};
use crate::engine::stream::queue::QueueRx;
use crate::engine::stream::statement::{self, NameCase};
use crate::engine::checkpoint;
use crate::engine::config::RowWrites;
use crate::engine::retry::{self, Retry};
use crate::engine::shared::Shared;
use crate::engine::apply::multi_row;
use crate::engine::apply::split::{collapse, row_identity, split, Op};
use crate::engine::apply::target::{Statements, LENIENT};
pub use crate::engine::apply::target::ApplyTarget;
use crate::engine::copy::warnings::ServerWarning;

/// Where the checkpoint lives and which row the applier owns.
#[derive(Debug, Clone)]
pub struct CheckpointTarget {
    pub database: String,
    pub table: String,
}

/// The changelog table's index in the streamer's watched list, and its column positions.
#[derive(Debug, Clone)]
pub struct ChangelogWatch {
    pub index: usize,
    pub hint_col: usize,
    pub value_col: usize,
}

/// What the applier reports after each committed batch.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub position: Option<BinlogPosition>,
    /// The last cut-over marker token applied.
    pub marker: Option<String>,
}

pub struct Applier {
    pub conn_opts: mysql_async::Opts,
    /// Targets by the streamer's watched-table index (None: not written, e.g. the changelog).
    pub targets: Vec<Option<ApplyTarget>>,
    pub changelog: Option<ChangelogWatch>,
    pub checkpoint: CheckpointTarget,
    pub shared: Arc<Shared>,
    pub applied_tx: watch::Sender<Applied>,
    /// Fail on DDL against these (database, table) pairs while false is in `ddl_allowed`.
    pub guarded_tables: Vec<(String, String)>,
    pub ddl_allowed: watch::Receiver<bool>,
    /// DDL this run's own cut-over issues (exact text): never a change to the original when read again.
    pub own_statements: Vec<String>,
    /// How long to keep retrying a batch after deadlocks or lost connections.
    pub retry_for: Duration,
    /// The session the batches are written in (strict mode).
    pub writes: RowWrites,
    /// Runs of REPLACE go as multi-row statements (servers without bulk execution: MySQL; see `multi_row`).
    pub multi_row_values: bool,
    /// Writer connections: each batch's changes are split by key over them (see `apply::split`).
    pub writers: usize,
}

/// The applier's writer connections unless `--apply-threads` says: this machine's cores, at most 4.
pub fn default_writers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Opens a connection set up for writing rows exactly: UTC session time zone (TIMESTAMPs arrive as epoch values),
/// binary strings (raw column bytes both ways), zero dates and keys of 0 kept as the original table may hold them.
/// Strict (the default): a value the new column cannot hold fails the statement (REPLACE) or raises a warning the
/// copier reads (INSERT IGNORE; see `copy::warnings`), never a silent conversion. Every warning of a statement is
/// kept readable (`max_error_count`).
pub async fn writer_conn(opts: &mysql_async::Opts, writes: RowWrites) -> Result<mysql_async::Conn> {
    let mut c = crate::engine::connection::connect(opts.clone()).await.wrap_err("connecting the applier")?;
    c.query_drop(format!(
        "SET SESSION time_zone = '+00:00', NAMES binary, SESSION max_error_count = 65535, SESSION sql_mode = '{}'",
        writer_sql_mode(writes)
    ))
    .await
    .wrap_err("setting the applier's session")?;
    Ok(c)
}

/// The row writers' sql_mode: NO_AUTO_VALUE_ON_ZERO keeps a key of 0 as 0; zero dates are never refused (the
/// original may hold them); STRICT_ALL_TABLES unless `--skip-strict-mode`.
pub fn writer_sql_mode(writes: RowWrites) -> &'static str {
    match writes.strict {
        true => "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION",
        false => "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION",
    }
}

impl Applier {
    /// Applies until the stream ends or `cancel` fires; returns after finishing the batch in flight.
    pub async fn run(self, mut rx: QueueRx, cancel: CancellationToken) -> Result<()> {
        let mut conns = Vec::with_capacity(self.writers.max(1));
        for _ in 0..self.writers.max(1) {
            conns.push(writer_conn(&self.conn_opts, self.writes).await?);
        }
        let writers = conns.len();
        self.shared.with(|i| i.status.binlog.apply_writers = writers as u64);
        checkpoint::spread_apply_rows(&mut conns[0], &self.checkpoint.database, &self.checkpoint.table, writers).await?;
        let stmts: Vec<Option<Statements>> = self.targets.iter().map(|t| t.as_ref().map(|t| t.statements())).collect();
        let apply_sql = checkpoint::apply_update_sql(&self.checkpoint.database, &self.checkpoint.table);
        let mut items: Vec<StreamItem> = Vec::new();
        loop {
            while self.shared.paused.load(Ordering::Relaxed) && !cancel.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let first = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                item = rx.recv() => item,
            };
            let Some(first) = first else { return Ok(()) };
            items.clear();
            // Whole transactions until the batch holds --dml-batch-size rows (the first one counts too: a batch
            // of 1 used to take two transactions).
            // A part counts as its rows: a batch holds at most one part beyond the limit, so it is bounded in bytes.
            let mut rows = item_rows(&first);
            items.push(first);
            let limit = self.shared.dml_batch_size.load(Ordering::Relaxed).max(1) as usize;
            while rows < limit {
                let Some(item) = rx.try_recv() else { break };
                rows += item_rows(&item);
                items.push(item);
            }
            self.shared.backlog.store(rx.len() as u64, Ordering::Relaxed);
            self.apply_with_retries(&mut conns, &stmts, &apply_sql, &items, &cancel).await?;
        }
    }

    /// Applies one batch, retrying after deadlocks and lost connections (reconnecting the writers that lost theirs)
    /// for `retry_for`; a retry writes only the parts not committed yet.
    async fn apply_with_retries(&self, conns: &mut [mysql_async::Conn], stmts: &[Option<Statements>], apply_sql: &str, items: &[StreamItem], cancel: &CancellationToken) -> Result<()> {
        let started = std::time::Instant::now();
        let mut committed = vec![false; conns.len()];
        let mut attempt = 0u32;
        loop {
            let failed = match self.apply_batch(conns, &mut committed, stmts, apply_sql, items).await {
                Ok(()) => return Ok(()),
                Err(failed) => failed,
            };
            attempt += 1;
            let kind = retry::classify(&failed.error);
            if kind == Retry::No || started.elapsed() > self.retry_for || cancel.is_cancelled() {
                return Err(failed.error);
            }
            tracing::debug!("apply batch retry {attempt}: {:#}", failed.error);
            tokio::time::sleep(retry::backoff(attempt)).await;
            if kind == Retry::Reconnect {
                for k in failed.writers {
                    match writer_conn(&self.conn_opts, self.writes).await {
                        Ok(c) => conns[k] = c,
                        Err(e) => tracing::warn!("applier reconnect failed: {e:#}"),
                    }
                }
            }
        }
    }

    /// One batch: its row changes (the last per key, see `collapse`) split by key over the writer connections, each
    /// part in a transaction of its own with that writer's position row, all at once; published when every part is
    /// committed. `committed` marks the parts already committed by an earlier attempt.
    async fn apply_batch(&self, conns: &mut [mysql_async::Conn], committed: &mut [bool], stmts: &[Option<Statements>], apply_sql: &str, items: &[StreamItem]) -> std::result::Result<(), Failed> {
        let mut batch = self.collect(stmts, items).map_err(|error| Failed { writers: Vec::new(), error })?;
        if let Some(pos) = batch.last_position {
            crate::engine::failpoint::trace(&format!("batch-begin {}", pos.gtid_set));
        }
        let parts = split(collapse(std::mem::take(&mut batch.ops)), conns.len());
        let batch = &batch;
        let writes = conns.iter_mut().zip(parts).enumerate().filter(|(k, _)| !committed[*k]).map(|(k, (conn, mut ops))| async move {
            (k, self.write_part(conn, k, &mut ops, batch, apply_sql).await)
        });
        let mut writers = Vec::new();
        let mut error = None;
        for (k, result) in futures_util::future::join_all(writes).await {
            match result {
                Ok(()) => committed[k] = true,
                Err(e) => {
                    writers.push(k);
                    error = Some(e);
                }
            }
        }
        if let Some(error) = error {
            return Err(Failed { writers, error });
        }
        self.publish(batch);
        Ok(())
    }

    /// Writer `k`'s part of a batch in one transaction: its row changes in order, then its position row. The batch's
    /// events are counted in writer 0's row.
    async fn write_part(&self, conn: &mut mysql_async::Conn, k: usize, ops: &mut [Op<'_>], batch: &Batch<'_>, apply_sql: &str) -> Result<()> {
        let mut tx = conn.start_transaction(TxOpts::default()).await.wrap_err("starting an apply batch")?;
        self.write_runs(&mut tx, ops).await?;
        // The position after the batch's last whole item: a batch of parts only keeps the stored one, before their
        // source transaction (see the module doc), and counts its events.
        if batch.last_position.is_some() || batch.events > 0 {
            let pos = batch.last_position;
            let events = if k == 0 { batch.events } else { 0 };
            let params = (pos.map(|p| p.gtid_set.clone()), pos.map(|p| p.file.clone()), pos.map(|p| p.pos), events, checkpoint::apply_row(k));
            tx.exec_drop(apply_sql, params).await.wrap_err("recording the applied position")?;
        }
        crate::engine::failpoint::hit("apply-before-commit")?;
        if batch.events > 0 {
            // Only batches that write rows of a watched table (not heartbeats alone): "between two row batches".
            crate::engine::failpoint::hit("apply-rows-before-commit")?;
        }
        if batch.ends_in_part {
            // A batch that ends between two parts of one source transaction.
            crate::engine::failpoint::hit("apply-part-before-commit")?;
        }
        tx.commit().await.wrap_err("committing an apply batch")
    }

    /// The statements of a batch, the changelog rows it carried and the last position it reaches; a DDL on a
    /// guarded table is fatal here, before anything is written.
    fn collect<'a>(&'a self, stmts: &'a [Option<Statements>], items: &'a [StreamItem]) -> Result<Batch<'a>> {
        let mut batch = Batch { ops: Vec::new(), last_position: None, events: 0, notes: Notes::default(), ends_in_part: false };
        let ddl_allowed = *self.ddl_allowed.borrow();
        // Changelog rows of parts: reported with their transaction's last part, if it is in this batch.
        let mut part_notes = Notes::default();
        for item in items {
            batch.ends_in_part = matches!(item, StreamItem::Part(_));
            let txn = match item {
                StreamItem::Progress(p) => {
                    batch.last_position = Some(p);
                    continue;
                }
                StreamItem::Part(changes) => {
                    self.queue_changes(stmts, changes, &mut batch, &mut part_notes)?;
                    continue;
                }
                StreamItem::Transaction(t) => t,
            };
            if let (Some(stmt), false) = (&txn.statement, ddl_allowed) {
                self.refuse_guarded_ddl(stmt, &txn.schema)?;
            }
            batch.notes.take_from(&mut part_notes);
            let mut notes = std::mem::take(&mut batch.notes);
            self.queue_changes(stmts, &txn.changes, &mut batch, &mut notes)?;
            batch.notes = notes;
            batch.last_position = Some(&txn.position);
        }
        Ok(batch)
    }

    /// Queues the statements of `changes` in `batch`; changelog rows are noted in `notes`.
    fn queue_changes<'a>(&'a self, stmts: &'a [Option<Statements>], changes: &[RowChange], batch: &mut Batch<'a>, notes: &mut Notes) -> Result<()> {
        for change in changes {
            if self.read_changelog(change, notes) {
                continue;
            }
            let (Some(Some(target)), Some(Some(st))) = (self.targets.get(change.table), stmts.get(change.table)) else {
                continue;
            };
            refuse_null_key(target, &st.target, change)?;
            queue_change(&mut batch.ops, target, st, change);
            batch.events += 1;
        }
        Ok(())
    }

    /// A statement of the stream that changes a guarded table (not one of this run's own) stops the run.
    fn refuse_guarded_ddl(&self, stmt: &str, schema: &str) -> Result<()> {
        if self.own_statements.iter().any(|own| own == stmt.trim()) {
            return Ok(());
        }
        for (db, t) in &self.guarded_tables {
            if ddl_touches(stmt, schema, db, t) {
                bail!(Fatal(format!(
                    "the original table {db}.{t} was changed during the run by: {stmt}; the run stops \
                     (nothing was swapped). Start the migration over for the table's new definition"
                )));
            }
        }
        Ok(())
    }

    /// True when `change` is a changelog row (a heartbeat or the cut-over marker, noted in `notes`).
    fn read_changelog(&self, change: &RowChange, notes: &mut Notes) -> bool {
        let Some(cl) = self.changelog.as_ref().filter(|cl| change.table == cl.index) else {
            return false;
        };
        if let Some(after) = &change.after {
            let hint = text(after.get(cl.hint_col));
            let value = text(after.get(cl.value_col));
            if hint == "heartbeat" {
                notes.heartbeat = value.parse().ok();
            } else if hint == "cut-over-marker" {
                notes.marker = Some(value);
            }
        }
        true
    }

    /// Runs of the same statement go to the server as one batch each, in order (the order of the source's
    /// changes is kept: a run ends wherever the statement changes).
    async fn write_runs(&self, tx: &mut mysql_async::Transaction<'_>, ops: &mut [Op<'_>]) -> Result<()> {
        let mut start = 0;
        while start < ops.len() {
            let (stmt, table) = (ops[start].stmt.clone(), ops[start].table);
            let first = &ops[start].params;
            let end = ops[start..]
                .iter()
                .position(|o| o.stmt != stmt || !same_param_types(first, &o.params))
                .map_or(ops.len(), |n| start + n);
            let params: Vec<Vec<Value>> = ops[start..end].iter_mut().map(|o| std::mem::take(&mut o.params)).collect();
            self.write_run(tx, &stmt, table, params).await?;
            start = end;
        }
        Ok(())
    }

    /// One run of one statement; the server's warnings about it are fatal (a value would change).
    async fn write_run(&self, tx: &mut mysql_async::Transaction<'_>, stmt: &str, table: &str, params: Vec<Vec<Value>>) -> Result<()> {
        let rows = params.len();
        let lenient = self.writes.strict && stmt.starts_with(LENIENT);
        if lenient {
            tx.query_drop(format!("SET SESSION sql_mode = '{}'", writer_sql_mode(RowWrites { strict: false, ..self.writes }))).await?;
        }
        let mut found = Vec::new();
        let applied = match multi_row::row_group(stmt).filter(|_| self.multi_row_values && rows > 1) {
            Some(group) => self.write_groups(tx, stmt, group, params, &mut found).await,
            None => self.write_batch(tx, stmt, params, &mut found).await,
        };
        if lenient {
            tx.query_drop(format!("SET SESSION sql_mode = '{}'", writer_sql_mode(self.writes))).await?;
            // Storing the ENUM error value is what the non-strict write warns about.
            found.retain(|w| w.code != 1265);
        }
        applied.wrap_err_with(|| format!("applying {rows} row event(s) to {table}"))?;
        if !found.is_empty() {
            bail!(Fatal(format!(
                "applying {rows} row event(s) to {table}: the server warned: {}; the value would be changed, so the run \
                 stops before the cut-over (the original is untouched)",
                crate::engine::copy::warnings::describe(&found)
            )));
        }
        Ok(())
    }

    /// One `exec_batch` (MariaDB: one round trip); its warnings are read before anything else runs on the session.
    async fn write_batch(&self, tx: &mut mysql_async::Transaction<'_>, stmt: &str, params: Vec<Vec<Value>>, found: &mut Vec<ServerWarning>) -> Result<()> {
        tx.exec_batch(stmt, params).await?;
        self.read_warnings(tx, found).await
    }

    /// Multi-row statements over groups of the run's rows (see `multi_row`), each one's warnings read after it.
    async fn write_groups(&self, tx: &mut mysql_async::Transaction<'_>, stmt: &str, group: &str, params: Vec<Vec<Value>>, found: &mut Vec<ServerWarning>) -> Result<()> {
        for rows in multi_row::groups(params) {
            let sql = multi_row::statement(stmt, group, rows.len());
            tx.exec_drop(sql, rows.into_iter().flatten().collect::<Vec<Value>>()).await?;
            self.read_warnings(tx, found).await?;
        }
        Ok(())
    }

    async fn read_warnings(&self, tx: &mut mysql_async::Transaction<'_>, found: &mut Vec<ServerWarning>) -> Result<()> {
        let n = tx.get_warnings();
        if n > 0 && self.writes.panic_on_warnings {
            found.extend(crate::engine::copy::warnings::read(tx, n).await?);
        }
        Ok(())
    }

    /// After a commit: counters, heartbeat lag, the applied position for the status and for whoever waits on it.
    fn publish(&self, batch: &Batch<'_>) {
        if let Some(pos) = batch.last_position {
            crate::engine::failpoint::trace(&format!("batch-commit {}", pos.gtid_set));
        }
        self.shared.events_applied.fetch_add(batch.events, Ordering::Relaxed);
        if let Some(hb) = batch.notes.heartbeat {
            self.shared.heartbeat_lag_us.store(now_micros().saturating_sub(hb), Ordering::Relaxed);
            self.shared.last_heartbeat_us.store(hb, Ordering::Relaxed);
        }
        let Some(pos) = batch.last_position.cloned() else { return };
        self.shared.checkpoint_committed(Some(&pos.gtid_set), None);
        self.shared.with(|i| {
            i.status.binlog.applied_gtid_set = pos.gtid_set.clone();
            i.status.binlog.applied_file = pos.file.clone();
            i.status.binlog.applied_pos = pos.pos;
        });
        self.applied_tx.send_modify(|a| {
            a.position = Some(pos);
            if batch.notes.marker.is_some() {
                a.marker = batch.notes.marker.clone();
            }
        });
    }
}

/// Why an attempt at a batch failed, and the writers whose parts did not commit.
struct Failed {
    writers: Vec<usize>,
    error: color_eyre::eyre::Report,
}

/// What one apply batch writes and what it read on the way.
struct Batch<'a> {
    ops: Vec<Op<'a>>,
    /// The position after the batch's last whole item (None: the batch holds parts only).
    last_position: Option<&'a BinlogPosition>,
    /// Row events of watched tables.
    events: u64,
    notes: Notes,
    /// The batch's last item is a part: it ends inside a source transaction.
    ends_in_part: bool,
}

/// The changelog rows a batch read: the last heartbeat and cut-over marker.
#[derive(Debug, Default)]
struct Notes {
    marker: Option<String>,
    heartbeat: Option<u64>,
}

impl Notes {
    /// Takes what `later` noted (the parts of the transaction that now ends), over what this holds.
    fn take_from(&mut self, later: &mut Notes) {
        let later = std::mem::take(later);
        self.marker = later.marker.or(self.marker.take());
        self.heartbeat = later.heartbeat.or(self.heartbeat);
    }
}

/// Rows an item counts for in a batch.
fn item_rows(item: &StreamItem) -> usize {
    match item {
        StreamItem::Transaction(t) => t.changes.len(),
        StreamItem::Part(changes) => changes.len(),
        StreamItem::Progress(_) => 0,
    }
}

/// Queues one row change as statements: insert/update as REPLACE, delete by key, a key-changing update as delete
/// of the old key then REPLACE of the new row.
fn queue_change<'a>(
    ops: &mut Vec<Op<'a>>,
    target: &'a ApplyTarget,
    st: &'a Statements,
    change: &RowChange,
) {
    let replace = |ops: &mut Vec<Op<'a>>, after: &[Value]| {
        let (stmt, params) = match target.replace_with_sql(after, &change.after_sql) {
            Some((stmt, params)) => (Cow::Owned(stmt), params),
            None => (Cow::Borrowed(st.replace.as_str()), target.row_params(after)),
        };
        let stmt = match target.holds_enum_error_value(after) {
            true => Cow::Owned(format!("{LENIENT}{stmt}")),
            false => stmt,
        };
        let key = target.key_params(after);
        ops.push(Op { stmt, table: &st.target, params, row: row_identity(&st.target, &key), shard: st.shards.of(&key) });
    };
    let delete = |ops: &mut Vec<Op<'a>>, key: Vec<Value>| {
        if let Some(log) = &target.deletes {
            log.record(&key);
        }
        let (row, shard) = (row_identity(&st.target, &key), st.shards.of(&key));
        ops.push(Op { stmt: Cow::Borrowed(&st.delete), table: &st.target, params: key, row, shard });
    };
    match change.kind {
        ChangeKind::Insert => {
            if let Some(after) = &change.after {
                replace(ops, after);
            }
        }
        ChangeKind::Delete => {
            if let Some(before) = &change.before {
                delete(ops, target.key_params(before));
            }
        }
        ChangeKind::Update => {
            if let (Some(before), Some(after)) = (&change.before, &change.after) {
                let old_key = target.key_params(before);
                if old_key != target.key_params(after) {
                    delete(ops, old_key);
                }
                replace(ops, after);
            }
        }
    }
}

/// With a nullable key: a row written with a NULL in its key (an insert, or an update to NULL) is one no key
/// reaches (a later update of it would add a second row), so the run stops before the cut-over. A row whose key
/// leaves NULL, or a deleted one, is applied (the ghost never held it).
fn refuse_null_key(target: &ApplyTarget, table: &str, change: &RowChange) -> Result<()> {
    let Some(after) = change.after.as_ref().filter(|_| target.nullable_key) else { return Ok(()) };
    if !target.key_params(after).contains(&Value::NULL) {
        return Ok(());
    }
    let names: Vec<&str> = target.key.iter().map(|(_, _, n)| n.as_str()).collect();
    bail!(Fatal(format!(
        "a row with a NULL in the key ({}) was written to the original during the migration into {table}: no key \
         reaches it, so the run stops before the cut-over (the original is untouched). Set the NULLs, drop the \
         migration's tables (_gho, _ghc, _ghk) and start again, or add a PRIMARY KEY or a NOT NULL UNIQUE KEY",
        names.join(", ")
    )))
}

/// Can `row` go in one batch with `first`? MariaDB's bulk execute sends the parameter types of a batch's first
/// row only: a later row must bind the same types, or NULL (seen: a NULL date in the first row and a date in the
/// second failed with "ERROR 1210: Incorrect arguments to mysqld_stmt_bulk_execute").
fn same_param_types(first: &[Value], row: &[Value]) -> bool {
    first.len() == row.len()
        && first
            .iter()
            .zip(row)
            .all(|(a, b)| *b == Value::NULL || std::mem::discriminant(a) == std::mem::discriminant(b))
}

/// Does this statement (run with default database `schema`) alter, drop, rename, truncate, re-create or index
/// `db.table`? Comments are skipped and versioned comments read (`stream::statement`). Names compare without
/// case: on a case-sensitive server that can stop a run for a same-named table in other case, never miss one.
pub fn ddl_touches(stmt: &str, schema: &str, db: &str, table: &str) -> bool {
    statement::ddl_touches(stmt, schema, db, table, NameCase::Folded)
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::NULL) | None => String::new(),
        Some(other) => other.as_sql(true).trim_matches('\'').to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{ddl_touches, same_param_types};
    use mysql_async::Value;

    #[test]
    fn a_batch_keeps_its_first_rows_parameter_types() {
        let date = Value::Date(2024, 1, 2, 0, 0, 0, 0);
        assert!(same_param_types(&[Value::Int(1), date.clone()], &[Value::Int(2), Value::NULL]));
        assert!(!same_param_types(&[Value::Int(1), Value::NULL], &[Value::Int(2), date.clone()]));
        assert!(!same_param_types(&[Value::Int(1)], &[Value::UInt(1)]));
        assert!(!same_param_types(&[Value::Bytes(b"0000-00-00".to_vec())], &[date]));
    }

    #[test]
    fn only_table_ddl_on_the_table_counts() {
        assert!(ddl_touches("ALTER TABLE `t` ADD COLUMN x INT", "d", "d", "t"));
        assert!(ddl_touches("alter table d.t engine=innodb", "", "d", "t"));
        assert!(ddl_touches("DROP TABLE IF EXISTS `d`.`t`", "x", "d", "t"));
        assert!(ddl_touches("RENAME TABLE t TO x", "d", "d", "t"));
        assert!(ddl_touches("/* app */ ALTER TABLE t ADD COLUMN x INT", "d", "d", "t"));
        assert!(ddl_touches("CREATE UNIQUE INDEX u ON t (a)", "d", "d", "t"));
        assert!(!ddl_touches("ALTER EVENT t DISABLE", "d", "d", "t"));
        assert!(!ddl_touches("ALTER TABLE `_t_gho` ADD COLUMN x INT", "d", "d", "t"));
        assert!(!ddl_touches("DROP TABLE other", "d", "d", "t"));
        assert!(!ddl_touches("ALTER TABLE t ADD COLUMN x INT", "elsewhere", "d", "t"));
    }
}
