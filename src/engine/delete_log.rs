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
//! 2. Before the chunk commits, each key recorded since is checked: the ghost row is locked (`FOR UPDATE`), the
//!    original is read with a locking read (which waits for the delete's commit), and the ghost row is deleted when
//!    the original no longer holds the key. Locking the ghost row first closes the window in which the row could
//!    be inserted again: a later insert's event waits for the lock. Keys recorded after this check was read are
//!    deletes executed after the INSERT finished: they wait for the chunk's locks, or do not concern it.
//!
//! Everything in 2. happens in the chunk's transaction with its watermark, so a crash redoes the chunk, the check
//! included.

use std::sync::Mutex;

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;
use mysql_async::Value;

use super::applier::ApplyTarget;
use super::sql::{qualified, quote_ident};

/// At most this many keys in one locking read of step 1.
const PROBE_BATCH: usize = 500;

#[derive(Debug, Default)]
struct Entries {
    /// Key values as the applier's DELETE binds them, in the order recorded.
    keys: Vec<Vec<Value>>,
    /// False once the copy is complete: nothing is recorded any more.
    active: bool,
}

/// The keys deleted by the applier that the copy still has to account for, shared by the applier and the copier.
#[derive(Debug)]
pub struct DeleteLog {
    entries: Mutex<Entries>,
    /// `SELECT 1 FROM ghost WHERE key = ... FOR UPDATE`.
    lock_ghost_sql: String,
    /// `SELECT 1 FROM original WHERE key = ... LOCK IN SHARE MODE`.
    probe_original_sql: String,
    /// `DELETE FROM ghost WHERE key = ...` (the applier's own statement).
    delete_ghost_sql: String,
    /// `original`, the key's column names and their placeholders, for the batched locking read of step 1.
    original: String,
    key_names: Vec<String>,
    key_placeholders: Vec<String>,
}

impl DeleteLog {
    /// The log for the applier's `target` (the ghost table) whose rows come from `database.table`.
    pub fn new(target: &ApplyTarget, database: &str, table: &str, active: bool) -> DeleteLog {
        let ghost_conds: Vec<String> =
            target.key.iter().map(|(_, c, n)| format!("{} = {}", quote_ident(n), c.key_placeholder())).collect();
        let original_conds: Vec<String> =
            target.key.iter().map(|(_, c, _)| format!("{} = {}", quote_ident(&c.name), c.key_placeholder())).collect();
        let ghost = qualified(&target.database, &target.table);
        let original = qualified(database, table);
        DeleteLog {
            entries: Mutex::new(Entries { active, ..Entries::default() }),
            lock_ghost_sql: format!("SELECT 1 FROM {ghost} WHERE {} FOR UPDATE", ghost_conds.join(" AND ")),
            probe_original_sql: format!("SELECT 1 FROM {original} WHERE {} LOCK IN SHARE MODE", original_conds.join(" AND ")),
            delete_ghost_sql: format!("DELETE FROM {ghost} WHERE {}", ghost_conds.join(" AND ")),
            original,
            key_names: target.key.iter().map(|(_, c, _)| quote_ident(&c.name)).collect(),
            key_placeholders: target.key.iter().map(|(_, c, _)| c.key_placeholder()).collect(),
        }
    }

    /// The applier is about to delete `key` from the ghost table.
    pub fn record(&self, key: &[Value]) {
        if let Ok(mut e) = self.entries.lock() {
            if e.active {
                e.keys.push(key.to_vec());
            }
        }
    }

    /// The copy is complete: stop recording.
    pub fn deactivate(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.active = false;
            e.keys.clear();
        }
    }

    fn snapshot(&self) -> Vec<Vec<Value>> {
        self.entries.lock().map(|e| e.keys.clone()).unwrap_or_default()
    }

    /// Step 1, on the copier's connection outside any transaction, right before a chunk's transaction starts:
    /// waits until every delete recorded so far is committed on the original, then forgets those keys.
    pub async fn settle(&self, conn: &mut mysql_async::Conn) -> Result<usize> {
        let keys = self.snapshot();
        if keys.is_empty() {
            return Ok(0);
        }
        let tuple = |phs: &[String]| if phs.len() == 1 { phs[0].clone() } else { format!("({})", phs.join(", ")) };
        let lhs = tuple(&self.key_names);
        for batch in keys.chunks(PROBE_BATCH) {
            let list = vec![tuple(&self.key_placeholders); batch.len()].join(", ");
            let sql = format!("SELECT COUNT(*) FROM {} WHERE {lhs} IN ({list}) LOCK IN SHARE MODE", self.original);
            let params: Vec<Value> = batch.iter().flatten().cloned().collect();
            let _: Option<u64> = conn
                .exec_first(sql, params)
                .await
                .wrap_err("waiting for the commit of rows the applier deleted (a locking read of the original)")?;
        }
        if let Ok(mut e) = self.entries.lock() {
            let n = keys.len().min(e.keys.len());
            e.keys.drain(..n);
        }
        Ok(keys.len())
    }

    /// Step 2, in the chunk's transaction after its INSERT: removes from the ghost table every row whose key the
    /// applier deleted since step 1 and that the original no longer holds. Returns (keys checked, rows removed).
    pub async fn recheck(&self, tx: &mut mysql_async::Transaction<'_>) -> Result<(usize, u64)> {
        let keys = self.snapshot();
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
            original: String::new(),
            key_names: vec!["`id`".into()],
            key_placeholders: vec!["?".into()],
        }
    }

    #[test]
    fn keys_are_kept_until_settled_and_not_recorded_after_the_copy() {
        let l = log();
        l.record(&[Value::Int(1)]);
        l.record(&[Value::Int(2)]);
        assert_eq!(l.snapshot().len(), 2);
        l.deactivate();
        assert!(l.snapshot().is_empty());
        l.record(&[Value::Int(3)]);
        assert!(l.snapshot().is_empty());
    }
}
