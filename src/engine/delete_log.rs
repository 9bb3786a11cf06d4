//! What lets the row copy run without locking the original table: the keys the applier deletes while a chunk
//! is being copied, and the check that keeps such a row from coming back.
//!
//! A chunk is copied with `INSERT IGNORE ... SELECT` at READ COMMITTED: the SELECT is a consistent read of the
//! original table (no shared locks, so the application's writes never wait for the copy) taken when the statement
//! starts. Every ghost row the chunk inserts, or finds already there, stays locked by the chunk's transaction
//! until it commits, so the applier's later writes to those rows wait and land on top of the copy. Inserts and
//! updates are therefore exact whatever the order. A delete is not: when the applier deletes a row before the
//! chunk's INSERT reaches it, the delete finds nothing, and the chunk then inserts the row from its older read.
//! So the applier records every key it deletes (before executing the delete), and before the chunk commits the
//! copier takes the keys recorded while it ran and, for each, locks the ghost row (`FOR UPDATE`), reads whether the
//! original still holds the key (latest committed), and deletes the ghost row when it does not. Locking the ghost
//! row before reading the original closes the window in which the row could be inserted again: a later insert's
//! event waits for the lock. Everything happens in the chunk's transaction with its watermark, so a crash redoes
//! the chunk, the check included.

use std::collections::VecDeque;
use std::sync::Mutex;

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;
use mysql_async::Value;

use super::applier::ApplyTarget;
use super::sql::{qualified, quote_ident};

#[derive(Debug, Default)]
struct Entries {
    /// (sequence number, key values as the applier's DELETE binds them).
    keys: VecDeque<(u64, Vec<Value>)>,
    next_seq: u64,
    /// Every entry below this sequence number was executed and committed by the applier.
    executed_below: u64,
    /// A chunk's INSERT may be running: no entry may be dropped, executed or not.
    chunk_in_flight: bool,
    /// False once the copy is complete: nothing is recorded any more.
    active: bool,
}

impl Entries {
    fn prune_executed(&mut self) {
        while self.keys.front().is_some_and(|(seq, _)| *seq < self.executed_below) {
            self.keys.pop_front();
        }
    }
}

/// The keys deleted by the applier that a chunk in flight has to check, shared by the applier and the copier.
#[derive(Debug)]
pub struct DeleteLog {
    entries: Mutex<Entries>,
    /// `SELECT 1 FROM ghost WHERE key = ... FOR UPDATE`.
    lock_ghost_sql: String,
    /// `SELECT 1 FROM original WHERE key = ...`.
    probe_original_sql: String,
    /// `DELETE FROM ghost WHERE key = ...` (the applier's own statement).
    delete_ghost_sql: String,
}

/// Marks a chunk in flight for as long as it lives (see [`DeleteLog::chunk_begins`]).
pub struct ChunkInFlight<'a> {
    log: &'a DeleteLog,
}

impl Drop for ChunkInFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut e) = self.log.entries.lock() {
            e.chunk_in_flight = false;
            e.prune_executed();
        }
    }
}

impl DeleteLog {
    /// The log for the applier's `target` (the ghost table) whose rows come from `database.table`.
    pub fn new(target: &ApplyTarget, database: &str, table: &str, active: bool) -> DeleteLog {
        let ghost_conds: Vec<String> =
            target.key.iter().map(|(_, c, n)| format!("{} = {}", quote_ident(n), c.key_placeholder())).collect();
        let original_conds: Vec<String> =
            target.key.iter().map(|(_, c, _)| format!("{} = {}", quote_ident(&c.name), c.key_placeholder())).collect();
        let ghost = qualified(&target.database, &target.table);
        DeleteLog {
            entries: Mutex::new(Entries { active, ..Entries::default() }),
            lock_ghost_sql: format!("SELECT 1 FROM {ghost} WHERE {} FOR UPDATE", ghost_conds.join(" AND ")),
            probe_original_sql: format!("SELECT 1 FROM {} WHERE {}", qualified(database, table), original_conds.join(" AND ")),
            delete_ghost_sql: format!("DELETE FROM {ghost} WHERE {}", ghost_conds.join(" AND ")),
        }
    }

    /// The applier is about to delete `key` from the ghost table.
    pub fn record(&self, key: &[Value]) {
        if let Ok(mut e) = self.entries.lock() {
            if !e.active {
                return;
            }
            let seq = e.next_seq;
            e.next_seq += 1;
            e.keys.push_back((seq, key.to_vec()));
            if !e.chunk_in_flight {
                e.prune_executed();
            }
        }
    }

    /// The sequence number the next recorded key gets: after the applier commits a batch, every key it recorded
    /// below this is executed (see [`executed_below`](Self::executed_below)).
    pub fn next_seq(&self) -> u64 {
        self.entries.lock().map(|e| e.next_seq).unwrap_or(0)
    }

    /// The applier committed every delete recorded below `seq`.
    pub fn executed_below(&self, seq: u64) {
        if let Ok(mut e) = self.entries.lock() {
            e.executed_below = e.executed_below.max(seq);
            if !e.chunk_in_flight {
                e.prune_executed();
            }
        }
    }

    /// Call before a chunk's INSERT starts (before its read view exists); the chunk is in flight until the guard
    /// is dropped, after its transaction ended. Deletes executed before this cannot reach the chunk: the chunk
    /// reads the original after them.
    pub fn chunk_begins(&self) -> ChunkInFlight<'_> {
        if let Ok(mut e) = self.entries.lock() {
            e.prune_executed();
            e.chunk_in_flight = true;
        }
        ChunkInFlight { log: self }
    }

    /// The copy is complete: stop recording.
    pub fn deactivate(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.active = false;
            e.keys.clear();
        }
    }

    /// In the chunk's transaction, after its INSERT: removes from the ghost table every row whose key the applier
    /// deleted meanwhile and that the original no longer holds. Returns (keys checked, rows removed).
    pub async fn recheck(&self, tx: &mut mysql_async::Transaction<'_>) -> Result<(usize, u64)> {
        let keys: Vec<Vec<Value>> = match self.entries.lock() {
            Ok(e) => e.keys.iter().map(|(_, k)| k.clone()).collect(),
            Err(_) => Vec::new(),
        };
        let mut removed = 0u64;
        for key in &keys {
            let in_ghost: Option<u8> =
                tx.exec_first(&self.lock_ghost_sql, key.clone()).await.wrap_err("locking a ghost row the applier deleted")?;
            if in_ghost.is_none() {
                continue;
            }
            let in_original: Option<u8> = tx
                .exec_first(&self.probe_original_sql, key.clone())
                .await
                .wrap_err("reading whether the original still holds a deleted row")?;
            if in_original.is_some() {
                continue;
            }
            tx.exec_drop(&self.delete_ghost_sql, key.clone()).await.wrap_err("removing a deleted row the chunk copied")?;
            removed += tx.affected_rows();
        }
        Ok((keys.len(), removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> DeleteLog {
        DeleteLog {
            entries: Mutex::new(Entries { active: true, ..Entries::default() }),
            lock_ghost_sql: String::new(),
            probe_original_sql: String::new(),
            delete_ghost_sql: String::new(),
        }
    }

    fn held(l: &DeleteLog) -> usize {
        l.entries.lock().map(|e| e.keys.len()).unwrap_or(0)
    }

    #[test]
    fn keys_stay_while_a_chunk_is_in_flight_or_not_yet_executed() {
        let l = log();
        l.record(&[Value::Int(1)]);
        let upto = l.next_seq();
        // Recorded but not committed by the applier: kept, even with no chunk in flight.
        assert_eq!(held(&l), 1);
        {
            let _chunk = l.chunk_begins();
            l.executed_below(upto);
            l.record(&[Value::Int(2)]);
            // A chunk is in flight: nothing is dropped, executed or not.
            assert_eq!(held(&l), 2);
        }
        // The chunk ended: the executed key goes, the one not yet committed stays.
        assert_eq!(held(&l), 1);
        l.executed_below(l.next_seq());
        assert_eq!(held(&l), 0);
        l.deactivate();
        l.record(&[Value::Int(3)]);
        assert_eq!(held(&l), 0);
    }
}
