//! What lets the row copy run without locking the original table: the keys the applier deletes, and the checks
//! that keep a deleted row from coming back through a chunk.
//!
//! A chunk is copied with `INSERT IGNORE ... SELECT` at READ COMMITTED: the SELECT is a consistent read of the
//! original table (no shared locks, so the application's writes never wait for the copy) taken when the statement
//! starts. Every ghost row the chunk inserts, or finds already there, stays locked by the chunk's transaction
//! until it commits, so the applier's later writes to those rows wait and land on top of the copy. Inserts and
//! updates are therefore exact whatever the order. A delete is not: when the applier deletes a row before the
//! chunk's INSERT reaches it, the delete finds nothing, and the chunk then inserts the row from its older read.
//!
//! The server writes a transaction to the binary log before InnoDB commits it, so the applier can see (and apply)
//! a delete that a read view taken a moment later still does not see. Two checks close both gaps; the applier
//! records every key it deletes before executing the delete:
//! 1. Before a chunk's transaction starts, the keys recorded so far are read from the original with a locking read
//!    (`LOCK IN SHARE MODE`, autocommit, so no lock outlives the statement): it returns only once those deletes
//!    are committed, so the chunk's read, taken after, cannot see those rows. Those keys are then forgotten.
//! 2. Before the chunk commits, the keys recorded since are checked, a batch at a time: their ghost rows are locked
//!    (`FOR UPDATE`), the original is read with a locking read (which waits for the deletes' commit), and the ghost
//!    rows whose key the original no longer holds are deleted. Locking the ghost rows first closes the window in
//!    which a row could be inserted again: a later insert's event waits for the lock. Keys recorded after this check was read are
//!    deletes executed after the INSERT finished: they wait for the chunk's locks, or do not concern it.
//!
//! Everything in 2. happens in the chunk's transaction with its watermark, so a crash redoes the chunk, the check
//! included.
//!
//! Several copy workers (`--copy-threads`, see `copy::parallel`): every key gets a sequence number, and each worker
//! keeps its own cursor, the sequence its last step 1 reached. A worker's step 1 waits for the keys from its cursor
//! on and moves the cursor; its step 2 checks the keys from its cursor on. So each worker sees exactly the keys it
//! would see alone, whatever the others do; a key is forgotten only once every worker's cursor passed it (a worker
//! that joins starts at the oldest key kept: keys forgotten before were found committed by a step 1 already, and a
//! commit holds for every reader). A worker's step 2 also checks keys of the others' ranges: harmless (it removes
//! only ghost rows the original no longer holds), and when two workers lock each other's ghost rows the server
//! picks one as a deadlock victim, whose chunk is rolled back and copied again (retried as any deadlock).
//!
//! Bounded memory: the log holds at most [`DELETE_LOG_BYTES`] of keys. While the copy is throttled or paused
//! nothing settles them, and one large DELETE records every key it removes, so the log can pass that bound. It
//! then overflows: its keys are dropped, nothing more is recorded until the copy ends, and every chunk from then on
//! reads the original under shared locks (`LOCK IN SHARE MODE`, gh-ost's way), which is exact without any log: a
//! locking read returns the latest committed rows and waits for a delete that is logged but not yet committed, and
//! a delete after it waits for the chunk's commit, so it lands on top. The chunk in flight when the log overflows
//! may miss keys in its step 2: step 2 refuses to run on an overflowed log (checked when it starts and before each
//! batch of keys), the chunk's transaction is rolled back and the chunk copied again under locks. Overflow is
//! sticky, so a step 2 that started on a log that had not overflowed saw every key recorded since its step 1.
//! Why not fewer keys: the log could skip keys beyond the copy's range end or below its watermark, but comparing
//! keys in the server's order (collations) outside the server is not exact, and keys inside the range left to copy
//! are exactly the ones that grow while the copy is paused; locking reads are the exact fallback.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::Mutex;

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;
use mysql_async::Value;

use crate::engine::apply::applier::ApplyTarget;
use crate::engine::sql::{qualified, quote_ident};

/// At most this many keys in one statement of either step.
const BATCH: usize = 500;

/// The bytes of keys the log holds at most (as [`key_weight`] estimates them) before it overflows.
pub const DELETE_LOG_BYTES: usize = 8 << 20;

#[derive(Debug, Default)]
struct Entries {
    /// Key values as the applier's DELETE binds them, in the order recorded; `keys[0]` has sequence `base`.
    keys: VecDeque<Vec<Value>>,
    base: u64,
    /// Each copy worker's cursor: the sequence its last step 1 reached (see the module doc).
    cursors: BTreeMap<usize, u64>,
    /// What `keys` weigh.
    bytes: usize,
    /// False once the copy is complete: nothing is recorded any more.
    active: bool,
    /// The log passed its bound: keys dropped, nothing recorded, chunks read under locks (see the module doc).
    overflowed: bool,
}

/// Roughly what one recorded key holds in memory.
fn key_weight(key: &[Value]) -> usize {
    let value = |v: &Value| std::mem::size_of::<Value>() + if let Value::Bytes(b) = v { b.len() + 16 } else { 0 };
    40 + key.iter().map(value).sum::<usize>()
}

/// The keys deleted by the applier that the copy still has to account for, shared by the applier and the copier.
#[derive(Debug)]
pub struct DeleteLog {
    entries: Mutex<Entries>,
    /// [`DELETE_LOG_BYTES`] (smaller in tests).
    budget: usize,
    /// `db.ghost` and `db.original`, qualified.
    ghost: String,
    original: String,
    /// The key as the ghost and the original name it, `a` or `(a, b)`.
    ghost_key: String,
    original_key: String,
    /// The original's key columns as a select list, `a, b`.
    original_columns: String,
    /// One key's placeholders, as the applier's DELETE binds them: `?` or `(?, ?)`.
    key_placeholders: String,
}

impl DeleteLog {
    /// The log for the applier's `target` (the ghost table) whose rows come from `database.table`.
    pub fn new(target: &ApplyTarget, database: &str, table: &str, active: bool) -> DeleteLog {
        let tuple = |items: Vec<String>| if items.len() == 1 { items.concat() } else { format!("({})", items.join(", ")) };
        DeleteLog {
            entries: Mutex::new(Entries { active, ..Entries::default() }),
            budget: DELETE_LOG_BYTES,
            ghost: qualified(&target.database, &target.table),
            original: qualified(database, table),
            ghost_key: tuple(target.key.iter().map(|(_, _, n)| quote_ident(n)).collect()),
            original_key: tuple(target.key.iter().map(|(_, c, _)| quote_ident(&c.name)).collect()),
            original_columns: target.key.iter().map(|(_, c, _)| quote_ident(&c.name)).collect::<Vec<_>>().join(", "),
            key_placeholders: tuple(target.key.iter().map(|(_, c, _)| c.key_placeholder()).collect()),
        }
    }

    /// `<key> IN (<placeholders> x n)`.
    fn key_in(&self, key: &str, n: usize) -> String {
        format!("{key} IN ({})", vec![self.key_placeholders.as_str(); n].join(", "))
    }

    /// The applier is about to delete `key` from the ghost table.
    pub fn record(&self, key: &[Value]) {
        let Ok(mut e) = self.entries.lock() else { return };
        if !e.active || e.overflowed {
            return;
        }
        let w = key_weight(key);
        if e.bytes + w > self.budget {
            tracing::warn!(
                "the applier deleted {} keys of {} the copy has not settled yet (more than {} KiB): the rest of the \
                 copy reads its chunks under shared locks (LOCK IN SHARE MODE, gh-ost's way) instead of keeping them",
                e.keys.len() + 1,
                self.original,
                self.budget / 1024
            );
            crate::engine::failpoint::trace(&format!("delete-log-overflow {}", e.keys.len() + 1));
            e.base += e.keys.len() as u64;
            (e.keys, e.bytes, e.overflowed) = (VecDeque::new(), 0, true);
            return;
        }
        e.bytes += w;
        e.keys.push_back(key.to_vec());
    }

    /// Copy worker `worker` starts: its cursor is the oldest key kept (see the module doc).
    pub fn join(&self, worker: usize) {
        if let Ok(mut e) = self.entries.lock() {
            let base = e.base;
            e.cursors.insert(worker, base);
        }
    }

    /// Copy worker `worker` is done: keys only it still needed are forgotten.
    pub fn leave(&self, worker: usize) {
        if let Ok(mut e) = self.entries.lock() {
            e.cursors.remove(&worker);
            e.forget_passed();
        }
    }

    /// The copy is complete: stop recording.
    pub fn deactivate(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.active = false;
            e.base += e.keys.len() as u64;
            (e.keys, e.bytes) = (VecDeque::new(), 0);
        }
    }

    /// True once the log passed its bound: chunks must read under shared locks (see the module doc).
    pub fn overflowed(&self) -> bool {
        self.entries.lock().map(|e| e.overflowed).unwrap_or(true)
    }

    /// The sequence after the last key recorded (None: overflowed).
    fn recorded(&self) -> Option<u64> {
        self.entries.lock().ok().filter(|e| !e.overflowed).map(|e| e.base + e.keys.len() as u64)
    }

    /// Where `worker`'s keys begin (a worker that never joined: at the oldest key kept).
    fn cursor(&self, worker: usize) -> u64 {
        self.entries.lock().map(|e| e.cursors.get(&worker).copied().unwrap_or(e.base)).unwrap_or(0)
    }

    /// Keys of sequences `from..to` (at most [`BATCH`]) as one parameter list with their count; None once
    /// overflowed.
    fn batch(&self, from: u64, to: u64) -> Option<(u64, Vec<Value>)> {
        let e = self.entries.lock().ok().filter(|e| !e.overflowed)?;
        // A cursor below the oldest key kept never happens for a joined worker (keys go only once every joined
        // cursor passed them); an unjoined one starts there.
        let start = from.max(e.base).saturating_sub(e.base) as usize;
        let end = (to.saturating_sub(e.base) as usize).min(start + BATCH).min(e.keys.len());
        let keys: Vec<&Vec<Value>> = e.keys.range(start.min(end)..end).collect();
        Some((keys.len() as u64, keys.into_iter().flatten().cloned().collect()))
    }

    /// Step 1, on the copier's connection outside any transaction, right before a chunk's transaction starts:
    /// waits until every delete recorded so far is committed on the original, then moves `worker`'s cursor past
    /// those keys (forgotten once no worker needs them). Stops early on an overflowed log (the chunk's step 2 then
    /// refuses, see the module doc).
    pub async fn settle(&self, worker: usize, conn: &mut mysql_async::Conn) -> Result<u64> {
        let Some(n) = self.recorded() else { return Ok(0) };
        let from = self.cursor(worker);
        let mut done = from;
        while done < n {
            let Some((count, params)) = self.batch(done, n).filter(|(c, _)| *c > 0) else { break };
            let sql = format!("SELECT COUNT(*) FROM {} WHERE {} LOCK IN SHARE MODE", self.original, self.key_in(&self.original_key, count as usize));
            let _: Option<u64> = conn
                .exec_first(sql, params)
                .await
                .wrap_err("waiting for the commit of rows the applier deleted (a locking read of the original)")?;
            done += count;
        }
        if let Ok(mut e) = self.entries.lock() {
            e.cursors.insert(worker, done);
            e.forget_passed();
        }
        Ok(done - from)
    }

    /// Step 2, in the chunk's transaction after its INSERT: removes from the ghost table every row whose key the
    /// applier deleted since step 1 and that the original no longer holds. Per batch of keys: lock the ghost rows,
    /// read which keys the original still holds (a locking read: it waits for the deletes' commit), delete the
    /// others from the ghost. The keys the original holds are bound back as it returned them, with the same
    /// placeholders as the applier's DELETE. Returns (keys checked, rows removed), or None when the log overflowed
    /// before or during the check: the chunk must then be rolled back and copied under locks.
    pub async fn recheck(&self, worker: usize, tx: &mut mysql_async::Transaction<'_>) -> Result<Option<(u64, u64)>> {
        let Some(n) = self.recorded() else { return Ok(None) };
        let from = self.cursor(worker);
        let mut removed = 0u64;
        let mut done = from;
        while done < n {
            let Some((count, params)) = self.batch(done, n).filter(|(c, _)| *c > 0) else { return Ok(None) };
            done += count;
            let count = count as usize;
            let in_ghost = self.key_in(&self.ghost_key, count);
            let _: Vec<u8> = tx
                .exec(format!("SELECT 1 FROM {} WHERE {in_ghost} FOR UPDATE", self.ghost), params.clone())
                .await
                .wrap_err("locking ghost rows the applier deleted")?;
            let held: Vec<mysql_async::Row> = tx
                .exec(
                    format!(
                        "SELECT {} FROM {} WHERE {} LOCK IN SHARE MODE",
                        self.original_columns,
                        self.original,
                        self.key_in(&self.original_key, count)
                    ),
                    params.clone(),
                )
                .await
                .wrap_err("reading which deleted rows the original still holds")?;
            let mut sql = format!("DELETE FROM {} WHERE {in_ghost}", self.ghost);
            let mut delete_params = params;
            if !held.is_empty() {
                sql.push_str(&format!(" AND NOT {}", self.key_in(&self.ghost_key, held.len())));
                delete_params.extend(held.into_iter().flat_map(mysql_async::Row::unwrap));
            }
            tx.exec_drop(sql, delete_params).await.wrap_err("removing deleted rows the chunk copied")?;
            removed += tx.affected_rows();
        }
        Ok(Some((n.saturating_sub(from), removed)))
    }
}

impl Entries {
    /// Drops the keys every joined worker's cursor passed (none while no worker is joined).
    fn forget_passed(&mut self) {
        let Some(&least) = self.cursors.values().min() else { return };
        while self.base < least {
            let Some(k) = self.keys.pop_front() else { break };
            self.bytes = self.bytes.saturating_sub(key_weight(&k));
            self.base += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> DeleteLog {
        DeleteLog {
            entries: Mutex::new(Entries { active: true, ..Entries::default() }),
            budget: 1000,
            ghost: "`d`.`_t_gho`".into(),
            original: "`d`.`t`".into(),
            ghost_key: "(`a`, `b`)".into(),
            original_key: "(`a`, `b`)".into(),
            original_columns: "`a`, `b`".into(),
            key_placeholders: "(?, ?)".into(),
        }
    }

    #[test]
    fn a_composite_key_goes_in_as_a_row_constructor() {
        assert_eq!(log().key_in("(`a`, `b`)", 2), "(`a`, `b`) IN ((?, ?), (?, ?))");
    }

    #[test]
    fn keys_are_kept_until_settled_and_not_recorded_after_the_copy() {
        let l = log();
        l.record(&[Value::Int(1)]);
        l.record(&[Value::Int(2)]);
        assert_eq!(l.recorded(), Some(2));
        assert_eq!(l.batch(0, 2).map(|(n, p)| (n, p.len())), Some((2, 2)));
        l.deactivate();
        assert_eq!(l.recorded(), Some(2), "the sequence goes on");
        assert!(l.entries.lock().unwrap().keys.is_empty(), "nothing kept after the copy");
        l.record(&[Value::Int(3)]);
        assert_eq!(l.recorded(), Some(2));
    }

    /// What settle does after its locking reads: the worker's cursor moves, and keys go once every cursor passed.
    fn settled(l: &DeleteLog, worker: usize, to: u64) {
        let mut e = l.entries.lock().unwrap();
        e.cursors.insert(worker, to);
        e.forget_passed();
    }

    #[test]
    fn each_worker_sees_the_keys_recorded_since_its_own_step_one() {
        let l = log();
        l.join(0);
        l.join(1);
        for i in 1..=3 {
            l.record(&[Value::Int(i)]);
        }
        settled(&l, 0, 3);
        assert_eq!(l.entries.lock().unwrap().keys.len(), 3, "worker 1 has not settled: every key is kept");
        l.record(&[Value::Int(4)]);
        assert_eq!((l.cursor(0), l.recorded()), (3, Some(4)));
        assert_eq!(l.batch(l.cursor(0), 4), Some((1, vec![Value::Int(4)])), "worker 0 checks key 4 only");
        assert_eq!(l.batch(l.cursor(1), 4).map(|(n, _)| n), Some(4), "worker 1 checks all four");
        settled(&l, 1, 2);
        let e = l.entries.lock().unwrap();
        assert_eq!((e.base, e.keys.len()), (2, 2), "keys 1 and 2 are passed by both cursors and forgotten");
        drop(e);
        assert_eq!(l.batch(2, 4), Some((2, vec![Value::Int(3), Value::Int(4)])), "sequences stay stable");
        l.leave(1);
        let e = l.entries.lock().unwrap();
        assert_eq!((e.base, e.keys.len()), (3, 1), "once worker 1 left, only worker 0's cursor counts");
    }

    #[test]
    fn a_worker_that_joins_late_starts_at_the_oldest_key_kept() {
        let l = log();
        l.join(0);
        l.record(&[Value::Int(1)]);
        l.record(&[Value::Int(2)]);
        settled(&l, 0, 1);
        l.join(1);
        assert_eq!(l.cursor(1), 1, "key 1 was found committed by worker 0's step 1");
        assert_eq!(l.batch(l.cursor(1), 2).map(|(n, _)| n), Some(1));
        assert_eq!(l.cursor(7), 1, "a worker that never joined reads from the oldest key kept");
    }

    #[test]
    fn past_its_bound_the_log_drops_its_keys_and_records_no_more() {
        let l = log();
        let key = [Value::Int(7)];
        let fit = 1000 / key_weight(&key);
        for _ in 0..fit {
            l.record(&key);
        }
        assert_eq!(l.recorded(), Some(fit as u64), "keys within the bound are kept");
        assert!(!l.overflowed());
        l.record(&key);
        assert!(l.overflowed(), "one key past the bound overflows the log");
        assert_eq!(l.recorded(), None, "an overflowed log offers no keys to check");
        assert!(l.batch(0, 10).is_none());
        l.record(&key);
        assert!(l.entries.lock().unwrap().keys.is_empty(), "nothing is recorded after the overflow");
    }
}
