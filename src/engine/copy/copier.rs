//! The row copier: walks the original table in chunks of its shared unique key and copies each chunk with
//! `INSERT IGNORE ... SELECT` in strict mode (never overwriting what the applier wrote, never skipping a row; a
//! warning other than an expected skip stops the run, see `warnings`). On one server
//! (migrate) the chunk reads the original without locks at READ COMMITTED, so the application's writes never wait
//! for the copy, and a delete the applier made while the chunk ran is checked before the chunk commits (see
//! `delete_log`); without a delete log the range is read under shared locks (`LOCK IN SHARE MODE`), gh-ost's way.
//! Each chunk's transaction also moves the copy watermark in the checkpoint table. The chunk size adapts to a
//! target chunk time within bounds. Across servers (move-tables) a chunk is read under locks on the source and
//! written to the target before those locks are released (`run_across`; the chunk itself is in `across`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr};
use color_eyre::Section;
use mysql_async::prelude::Queryable;
use mysql_async::{IsolationLevel, TxOpts, Value};
use tokio_util::sync::CancellationToken;

use super::session::copier_conn;
use crate::engine::checkpoint;
use crate::engine::config::RowWrites;
use crate::engine::copy::delete_log::DeleteLog;
use crate::engine::copy::warnings::{self, Verdict, WarningRules};
use crate::engine::failpoint;
use crate::engine::retry::{self, Retry, Transient};
use crate::engine::plan::schema::Column;
use crate::engine::shared::Shared;
use crate::engine::sql::{ident_list, qualified, quote_ident, tuple_compare};

pub const MIN_CHUNK: u64 = 100;
pub const MAX_CHUNK: u64 = 100_000;

/// One table's copy job.
#[derive(Debug, Clone)]
pub struct CopyJob {
    pub source_db: String,
    pub source_table: String,
    pub target_db: String,
    pub target_table: String,
    /// (original column, target column name).
    pub columns: Vec<(Column, String)>,
    /// Key columns of the original, in key order, and the index that holds them.
    pub key: Vec<Column>,
    pub key_index: String,
    pub checkpoint_db: String,
    pub checkpoint_table: String,
    /// The checkpoint row of this job (`copy`, or `copy:<table>` for move-tables).
    pub checkpoint_row: String,
    /// Set: chunks read without locks and check the applier's deletes (same server only).
    pub deletes: Option<Arc<DeleteLog>>,
    /// The writers' session (strict mode) on both sides.
    pub writes: RowWrites,
    /// Which warnings of a chunk are expected (see `warnings`).
    pub warnings: WarningRules,
}

/// The target side of a cross-server copy (move-tables): rows and checkpoint are written there.
#[derive(Debug, Clone)]
pub struct CrossServer {
    pub target_opts: mysql_async::Opts,
    /// Test aid: a pause between reading a chunk and writing it (zero in production).
    pub hold: Duration,
}

/// How a copy is paced and stopped: the chunk time it adapts to, how long a failing chunk is retried, and the
/// token that cancels it.
#[derive(Debug, Clone)]
pub struct CopyControl {
    pub chunk_target: Duration,
    pub retry_for: Duration,
    pub cancel: CancellationToken,
}

/// Which worker of a copy a run is: slice `index` of `count` (see `parallel`). A lone worker finishes the copy
/// itself; one of several leaves that to `parallel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub index: usize,
    pub count: usize,
}

impl Slot {
    pub const ONLY: Slot = Slot { index: 0, count: 1 };
}

/// Where a copy stands: everything after `watermark` up to `range_end` is left.
#[derive(Debug, Clone, Default)]
pub struct CopyRange {
    pub range_end: Option<Vec<Value>>,
    pub watermark: Option<Vec<Value>>,
}

impl CopyJob {
    fn key_names(&self) -> Vec<String> {
        self.key.iter().map(|c| c.name.clone()).collect()
    }
    fn key_placeholders(&self) -> Vec<String> {
        self.key.iter().map(|c| c.key_placeholder()).collect()
    }
    fn order_by(&self, desc: bool) -> String {
        self.key
            .iter()
            .map(|c| format!("{}{}", quote_ident(&c.name), if desc { " DESC" } else { "" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// The test trace's tag of this job's chunks: `#<n>` for slice n > 1 of a parallel copy, else nothing.
    fn slice_tag(&self) -> String {
        match checkpoint::slice_index(&self.checkpoint_row) {
            Some(i) if i > 0 => format!("#{}", i + 1),
            _ => String::new(),
        }
    }
    pub(super) fn source(&self) -> String {
        format!("{} FORCE INDEX ({})", qualified(&self.source_db, &self.source_table), quote_ident(&self.key_index))
    }

    /// The first and last key of the table now (None: empty table).
    pub async fn key_bounds(&self, conn: &mut mysql_async::Conn) -> Result<Option<(Vec<Value>, Vec<Value>)>> {
        let cols = self.key.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
        let q = |desc: bool| format!("SELECT {cols} FROM {} ORDER BY {} LIMIT 1", self.source(), self.order_by(desc));
        let first: Option<mysql_async::Row> = conn.exec_first(q(false), ()).await.wrap_err("reading the first key")?;
        let last: Option<mysql_async::Row> = conn.exec_first(q(true), ()).await.wrap_err("reading the last key")?;
        Ok(match (first, last) {
            (Some(a), Some(b)) => Some((a.unwrap(), b.unwrap())),
            _ => None,
        })
    }

    /// The rows of the table, counted up to `cap` (a bound on what a stale estimate can get wrong, cheaply).
    pub async fn count_up_to(&self, conn: &mut mysql_async::Conn, cap: u64) -> Result<u64> {
        let q = format!("SELECT COUNT(*) FROM (SELECT 1 FROM {} LIMIT {cap}) AS capped", self.source());
        let n: Option<u64> = conn.exec_first(q, ()).await.wrap_err("counting the rows to copy (up to a cap)")?;
        Ok(n.unwrap_or(0))
    }

    /// WHERE clause and parameters for `lower < key <= upper` (no lower bound: from the start).
    fn range_where(&self, lower: Option<&[Value]>, upper: &[Value]) -> (String, Vec<Value>) {
        let names = self.key_names();
        let phs = self.key_placeholders();
        let mut parts = Vec::new();
        let mut params = Vec::new();
        if let Some(lower) = lower {
            let (sql, binds) = tuple_compare(&names, &phs, ">", ">");
            parts.push(sql);
            params.extend(binds.iter().map(|i| lower[*i].clone()));
        }
        let (sql, binds) = tuple_compare(&names, &phs, "<=", "<");
        parts.push(sql);
        params.extend(binds.iter().map(|i| upper[*i].clone()));
        (parts.join(" AND "), params)
    }

    /// The key that ends the next chunk of `size` rows after `lower`, or None when fewer rows are left.
    pub(super) async fn chunk_end(
        &self,
        conn: &mut mysql_async::Conn,
        lower: Option<&[Value]>,
        range_end: &[Value],
        size: u64,
    ) -> Result<Option<Vec<Value>>> {
        let cols = self.key.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
        let (cond, params) = self.range_where(lower, range_end);
        let q = format!(
            "SELECT {cols} FROM {} WHERE {cond} ORDER BY {} LIMIT 1 OFFSET {}",
            self.source(),
            self.order_by(false),
            size.saturating_sub(1)
        );
        let row: Option<mysql_async::Row> = conn.exec_first(q, params).await.wrap_err("finding the chunk's end")?;
        Ok(row.map(|r| r.unwrap()))
    }

    /// The end key of the next chunk after `lower`, and whether it is the last one (then it ends at `range_end`).
    async fn next_chunk(
        &self,
        conn: &mut mysql_async::Conn,
        lower: Option<&[Value]>,
        range_end: &[Value],
        size: u64,
    ) -> Result<(Vec<Value>, bool)> {
        Ok(match self.chunk_end(conn, lower, range_end, size).await? {
            Some(e) if e != range_end => (e, false),
            _ => (range_end.to_vec(), true),
        })
    }

    /// Copies until done, cancelled, or an error; `range` is updated as chunks commit.
    pub async fn run(&self, conn_opts: &mysql_async::Opts, range: &mut CopyRange, shared: Arc<Shared>, control: &CopyControl) -> Result<bool> {
        self.run_with(conn_opts, None, Slot::ONLY, range, shared, control).await
    }

    /// One worker of a parallel copy (see `parallel`): its slice `range`, its own chunk size, its watermark row
    /// (`self.checkpoint_row`); the copy is complete once every worker returned true.
    pub async fn run_slice(&self, conn_opts: &mysql_async::Opts, slot: Slot, range: &mut CopyRange, shared: Arc<Shared>, control: &CopyControl) -> Result<bool> {
        if let Some(log) = &self.deletes {
            log.join(slot.index);
        }
        let done = self.run_with(conn_opts, None, slot, range, shared, control).await;
        if let Some(log) = &self.deletes {
            log.leave(slot.index);
        }
        done
    }

    /// Like [`run`](Self::run), but reads on the source server and writes the rows (and the checkpoint, which lives
    /// with them) on another server: see [`CrossServer`].
    pub async fn run_across(&self, source_opts: &mysql_async::Opts, across: CrossServer, range: &mut CopyRange, shared: Arc<Shared>, control: &CopyControl) -> Result<bool> {
        self.run_with(source_opts, Some(across), Slot::ONLY, range, shared, control).await
    }

    async fn run_with(
        &self,
        conn_opts: &mysql_async::Opts,
        across: Option<CrossServer>,
        slot: Slot,
        range: &mut CopyRange,
        shared: Arc<Shared>,
        control: &CopyControl,
    ) -> Result<bool> {
        let CopyControl { chunk_target: target_chunk_time, retry_for, cancel } = control;
        let (target_chunk_time, retry_for) = (*target_chunk_time, *retry_for);
        let mut conn = copier_conn(conn_opts, self.writes).await?;
        let mut target_conn = match &across {
            Some(a) => Some(copier_conn(&a.target_opts, self.writes).await.wrap_err("connecting to the target server")?),
            None => None,
        };
        // Where the chunks end, for the verification.
        let every = super::boundaries::chunk_rows(shared.chunk_size.load(Ordering::Relaxed));
        shared.with(|i| i.copy_boundaries.begin(&self.checkpoint_row));
        let Some(range_end) = range.range_end.clone() else {
            self.mark_complete(target_conn.as_mut().unwrap_or(&mut conn), range).await?;
            return Ok(true);
        };
        let ghost_cols: Vec<String> = self.columns.iter().map(|(_, n)| quote_ident(n)).collect();
        let orig_cols: Vec<String> = self.columns.iter().map(|(c, _)| quote_ident(&c.name)).collect();
        let update_sql = checkpoint::copy_update_sql(&self.checkpoint_db, &self.checkpoint_table);
        let mut sizing = ChunkSizing::new(&shared, slot);
        loop {
            // Throttled or paused: the copy waits; the applier goes on.
            loop {
                if cancel.is_cancelled() {
                    return Ok(false);
                }
                let throttled = shared.with(|i| i.throttle_reason.is_some()) || shared.paused.load(Ordering::Relaxed);
                if !throttled {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut size = sizing.next(&shared);
            let lower = range.watermark.clone();
            let first_try = Instant::now();
            let mut attempt = 0u32;
            let (end, last, rows, started) = loop {
                let copied = match (&across, target_conn.as_mut()) {
                    (Some(a), Some(target)) => {
                        self.copy_chunk_across(&mut conn, target, a.hold, lower.as_deref(), &range_end, size, &ghost_cols, &orig_cols, &update_sql).await
                    }
                    _ => self.copy_chunk(&mut conn, slot.index, lower.as_deref(), &range_end, size, &ghost_cols, &orig_cols, &update_sql).await,
                };
                match copied {
                    Ok(r) => break r,
                    Err(e) => {
                        attempt += 1;
                        let kind = retry::classify(&e);
                        if kind == Retry::No || first_try.elapsed() > retry_for || cancel.is_cancelled() {
                            return Err(e);
                        }
                        tracing::debug!("chunk retry {attempt}: {e:#}");
                        if retry::wants_smaller(&e) {
                            size = (size / 2).max(MIN_CHUNK.min(size));
                            sizing.set(&shared, size);
                        }
                        shared.with(|i| i.last_copy_error = Some(format!("{e:#}")));
                        shared.copy_retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(retry::backoff(attempt)).await;
                        if kind == Retry::Reconnect {
                            match copier_conn(conn_opts, self.writes).await {
                                Ok(c) => conn = c,
                                Err(e) => tracing::warn!("copier reconnect failed: {e:#}"),
                            }
                            if let Some(a) = &across {
                                match copier_conn(&a.target_opts, self.writes).await {
                                    Ok(c) => target_conn = Some(c),
                                    Err(e) => tracing::warn!("copier reconnect to the target failed: {e:#}"),
                                }
                            }
                        }
                    }
                }
            };
            let took = started.elapsed();
            shared.with(|i| i.copy_boundaries.note(&self.checkpoint_row, &end, rows, every));
            range.watermark = Some(end.clone());
            shared.rows_copied.fetch_add(rows, Ordering::Relaxed);
            shared.checkpoint_committed(None, Some(checkpoint::describe_key(&end)));
            if last {
                if slot.count == 1 {
                    shared.copy_complete.store(true, Ordering::Relaxed);
                    if let Some(log) = &self.deletes {
                        log.deactivate();
                    }
                }
                return Ok(true);
            }
            // Adapt the chunk size towards the target time, at most doubling or halving per chunk.
            let secs = took.as_secs_f64().max(0.001);
            let factor = (target_chunk_time.as_secs_f64() / secs).clamp(0.5, 2.0);
            let next = ((size as f64) * factor) as u64;
            sizing.set(&shared, next.clamp(MIN_CHUNK, MAX_CHUNK));
            let nice = shared.nice_ratio();
            if nice > 0.0 {
                tokio::time::sleep(took.mul_f64(nice)).await;
            }
        }
    }

    /// The next chunk after `lower` (its end, whether it is the last, its WHERE with parameters), traced as begun.
    pub(super) async fn bounds(&self, conn: &mut mysql_async::Conn, lower: Option<&[Value]>, range_end: &[Value], size: u64) -> Result<ChunkBounds> {
        let (end, last) = self.next_chunk(conn, lower, range_end, size).await?;
        let (cond, params) = self.range_where(lower, &end);
        let end_text = checkpoint::encode_key(&end);
        let span = format!("{} {end_text}", lower.map(checkpoint::encode_key).unwrap_or_else(|| "start".into()));
        failpoint::trace(&format!("chunk-begin{} {span}", self.slice_tag()));
        Ok(ChunkBounds { end, last, cond, params, end_text, span })
    }

    /// Copies one chunk after `lower` in one transaction with its watermark; returns (end key, last?, rows, start).
    #[allow(clippy::too_many_arguments)]
    async fn copy_chunk(
        &self,
        conn: &mut mysql_async::Conn,
        worker: usize,
        lower: Option<&[Value]>,
        range_end: &[Value],
        size: u64,
        ghost_cols: &[String],
        orig_cols: &[String],
        update_sql: &str,
    ) -> Result<(Vec<Value>, bool, u64, Instant)> {
        let ChunkBounds { end, last, cond, params, end_text, span } = self.bounds(conn, lower, range_end, size).await?;
        // Lock-free while the delete log holds every key it must (see delete_log); under shared locks otherwise.
        let mut lock_free = self.deletes.as_ref().is_some_and(|l| !l.overflowed());
        loop {
            let insert = format!(
                "INSERT IGNORE INTO {} ({}) SELECT {} FROM {} WHERE {cond} ORDER BY {}{}",
                qualified(&self.target_db, &self.target_table),
                ghost_cols.join(", "),
                orig_cols.join(", "),
                self.source(),
                self.order_by(false),
                if lock_free { "" } else { " LOCK IN SHARE MODE" }
            );
            let log = self.deletes.as_ref().filter(|_| lock_free);
            let started = Instant::now();
            let mut opts = TxOpts::default();
            if let Some(log) = log {
                // Deletes recorded so far are committed before the chunk's read is taken (see delete_log).
                log.settle(worker, conn).await?;
                // The SELECT of an INSERT ... SELECT is a consistent read without locks only below REPEATABLE READ.
                opts.with_isolation_level(IsolationLevel::ReadCommitted);
            }
            let mut tx = conn.start_transaction(opts).await?;
            tx.exec_drop(&insert, params.clone()).await.wrap_err_with(|| {
                format!("copying a chunk of {}.{} up to {}", self.source_db, self.source_table, checkpoint::describe_key(&end))
            })?;
            let rows = tx.affected_rows();
            let count = tx.get_warnings();
            if count > 0 {
                self.check_warnings(&mut tx, count, Locate::Range(&cond, &params), &end).await?;
            }
            if let Some(log) = log {
                let Some((checked, removed)) = log.recheck(worker, &mut tx).await? else {
                    // The log overflowed while this chunk ran: it may lack keys the check needs. Again, under locks.
                    tx.rollback().await.wrap_err("rolling back a chunk to copy it again under locks")?;
                    failpoint::trace(&format!("chunk-relock{} {end_text}", self.slice_tag()));
                    lock_free = false;
                    continue;
                };
                if checked > 0 {
                    failpoint::trace(&format!("chunk-recheck{} {end_text} checked={checked} removed={removed}", self.slice_tag()));
                    tracing::debug!("chunk up to {end_text}: {checked} deleted key(s) checked, {removed} row(s) removed");
                }
            }
            self.commit_chunk(tx, update_sql, &end_text, rows, last, &span).await.wrap_err("committing a chunk")?;
            return Ok((end, last, rows, started));
        }
    }

    /// Judges the warnings of a chunk's INSERT (see `warnings`): expected skips pass; a value the new definition
    /// cannot hold stops the run (`--panic-on-warnings`) naming the warning and the row's key; duplicates on a key
    /// the ALTER adds are refused when the original holds them, else the chunk is tried again.
    pub(super) async fn check_warnings(&self, conn: &mut impl Queryable, count: u16, locate: Locate<'_>, end: &[Value]) -> Result<()> {
        let listed = warnings::read(conn, count).await?;
        match warnings::judge(&self.warnings, count, &listed) {
            Verdict::Clean => Ok(()),
            Verdict::TooMany => Err(Transient { why: format!("{count} warnings in one chunk, more than the server lists"), smaller: true }.into()),
            Verdict::NewKeyDuplicate(index) => self.new_key_duplicates(conn, matches!(locate, Locate::Range(..)), &index, end).await,
            Verdict::Unexpected { warnings: found, row } => {
                let key = match row {
                    Some(n) => self.key_at_row(conn, &locate, n).await.unwrap_or_else(|e| format!("(key not read: {e})")),
                    None => "(the server named no row)".to_string(),
                };
                let text = format!(
                    "copying {}.{} into {}.{}: the server warned in the chunk up to {}: {} (row key {key}). The new                      definition cannot hold this value as it is, and the copy would change it; the run stops before the                      cut-over, the original is untouched",
                    self.source_db,
                    self.source_table,
                    self.target_db,
                    self.target_table,
                    checkpoint::describe_key(end),
                    warnings::describe(&found)
                );
                if !self.warnings.panic_on_warnings {
                    tracing::warn!("{text} (--panic-on-warnings=false: going on)");
                    return Ok(());
                }
                Err(color_eyre::eyre::eyre!(crate::engine::stream::assembler::Fatal(text)))
                    .suggestion("change the ALTER so the new column holds every value (wider type, the same character set, NULL allowed), or fix the rows in the original, then start over; --panic-on-warnings=false copies the changed value instead")
            }
        }
    }

    /// The key of the `n`th (1-based) row of a chunk's INSERT.
    async fn key_at_row(&self, conn: &mut impl Queryable, locate: &Locate<'_>, n: u64) -> Result<String> {
        match locate {
            Locate::Range(cond, params) => {
                let q = format!("SELECT {} FROM {} WHERE {cond} ORDER BY {} LIMIT 1 OFFSET {}", ident_list(&self.key_names()), self.source(), self.order_by(false), n.saturating_sub(1));
                let row: Option<mysql_async::Row> = conn.exec_first(q, params.to_vec()).await?;
                Ok(row.map(|r| checkpoint::describe_key(&r.unwrap())).unwrap_or_else(|| "(not found)".into()))
            }
            Locate::Rows(rows) => {
                let row = rows.get(n.saturating_sub(1) as usize).ok_or_else(|| color_eyre::eyre::eyre!("row {n} is not in the batch"))?;
                let values: Vec<Value> = self
                    .key
                    .iter()
                    .filter_map(|k| self.columns.iter().position(|(c, _)| c.name == k.name))
                    .map(|i| row.as_ref(i).cloned().unwrap_or(Value::NULL))
                    .collect();
                Ok(checkpoint::describe_key(&values))
            }
        }
    }

    /// A duplicate on a unique key the ALTER adds: duplicates in the original are refused with their values; none
    /// (a value moved between rows while the chunk ran) is transient: the chunk is tried again.
    async fn new_key_duplicates(&self, conn: &mut impl Queryable, same_server: bool, index: &str, end: &[Value]) -> Result<()> {
        let columns = self.warnings.new_unique_keys.iter().find(|(k, _)| k == index).map(|(_, c)| c.clone()).unwrap_or_default();
        let list = ident_list(&columns);
        let q = format!(
            "SELECT {list}, COUNT(*) FROM {} GROUP BY {list} HAVING COUNT(*) > 1 LIMIT 3",
            qualified(&self.source_db, &self.source_table)
        );
        // Across servers `conn` is the target's: the original is not there to look at.
        let rows: Vec<mysql_async::Row> = match same_server && !columns.is_empty() {
            true => conn.query(q).await.wrap_err("looking for duplicates of the new unique key in the original")?,
            false => Vec::new(),
        };
        if rows.is_empty() {
            return Err(Transient {
                why: format!(
                    "a value of the new unique key {index} ({}) was found twice while copying the chunk up to {},                      but the original holds no duplicates of it now: either it moved between rows during the copy,                      or the new definition compares values differently (collation, type) and the original holds                      values that become equal",
                    columns.join(", "),
                    checkpoint::describe_key(end)
                ),
                smaller: false,
            }
            .into());
        }
        let samples: Vec<String> = rows
            .into_iter()
            .map(|r| {
                let mut v: Vec<Value> = r.unwrap();
                let n = v.pop().map(|c| c.as_sql(true)).unwrap_or_default();
                format!("{} ({n} rows)", checkpoint::describe_key(&v))
            })
            .collect();
        Err(color_eyre::eyre::eyre!(crate::engine::stream::assembler::Fatal(format!(
            "the new unique key {index} ({}) would drop rows of {}.{}: the original holds duplicates: {}. The run stops              before the cut-over; the original is untouched",
            columns.join(", "),
            self.source_db,
            self.source_table,
            samples.join(", ")
        ))))
        .suggestion("remove or change the duplicate rows in the original, then run the same command with --resume; or drop the ghost table and change the ALTER")
    }

    /// Moves the watermark to `end` (encoded) in the chunk's transaction and commits it; `span` names the chunk in
    /// the test trace.
    pub(super) async fn commit_chunk(
        &self,
        mut tx: mysql_async::Transaction<'_>,
        update_sql: &str,
        end: &str,
        rows: u64,
        last: bool,
        span: &str,
    ) -> Result<()> {
        tx.exec_drop(update_sql, (end, rows, u8::from(last), self.checkpoint_row.as_str()))
            .await
            .wrap_err("recording the copy watermark")?;
        failpoint::hit("copy-before-commit")?;
        tx.commit().await?;
        failpoint::trace(&format!("chunk-commit{} {span}", self.slice_tag()));
        Ok(())
    }

    async fn mark_complete(&self, conn: &mut mysql_async::Conn, range: &CopyRange) -> Result<()> {
        let wm = range.watermark.as_deref().map(checkpoint::encode_key);
        conn.exec_drop(
            format!(
                "UPDATE {} SET copy_complete = 1, copy_watermark = ? WHERE id = ?",
                qualified(&self.checkpoint_db, &self.checkpoint_table)
            ),
            (wm, self.checkpoint_row.as_str()),
        )
        .await?;
        Ok(())
    }
}

/// The optimiser's row estimate (EXPLAIN FORMAT=JSON; MySQL 9's plain EXPLAIN has none), or the exact count.
pub async fn estimate_rows(conn: &mut mysql_async::Conn, db: &str, table: &str, exact: bool) -> Result<u64> {
    if exact {
        let n: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {}", qualified(db, table))).await?;
        return Ok(n.unwrap_or(0));
    }
    let json: Option<String> =
        conn.query_first(format!("EXPLAIN FORMAT=JSON SELECT * FROM {}", qualified(db, table))).await?;
    let value: serde_json::Value = serde_json::from_str(&json.unwrap_or_default()).unwrap_or_default();
    fn find(v: &serde_json::Value) -> Option<u64> {
        match v {
            serde_json::Value::Object(m) => {
                for k in ["rows_examined_per_scan", "rows"] {
                    if let Some(n) = m.get(k).and_then(|x| x.as_u64()) {
                        return Some(n);
                    }
                }
                m.values().find_map(find)
            }
            serde_json::Value::Array(a) => a.iter().find_map(find),
            _ => None,
        }
    }
    Ok(find(&value).unwrap_or(0))
}

/// One worker's chunk size: its own, adapted to its chunk time; the first worker's is the one the status shows. A
/// size set from the console or the socket (`chunk-size=`, counted in `Shared::chunk_size_set`) reaches every
/// worker at its next chunk.
struct ChunkSizing {
    size: u64,
    seen_set: u64,
    publishes: bool,
}

impl ChunkSizing {
    fn new(shared: &Shared, slot: Slot) -> Self {
        let seen_set = shared.chunk_size_set.load(Ordering::Relaxed);
        ChunkSizing { size: shared.chunk_size.load(Ordering::Relaxed).max(1), seen_set, publishes: slot.index == 0 }
    }

    /// The size for the next chunk: the operator's when one was set since, else this worker's.
    fn next(&mut self, shared: &Shared) -> u64 {
        let set = shared.chunk_size_set.load(Ordering::Relaxed);
        if set != self.seen_set {
            self.seen_set = set;
            self.size = shared.chunk_size.load(Ordering::Relaxed).max(1);
        }
        self.size
    }

    fn set(&mut self, shared: &Shared, size: u64) {
        self.size = size;
        if self.publishes {
            shared.chunk_size.store(size, Ordering::Relaxed);
        }
    }
}

/// Where the rows of a chunk's INSERT come from, to name the key of a row a warning points at.
pub(super) enum Locate<'a> {
    /// `INSERT ... SELECT` over this range (same server), in key order.
    Range(&'a str, &'a [Value]),
    /// `INSERT ... VALUES` of these rows (across servers), in this order.
    Rows(&'a [mysql_async::Row]),
}

/// One chunk's key range, as both chunk copies (same server, across servers) begin it.
pub(super) struct ChunkBounds {
    pub(super) end: Vec<Value>,
    pub(super) last: bool,
    pub(super) cond: String,
    pub(super) params: Vec<Value>,
    pub(super) end_text: String,
    /// "<lower> <end>" for the trace.
    pub(super) span: String,
}
