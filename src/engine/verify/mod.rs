//! The verification before the cut-over: proves that the original and the ghost hold the same rows over the
//! shared columns. A short `LOCK TABLES <original> READ` holds the writers while the applier catches up with them
//! (the caller waits for a marker written under the lock), consistent snapshots are opened on a small pool of connections, and
//! the lock is released at once; both tables are then read in those snapshots, where they must agree exactly.
//! The ghost may be on another server (a move's target table): each snapshot is then a pair of connections, the
//! ghost's opened while the original is still locked (the applier has nothing of that table left to write).
//! Chunks of the shared key are compared (`checksum`: COUNT and BIT_XOR of each row's CRC32) in parallel over the pool;
//! a chunk that differs is repaired by copying its key range again from the original in one transaction that holds
//! shared locks on that range (writers to it wait; the applier, which only replays later changes, converges on top
//! of it as it does on the copy), and checked again in the next round. Nothing is written to the original.

pub mod checksum;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, TxOpts, Value};
use tokio_util::sync::CancellationToken;

use crate::engine::checkpoint;
use crate::engine::copy::copier::CopyJob;
use crate::engine::plan::schema::TableInfo;
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;
use checksum::{Forms, KeyRange, Side};

/// migrate's checkpoint row that holds the last verified key (`complete` once a whole pass agreed); a move has
/// one per table (`verify:<table>`).
pub const CHECKPOINT_ROW: &str = "verify";
/// What the checkpoint row holds once a pass agreed over the whole table.
pub const COMPLETE: &str = "complete";
/// Keys named per differing chunk.
const SAMPLE: usize = 5;

/// One table's verification: where to connect, the compared forms, the pool and chunk sizes.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// The original's server (the verification lock, the markers).
    pub opts: Opts,
    /// The ghost's server when it is another one (a move's target); None: the original's.
    pub ghost_opts: Option<Opts>,
    pub forms: Forms,
    pub job: CopyJob,
    pub pool: usize,
    pub chunk_rows: u64,
    /// The checkpoint row of this table's verification (in the copy job's checkpoint table).
    pub checkpoint_row: String,
    /// Chunk boundaries the copy left (see [`CopyBoundaries`]); None: the first pass walks the key.
    pub boundaries: Option<Vec<Vec<Value>>>,
}

/// One snapshot of the pool: a connection to the original's server, and one to the ghost's when that is another.
pub struct Snapshot {
    original: Conn,
    ghost: Option<Conn>,
}

impl Snapshot {
    /// The connection that reads the original.
    pub fn original(&mut self) -> &mut Conn {
        &mut self.original
    }

    fn both(&mut self) -> (&mut Conn, Option<&mut Conn>) {
        (&mut self.original, self.ghost.as_mut())
    }
}

/// A chunk whose checksums differ: both sides' (count, xor) and a sample of the keys that differ.
#[derive(Debug, Clone)]
pub struct Difference {
    pub range: KeyRange,
    pub original: (u64, u64),
    pub ghost: (u64, u64),
    pub sample: Vec<String>,
}

impl Difference {
    pub fn describe(&self) -> String {
        format!(
            "key range {}: {} row(s) in the original, {} in the ghost (checksums {:08x} vs {:08x}); differing keys: {}",
            self.range.describe(),
            self.original.0,
            self.ghost.0,
            self.original.1,
            self.ghost.1,
            if self.sample.is_empty() { "(none found row by row)".into() } else { self.sample.join("; ") }
        )
    }
}

/// The writers held: the lock's connection and when the lock was granted.
pub struct Frozen {
    conn: Conn,
    granted: Instant,
}

pub use crate::engine::copy::boundaries::chunk_rows;

/// The chunks of one comparison, shared by the pool's workers.
struct Queue<'a> {
    ranges: &'a [KeyRange],
    next: AtomicUsize,
    record: bool,
    progress: std::sync::Mutex<Progress>,
}

/// Which chunks are done and agreed, how far the agreeing prefix reaches and was recorded, the differences.
struct Progress {
    agreed: Vec<bool>,
    prefix: usize,
    recorded: usize,
    diffs: Vec<(usize, Difference)>,
    stopped: bool,
}

impl Progress {
    fn new(chunks: usize) -> Self {
        Progress { agreed: vec![false; chunks], prefix: 0, recorded: 0, diffs: Vec::new(), stopped: false }
    }
}

impl Queue<'_> {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Progress>> {
        self.progress.lock().map_err(|_| color_eyre::eyre::eyre!("a verification worker panicked"))
    }

    /// Chunk `index` is compared: returns the key to record when the agreeing prefix grew (every chunk before it
    /// agreed; the last, open-ended chunk has no key and is recorded as `complete` by the caller).
    fn done(&self, index: usize, diff: Option<Difference>) -> Result<Option<Vec<Value>>> {
        let mut p = self.lock()?;
        match diff {
            Some(d) => p.diffs.push((index, d)),
            None => p.agreed[index] = true,
        }
        while p.prefix < p.agreed.len() && p.agreed[p.prefix] {
            p.prefix += 1;
        }
        if !self.record || p.prefix <= p.recorded {
            return Ok(None);
        }
        p.recorded = p.prefix;
        Ok(self.ranges[p.prefix - 1].upper.clone())
    }
}

impl Verifier {
    /// `mariadb`: the servers are MariaDB, where text may go into the checksum bare (see `checksum::forms`).
    pub fn new(opts: Opts, job: CopyJob, ghost: &TableInfo, mariadb: bool, pool: usize, chunk_rows: u64) -> Self {
        let forms = checksum::forms(&job, ghost, mariadb);
        Verifier { opts, ghost_opts: None, forms, job, pool: pool.max(1), chunk_rows: chunk_rows.max(1), checkpoint_row: CHECKPOINT_ROW.into(), boundaries: None }
    }

    /// The first pass cuts the key at these keys (the copy's, increasing) and walks only past the last one.
    pub fn with_boundaries(mut self, boundaries: Option<Vec<Vec<Value>>>) -> Self {
        self.boundaries = boundaries;
        self
    }

    /// The same verification with the ghost on another server (a move's target), recorded in `checkpoint_row`.
    pub fn across(mut self, ghost_opts: Opts, checkpoint_row: String) -> Self {
        self.ghost_opts = Some(ghost_opts);
        self.checkpoint_row = checkpoint_row;
        self
    }

    /// The server of the checkpoint table: the ghost's (a move keeps its checkpoint on the target).
    fn checkpoint_opts(&self) -> Opts {
        self.ghost_opts.clone().unwrap_or_else(|| self.opts.clone())
    }

    /// The connections that will hold the snapshots (connected before the lock, so the lock stays short).
    pub async fn connect_pool(&self) -> Result<Vec<Snapshot>> {
        let mut pool = Vec::with_capacity(self.pool);
        for _ in 0..self.pool {
            let original = snapshot_conn(&self.opts).await?;
            let ghost = match &self.ghost_opts {
                Some(o) => Some(snapshot_conn(o).await?),
                None => None,
            };
            pool.push(Snapshot { original, ghost });
        }
        Ok(pool)
    }

    /// Holds the original's writers (`LOCK TABLES .. READ`, waiting at most `timeout` for it); readers go on.
    pub async fn freeze(&self, timeout: Duration) -> Result<Frozen> {
        let mut conn = crate::engine::connection::connect(self.opts.clone()).await.wrap_err("connecting for the verification lock")?;
        conn.exec_drop("SET SESSION lock_wait_timeout = ?", (timeout.as_secs().max(1),)).await.wrap_err("setting lock_wait_timeout")?;
        let table = qualified(&self.job.source_db, &self.job.source_table);
        conn.query_drop(format!("LOCK TABLES {table} READ")).await.wrap_err_with(|| format!("locking {table} for the verification"))?;
        Ok(Frozen { conn, granted: Instant::now() })
    }

    /// Opens a consistent snapshot on every pool connection, then releases the lock; returns how long it was held.
    pub async fn snapshot_and_release(pool: &mut [Snapshot], frozen: Frozen) -> Result<Duration> {
        let Frozen { mut conn, granted, .. } = frozen;
        let opened = open_snapshots(pool).await;
        let released = conn.query_drop("UNLOCK TABLES").await.wrap_err("releasing the verification lock");
        let held = granted.elapsed();
        let _ = conn.disconnect().await;
        opened?;
        released?;
        Ok(held)
    }

    /// Releases a lock without snapshots (the wait was interrupted).
    pub async fn release(frozen: Frozen) -> Result<()> {
        let mut conn = frozen.conn;
        conn.query_drop("UNLOCK TABLES").await.wrap_err("releasing the verification lock")?;
        let _ = conn.disconnect().await;
        Ok(())
    }

    /// The chunks of the original after `from` (in the snapshot of `conn`); the last one is open-ended, so ghost
    /// rows past the original's last key are compared too. From the start with the copy's boundaries, only the
    /// key past the last of them is walked.
    pub async fn chunks(&self, conn: &mut Conn, from: Option<Vec<Value>>) -> Result<Vec<KeyRange>> {
        let mut out = Vec::new();
        let mut lower = from;
        if let (None, Some(keys)) = (&lower, &self.boundaries) {
            for upper in keys {
                out.push(KeyRange { lower: lower.take(), upper: Some(upper.clone()) });
                lower = Some(upper.clone());
            }
        }
        loop {
            let (sql, params) = self.forms.original.chunk_end_sql(lower.as_deref(), self.chunk_rows);
            let row: Option<mysql_async::Row> = conn.exec_first(sql, params).await.wrap_err("finding a verification chunk's end")?;
            let upper = row.map(|r| (0..r.len()).map(|i| r.as_ref(i).cloned().unwrap_or(Value::NULL)).collect::<Vec<_>>());
            let done = upper.is_none();
            out.push(KeyRange { lower: lower.clone(), upper: upper.clone() });
            if done {
                return Ok(out);
            }
            lower = upper;
        }
    }

    /// Compares one chunk on one snapshot (both sides at once when they are on two servers); `Some` when it
    /// differs (with a sample of the keys).
    pub async fn compare(&self, snap: &mut Snapshot, range: &KeyRange) -> Result<(u64, Option<Difference>)> {
        let (original, ghost) = match snap.both() {
            (o, Some(g)) => futures_util::future::try_join(sums(o, &self.forms.original, range), sums(g, &self.forms.ghost, range)).await?,
            (o, None) => (sums(o, &self.forms.original, range).await?, sums(o, &self.forms.ghost, range).await?),
        };
        if original == ghost {
            return Ok((original.0, None));
        }
        let sample = self.sample(snap, range).await?;
        Ok((original.0, Some(Difference { range: range.clone(), original, ghost, sample })))
    }

    /// Up to [`SAMPLE`] keys that are missing, extra or different in the ghost.
    async fn sample(&self, snap: &mut Snapshot, range: &KeyRange) -> Result<Vec<String>> {
        let (oc, gc) = snap.both();
        let o = rows(oc, &self.forms.original, range).await?;
        let g = rows(gc.unwrap_or(oc), &self.forms.ghost, range).await?;
        let mut out = Vec::new();
        for (k, crc) in &o {
            match g.get(k) {
                None => out.push(format!("{k} missing in the ghost")),
                Some(c) if c != crc => out.push(format!("{k} differs")),
                _ => {}
            }
        }
        out.extend(g.keys().filter(|k| !o.contains_key(*k)).map(|k| format!("{k} only in the ghost")));
        out.truncate(SAMPLE);
        Ok(out)
    }

    /// Compares `ranges` over the pool: each snapshot takes the next chunk as soon as it is done with one (a
    /// throttle holds it before its next chunk, a stop ends it there). Each time the unbroken agreeing prefix of
    /// chunks grows, its last key is recorded in the checkpoint row and the status (a chunk is tens of thousands
    /// of rows: one small write each). Returns the differences in key order, or None when `stop` fired.
    pub async fn compare_all(&self, pool: &mut [Snapshot], ranges: &[KeyRange], shared: &Shared, record: bool, stop: &CancellationToken) -> Result<Option<Vec<Difference>>> {
        let ck = tokio::sync::Mutex::new(self.checkpoint_conn().await?);
        shared.with(|i| {
            i.status.verify.chunks_total = ranges.len() as u64;
            i.status.verify.chunks_done = 0;
        });
        let queue = Queue { ranges, next: AtomicUsize::new(0), record, progress: std::sync::Mutex::new(Progress::new(ranges.len())) };
        let workers = pool.iter_mut().map(|snap| self.worker(snap, &queue, &ck, shared, stop));
        let ended = futures_util::future::try_join_all(workers).await;
        let _ = ck.into_inner().disconnect().await;
        ended?;
        let mut progress = queue.progress.into_inner().map_err(|_| color_eyre::eyre::eyre!("a verification worker panicked"))?;
        if progress.stopped {
            return Ok(None);
        }
        progress.diffs.sort_by_key(|(i, _)| *i);
        Ok(Some(progress.diffs.into_iter().map(|(_, d)| d).collect()))
    }

    /// One snapshot's share of [`Self::compare_all`]: chunks from the queue until it is empty or the run stops.
    async fn worker(&self, snap: &mut Snapshot, queue: &Queue<'_>, ck: &tokio::sync::Mutex<Conn>, shared: &Shared, stop: &CancellationToken) -> Result<()> {
        loop {
            // Throttled (load, lag, flag files, by hand): the verification waits as the copy does.
            while shared.with(|i| i.throttle_reason.is_some()) && !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if stop.is_cancelled() {
                queue.lock()?.stopped = true;
                return Ok(());
            }
            let index = queue.next.fetch_add(1, AtomicOrdering::Relaxed);
            let Some(range) = queue.ranges.get(index) else { return Ok(()) };
            let (rows, diff) = self.compare(snap, range).await?;
            shared.with(|i| {
                i.status.verify.chunks_done += 1;
                i.status.verify.rows_verified += rows;
            });
            let upper = queue.done(index, diff)?;
            if let Some(upper) = upper {
                self.record(&mut *ck.lock().await, &checkpoint::encode_key(&upper)).await?;
                shared.with(|i| i.status.verify.verified_to = Some(checkpoint::describe_key(&upper)));
                crate::engine::failpoint::hit("verify-after-progress")?;
            }
        }
    }

    /// Writes the checkpoint row's last verified key (or [`COMPLETE`]). Verification reads only, so the row needs
    /// no transaction with anything else.
    pub async fn record(&self, conn: &mut Conn, key: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (id, phase, copy_watermark) VALUES (?, 'verify', ?) ON DUPLICATE KEY UPDATE copy_watermark = VALUES(copy_watermark)",
            qualified(&self.job.checkpoint_db, &self.job.checkpoint_table)
        );
        conn.exec_drop(sql, (self.checkpoint_row.as_str(), key)).await.wrap_err("recording the verification's progress")
    }

    /// A connection to the checkpoint table's server.
    pub async fn checkpoint_conn(&self) -> Result<Conn> {
        crate::engine::connection::connect(self.checkpoint_opts()).await.wrap_err("connecting for the verification checkpoint")
    }

    /// Where a verification continues: None from the start, `Some(key)` after that key; a completed pass reads
    /// back as [`COMPLETE`].
    pub async fn recorded(&self, conn: &mut Conn) -> Result<Option<String>> {
        let sql = format!("SELECT copy_watermark FROM {} WHERE id = ?", qualified(&self.job.checkpoint_db, &self.job.checkpoint_table));
        let v: Option<Option<String>> = conn.exec_first(sql, (self.checkpoint_row.as_str(),)).await.wrap_err("reading the verification's progress")?;
        Ok(v.flatten())
    }

    /// Copies a chunk's key range again: in one transaction, the ghost's rows of the range are deleted and the
    /// original's inserted, read under shared locks (writers to the range wait until it commits; their changes
    /// reach the applier after it). Returns the rows copied. Across servers the copy's cross-server order is kept
    /// (see `CopyJob::repair_across`).
    pub async fn repair(&self, range: &KeyRange) -> Result<u64> {
        if let Some(target) = &self.ghost_opts {
            let (gcond, gparams) = self.forms.ghost.range_where(range);
            let (ocond, oparams) = self.forms.original.range_where(range);
            let noop = crate::engine::failpoint::hit("verify-repair-noop").is_err();
            return self.job.repair_across(&self.opts, target, (&ocond, oparams), (&gcond, gparams), noop).await;
        }
        let mut conn = crate::engine::copy::session::copier_conn(&self.opts, self.job.writes).await?;
        let (gcond, gparams) = self.forms.ghost.range_where(range);
        let (ocond, oparams) = self.forms.original.range_where(range);
        let ghost_cols: Vec<String> = self.job.columns.iter().map(|(_, g)| crate::engine::sql::quote_ident(g)).collect();
        let orig_cols: Vec<String> = self.job.columns.iter().map(|(c, _)| crate::engine::sql::quote_ident(&c.name)).collect();
        let mut tx = conn.start_transaction(TxOpts::default()).await.wrap_err("starting a repair")?;
        // The original's range first: its shared locks hold the writers before the ghost's range is emptied.
        tx.exec_drop(format!("SELECT COUNT(*) FROM {}{} WHERE {ocond} LOCK IN SHARE MODE", self.forms.original.table, self.forms.original.hint), oparams.clone())
            .await
            .wrap_err("locking the original's range")?;
        tx.exec_drop(format!("DELETE FROM {} WHERE {gcond}", self.forms.ghost.table), gparams).await.wrap_err("emptying the ghost's range")?;
        if crate::engine::failpoint::hit("verify-repair-noop").is_err() {
            // Test aid: a repair that changes nothing, so the difference stays.
            tx.rollback().await?;
            return Ok(0);
        }
        let insert = format!(
            "INSERT INTO {} ({}) SELECT {} FROM {}{} WHERE {ocond} LOCK IN SHARE MODE",
            self.forms.ghost.table,
            ghost_cols.join(", "),
            orig_cols.join(", "),
            self.forms.original.table,
            self.forms.original.hint
        );
        tx.exec_drop(insert, oparams).await.wrap_err("copying the original's range again")?;
        let rows = tx.affected_rows();
        tx.commit().await.wrap_err("committing a repair")?;
        let _ = conn.disconnect().await;
        Ok(rows)
    }
}

/// A connection of the pool: UTC, REPEATABLE READ.
async fn snapshot_conn(opts: &Opts) -> Result<Conn> {
    let mut c = crate::engine::connection::connect(opts.clone()).await.wrap_err("connecting the verification pool")?;
    for set in ["SET SESSION time_zone = '+00:00'", "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"] {
        c.query_drop(set).await.wrap_err("setting the verification session")?;
    }
    Ok(c)
}

/// `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` on every connection (the originals' first, then the
/// ghosts': both while the original is locked).
async fn open_snapshots(pool: &mut [Snapshot]) -> Result<()> {
    const OPEN: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";
    for s in pool.iter_mut() {
        s.original.query_drop(OPEN).await.wrap_err("opening a consistent snapshot")?;
    }
    for g in pool.iter_mut().filter_map(|s| s.ghost.as_mut()) {
        g.query_drop(OPEN).await.wrap_err("opening a consistent snapshot on the ghost's server")?;
    }
    Ok(())
}

/// Ends the snapshots.
pub async fn end_snapshots(pool: Vec<Snapshot>) {
    for s in pool {
        for mut c in std::iter::once(s.original).chain(s.ghost) {
            let _ = c.query_drop("COMMIT").await;
            let _ = c.disconnect().await;
        }
    }
}

async fn sums(conn: &mut Conn, side: &Side, range: &KeyRange) -> Result<(u64, u64)> {
    let (sql, params) = side.checksum_sql(range);
    let row: Option<(u64, u64)> = conn.exec_first(sql, params).await.wrap_err_with(|| format!("checksum of {} over {}", side.table, range.describe()))?;
    Ok(row.unwrap_or((0, 0)))
}

async fn rows(conn: &mut Conn, side: &Side, range: &KeyRange) -> Result<BTreeMap<String, u64>> {
    let (sql, params) = side.rows_sql(range);
    let rows: Vec<(Option<Vec<u8>>, u64)> = conn.exec(sql, params).await.wrap_err_with(|| format!("reading the rows of {} over {}", side.table, range.describe()))?;
    Ok(rows.into_iter().map(|(k, c)| (String::from_utf8_lossy(&k.unwrap_or_default()).into_owned(), c)).collect())
}
