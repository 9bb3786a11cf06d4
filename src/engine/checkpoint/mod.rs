//! The checkpoint table `_<t>_ghk`, kept on the server that holds the ghost table. Rows:
//! - `summary`: what is migrated (fingerprints of the ALTER and of the original table), phase, cut-over fields;
//! - `copy`: the copy watermark (last key copied), written in the same transaction as the chunk it covers; a
//!   parallel copy adds `copy#2`, `copy#3`, ... (one per slice of the key range, see `copy::parallel`);
//! - `apply`: the applied binlog position (GTID set, file:pos), written in the same transaction as the batch; a
//!   parallel apply adds `apply#2`, `apply#3`, ... (one per writer connection, see `apply::applier`): every row
//!   holds the position of the last batch its connection committed, the rows differ by one batch at most, and a
//!   resume continues from the least (the row with the fewest `batches_applied`).
//! - `old-table`: the name the original is renamed to at the cut-over (`table_name`), fixed when the run starts.
//!
//! move-tables adds one `copy:<table>` row per table. `SELECT * FROM _<t>_ghk` tells a person where things stand.

use color_eyre::eyre::{eyre, Result, WrapErr};
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::sql::qualified;

pub const SUMMARY: &str = "summary";
pub const COPY: &str = "copy";
pub const APPLY: &str = "apply";
pub const OLD_TABLE: &str = "old-table";
/// Present when the migration was started with `--checkpoint`: the table is kept after the swap (for `--revert`),
/// whatever flags a resume of it is given.
pub const KEEP: &str = "keep";

/// DDL of the checkpoint table.
pub fn create_statement(db: &str, table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (
  id VARCHAR(96) NOT NULL PRIMARY KEY COMMENT 'summary | copy | copy#<n> | apply | apply#<n> | old-table | keep | copy:<table>',
  phase VARCHAR(32) NULL,
  database_name VARCHAR(64) NULL,
  table_name VARCHAR(64) NULL,
  ghost_table VARCHAR(64) NULL,
  alter_statement TEXT NULL,
  alter_fingerprint CHAR(64) NULL,
  table_fingerprint CHAR(64) NULL,
  tool_version VARCHAR(32) NULL,
  copy_range_start TEXT NULL COMMENT 'first key at copy start (JSON)',
  copy_range_end TEXT NULL COMMENT 'last key at copy start (JSON)',
  copy_watermark TEXT NULL COMMENT 'last key copied (JSON); NULL = nothing copied yet',
  copy_complete TINYINT NOT NULL DEFAULT 0,
  rows_copied BIGINT UNSIGNED NOT NULL DEFAULT 0,
  chunks_copied BIGINT UNSIGNED NOT NULL DEFAULT 0,
  rows_estimate BIGINT UNSIGNED NOT NULL DEFAULT 0,
  applied_gtid_set TEXT NULL,
  applied_file VARCHAR(255) NULL,
  applied_pos BIGINT UNSIGNED NULL,
  events_applied BIGINT UNSIGNED NOT NULL DEFAULT 0,
  batches_applied BIGINT UNSIGNED NOT NULL DEFAULT 0,
  cutover_started DATETIME(6) NULL,
  drain_gtid TEXT NULL,
  cutover_complete TINYINT NOT NULL DEFAULT 0,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='revenant checkpoint'",
        qualified(db, table)
    )
}

/// SHA-256 hex of text (fingerprints).
pub fn fingerprint(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The original table's definition fingerprint: its CREATE statement without the AUTO_INCREMENT counter (which
/// moves with every insert).
pub fn table_fingerprint(create_statement: &str) -> String {
    let cleaned: Vec<&str> = create_statement
        .split_whitespace()
        .filter(|w| !w.to_ascii_uppercase().starts_with("AUTO_INCREMENT="))
        .collect();
    fingerprint(&cleaned.join(" "))
}

/// A key value that survives a round trip through the checkpoint table with its type intact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyValue {
    Null,
    Int(i64),
    Uint(u64),
    Float(f32),
    Double(f64),
    /// Bytes as hex.
    Bytes(String),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl From<&Value> for KeyValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::NULL => KeyValue::Null,
            Value::Int(i) => KeyValue::Int(*i),
            Value::UInt(u) => KeyValue::Uint(*u),
            Value::Float(f) => KeyValue::Float(*f),
            Value::Double(d) => KeyValue::Double(*d),
            Value::Bytes(b) => KeyValue::Bytes(hex::encode(b)),
            Value::Date(y, m, d, h, mi, s, us) => KeyValue::Date(*y, *m, *d, *h, *mi, *s, *us),
            Value::Time(n, d, h, m, s, us) => KeyValue::Time(*n, *d, *h, *m, *s, *us),
        }
    }
}

impl KeyValue {
    pub fn to_value(&self) -> Result<Value> {
        Ok(match self {
            KeyValue::Null => Value::NULL,
            KeyValue::Int(i) => Value::Int(*i),
            KeyValue::Uint(u) => Value::UInt(*u),
            KeyValue::Float(f) => Value::Float(*f),
            KeyValue::Double(d) => Value::Double(*d),
            KeyValue::Bytes(h) => Value::Bytes(hex::decode(h).map_err(|e| eyre!("bad hex in checkpoint key: {e}"))?),
            KeyValue::Date(y, m, d, h, mi, s, us) => Value::Date(*y, *m, *d, *h, *mi, *s, *us),
            KeyValue::Time(n, d, h, m, s, us) => Value::Time(*n, *d, *h, *m, *s, *us),
        })
    }
}

/// Encodes a key tuple as JSON text for the checkpoint table.
pub fn encode_key(values: &[Value]) -> String {
    let kv: Vec<KeyValue> = values.iter().map(KeyValue::from).collect();
    serde_json::to_string(&kv).unwrap_or_else(|_| "[]".to_string())
}

/// Decodes a key tuple written by [`encode_key`].
pub fn decode_key(text: &str) -> Result<Vec<Value>> {
    let kv: Vec<KeyValue> = serde_json::from_str(text).wrap_err("decoding a key from the checkpoint table")?;
    kv.iter().map(KeyValue::to_value).collect()
}

/// A human form of a key tuple for logs and status.
pub fn describe_key(values: &[Value]) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
                _ => format!("0x{}", hex::encode(b)),
            },
            other => other.as_sql(true),
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// The whole checkpoint as read back on resume.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    pub phase: String,
    pub database_name: String,
    pub table_name: String,
    pub alter_statement: String,
    pub alter_fingerprint: String,
    pub table_fingerprint: String,
    pub tool_version: String,
    pub copy_range_start: Option<String>,
    pub copy_range_end: Option<String>,
    pub copy_watermark: Option<String>,
    pub copy_complete: bool,
    pub rows_copied: u64,
    pub chunks_copied: u64,
    pub rows_estimate: u64,
    pub applied_gtid_set: String,
    pub applied_file: String,
    pub applied_pos: u64,
    pub events_applied: u64,
    pub batches_applied: u64,
    pub cutover_started: bool,
    pub drain_gtid: Option<String>,
    pub cutover_complete: bool,
    /// The `old-table` row's name (None: a checkpoint written before that row existed, so `_<t>_del`).
    pub old_table: Option<String>,
    /// A parallel copy's slices in order, the `copy` row first (empty: a checkpoint of one slice). With slices,
    /// `copy_complete`, `rows_copied` and `chunks_copied` above are over all of them; `copy_watermark` and
    /// `copy_range_end` stay the first slice's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slices: Vec<CopySliceState>,
    /// A parallel apply's position rows stand one batch apart (a crash between its parts' commits): the writers
    /// ahead apply that batch again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub apply_rows_apart: bool,
}

/// One copy slice's row (`copy` or `copy#<n>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CopySliceState {
    pub row: String,
    pub range_end: Option<String>,
    pub watermark: Option<String>,
    pub complete: bool,
    pub rows_copied: u64,
}

/// The slice index of a `copy#<n>` row id (`copy` is 0).
pub fn slice_index(id: &str) -> Option<usize> {
    match id {
        COPY => Some(0),
        _ => id.strip_prefix(COPY)?.strip_prefix('#')?.parse::<usize>().ok().filter(|n| *n >= 2).map(|n| n - 1),
    }
}

/// The position row of writer connection `k` (0-based): `apply`, then `apply#2`, `apply#3`, ...
pub fn apply_row(k: usize) -> String {
    match k {
        0 => APPLY.to_string(),
        _ => format!("{APPLY}#{}", k + 1),
    }
}

/// The writer index of an `apply` / `apply#<n>` row id.
pub fn apply_index(id: &str) -> Option<usize> {
    match id {
        APPLY => Some(0),
        _ => id.strip_prefix(APPLY)?.strip_prefix('#')?.parse::<usize>().ok().filter(|n| *n >= 2).map(|n| n - 1),
    }
}

/// A position row as stored: (id, GTID set, file, pos, events, batches).
type StoredApplyRow = (String, Option<String>, Option<String>, Option<u64>, u64, u64);

/// One position row as read: (batches committed, GTID set, file, pos, events).
type ApplyRow = (u64, String, String, u64, u64);

/// Sets the position rows up for `writers` connections, in one transaction: every row gets the least position
/// recorded (fewest batches; one row per writer of the last run, or just `apply`), `apply` keeps the events
/// counted so far, and rows beyond `writers` go. Run before the first batch, when the stream starts at that least
/// position.
pub async fn spread_apply_rows(conn: &mut mysql_async::Conn, db: &str, table: &str, writers: usize) -> Result<()> {
    let ck = qualified(db, table);
    let mut tx = conn.start_transaction(mysql_async::TxOpts::default()).await.wrap_err("starting to set up the apply rows")?;
    let rows: Vec<StoredApplyRow> = tx
        .exec(format!("SELECT id, applied_gtid_set, applied_file, applied_pos, events_applied, batches_applied FROM {ck} WHERE id = ? OR id LIKE ? FOR UPDATE"), (APPLY, format!("{APPLY}#%")))
        .await
        .wrap_err_with(|| format!("reading the apply rows of {ck}"))?;
    let events: u64 = rows.iter().map(|r| r.4).sum();
    let least = rows.iter().filter(|r| apply_index(&r.0).is_some()).min_by_key(|r| r.5).cloned();
    let Some((_, gtid, file, pos, _, batches)) = least else { return Err(eyre!("{ck} has no apply row")) };
    tx.exec_drop(format!("DELETE FROM {ck} WHERE id LIKE ?"), (format!("{APPLY}#%"),)).await?;
    let set = "applied_gtid_set = ?, applied_file = ?, applied_pos = ?, batches_applied = ?";
    tx.exec_drop(format!("UPDATE {ck} SET {set}, events_applied = ? WHERE id = ?"), (&gtid, &file, pos, batches, events, APPLY)).await?;
    for k in 1..writers {
        tx.exec_drop(format!("INSERT INTO {ck} SET id = ?, {set}"), (apply_row(k), &gtid, &file, pos, batches)).await?;
    }
    tx.commit().await.wrap_err("committing the apply rows")
}

/// The least of the position rows (fewest batches), with the events of all of them.
fn least_applied(rows: &[ApplyRow]) -> Option<ApplyRow> {
    let (batches, gtid, file, pos, _) = rows.iter().min_by_key(|r| r.0)?.clone();
    Some((batches, gtid, file, pos, rows.iter().map(|r| r.4).sum()))
}

/// Where the applier stands, as the checkpoint's `apply` row records it (flattened into the state dumps).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct AppliedPosition {
    pub applied_gtid_set: String,
    pub applied_file: String,
    pub applied_pos: u64,
    pub events_applied: u64,
}

impl CheckpointState {
    pub fn applied(&self) -> AppliedPosition {
        AppliedPosition {
            applied_gtid_set: self.applied_gtid_set.clone(),
            applied_file: self.applied_file.clone(),
            applied_pos: self.applied_pos,
            events_applied: self.events_applied,
        }
    }
}

/// Records the start position and the estimate in the transaction that also records the copy range(s): the
/// setup's end commits at once, so a resume finds both or neither.
pub async fn record_start(tx: &mut mysql_async::Transaction<'_>, db: &str, table: &str, start: (&str, &str, u64), rows_estimate: u64) -> Result<()> {
    let ck = qualified(db, table);
    tx.exec_drop(format!("UPDATE {ck} SET applied_gtid_set = ?, applied_file = ?, applied_pos = ? WHERE id = ?"), (start.0, start.1, start.2, APPLY))
        .await?;
    tx.exec_drop(format!("UPDATE {ck} SET rows_estimate = ?, phase = 'copy' WHERE id = ?"), (rows_estimate, SUMMARY)).await?;
    Ok(())
}

/// Reads the checkpoint rows (`None` when the table or the summary row is missing).
pub async fn read(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<Option<CheckpointState>> {
    let q = qualified(db, table);
    let rows: Vec<mysql_async::Row> = match conn.query(format!("SELECT * FROM {q}")).await {
        Ok(r) => r,
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => return Ok(None),
        Err(e) => return Err(e).wrap_err_with(|| format!("reading {q}")),
    };
    let mut st = CheckpointState::default();
    let mut have_summary = false;
    let mut slices: Vec<(usize, CopySliceState, u64)> = Vec::new();
    let mut applied: Vec<ApplyRow> = Vec::new();
    for r in rows {
        let s = |name: &str| -> Option<String> {
            let idx = r.columns_ref().iter().position(|c| c.name_str() == name)?;
            match r.as_ref(idx)? {
                Value::NULL => None,
                Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                other => Some(other.as_sql(true).trim_matches('\'').to_string()),
            }
        };
        let n = |name: &str| -> u64 { s(name).and_then(|v| v.parse().ok()).unwrap_or(0) };
        let id = s("id").unwrap_or_default();
        if apply_index(&id).is_some() {
            applied.push((n("batches_applied"), s("applied_gtid_set").unwrap_or_default(), s("applied_file").unwrap_or_default(), n("applied_pos"), n("events_applied")));
        }
        if let Some(index) = slice_index(&id) {
            let slice = CopySliceState {
                row: id.clone(),
                range_end: s("copy_range_end"),
                watermark: s("copy_watermark"),
                complete: n("copy_complete") == 1,
                rows_copied: n("rows_copied"),
            };
            slices.push((index, slice, n("chunks_copied")));
        }
        match Some(id.as_str()) {
            Some(SUMMARY) => {
                have_summary = true;
                st.phase = s("phase").unwrap_or_default();
                st.database_name = s("database_name").unwrap_or_default();
                st.table_name = s("table_name").unwrap_or_default();
                st.alter_statement = s("alter_statement").unwrap_or_default();
                st.alter_fingerprint = s("alter_fingerprint").unwrap_or_default();
                st.table_fingerprint = s("table_fingerprint").unwrap_or_default();
                st.tool_version = s("tool_version").unwrap_or_default();
                st.rows_estimate = n("rows_estimate");
                st.cutover_started = s("cutover_started").is_some();
                st.drain_gtid = s("drain_gtid");
                st.cutover_complete = n("cutover_complete") == 1;
            }
            Some(COPY) => {
                st.copy_range_start = s("copy_range_start");
                st.copy_range_end = s("copy_range_end");
                st.copy_watermark = s("copy_watermark");
                st.copy_complete = n("copy_complete") == 1;
                st.rows_copied = n("rows_copied");
                st.chunks_copied = n("chunks_copied");
            }
            Some(OLD_TABLE) => st.old_table = s("table_name"),
            _ => {}
        }
    }
    if let Some((batches, gtid, file, pos, events)) = least_applied(&applied) {
        (st.batches_applied, st.applied_gtid_set, st.applied_file, st.applied_pos, st.events_applied) = (batches, gtid, file, pos, events);
        st.apply_rows_apart = applied.iter().any(|r| r.0 != batches);
    }
    if slices.len() > 1 {
        slices.sort_by_key(|(i, _, _)| *i);
        st.copy_complete = slices.iter().all(|(_, s, _)| s.complete);
        st.rows_copied = slices.iter().map(|(_, s, _)| s.rows_copied).sum();
        st.chunks_copied = slices.iter().map(|(_, _, c)| c).sum();
        st.slices = slices.into_iter().map(|(_, s, _)| s).collect();
    }
    Ok(if have_summary { Some(st) } else { None })
}

/// The rows copied by every copy row of the checkpoint (migrate's `copy` and `copy#<n>`, a move's `copy:<table>`).
pub async fn rows_copied_total(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<u64> {
    let q = format!("SELECT CAST(COALESCE(SUM(rows_copied), 0) AS UNSIGNED) FROM {} WHERE id = ? OR id LIKE ? OR id LIKE ?", qualified(db, table));
    let n: Option<u64> = conn.exec_first(&q, (COPY, format!("{COPY}:%"), format!("{COPY}#%"))).await.wrap_err_with(|| format!("summing the rows copied in {db}.{table}"))?;
    Ok(n.unwrap_or(0))
}

/// SQL that records a copied chunk; run inside the chunk's transaction.
pub fn copy_update_sql(db: &str, table: &str) -> String {
    format!(
        "UPDATE {} SET copy_watermark = ?, rows_copied = rows_copied + ?, chunks_copied = chunks_copied + 1, \
         copy_complete = ? WHERE id = ?",
        qualified(db, table)
    )
}

/// SQL that records an applied batch; run inside the batch's transaction. A NULL position (a batch of parts of one
/// source transaction only) keeps the stored one and counts the batch.
pub fn apply_update_sql(db: &str, table: &str) -> String {
    format!(
        "UPDATE {} SET applied_gtid_set = COALESCE(?, applied_gtid_set), applied_file = COALESCE(?, applied_file), \
         applied_pos = COALESCE(?, applied_pos), events_applied = events_applied + ?, \
         batches_applied = batches_applied + 1 WHERE id = ?",
        qualified(db, table)
    )
}

/// Sets the summary row's phase.
pub async fn set_phase(conn: &mut mysql_async::Conn, db: &str, table: &str, phase: &str) -> Result<()> {
    conn.exec_drop(format!("UPDATE {} SET phase = ? WHERE id = ?", qualified(db, table)), (phase, SUMMARY))
        .await
        .wrap_err("updating the checkpoint phase")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_rows_name_their_writer() {
        for k in [0, 1, 7] {
            assert_eq!(apply_index(&apply_row(k)), Some(k));
        }
        for other in ["apply#1", "apply#0", "apply#x", "applyx", "copy", "summary"] {
            assert_eq!(apply_index(other), None, "{other}");
        }
    }

    #[test]
    fn a_resume_continues_from_the_least_apply_row_with_every_rows_events() {
        let row = |b: u64, g: &str, e: u64| (b, g.to_string(), "f.000001".to_string(), b * 10, e);
        let rows = vec![row(8, "u:1-8", 40), row(7, "u:1-7", 3), row(8, "u:1-8", 5)];
        assert_eq!(least_applied(&rows), Some((7, "u:1-7".to_string(), "f.000001".to_string(), 70, 48)));
        assert_eq!(least_applied(&[]), None);
    }

    #[test]
    fn copy_rows_name_their_slice() {
        assert_eq!(slice_index("copy"), Some(0));
        assert_eq!(slice_index("copy#2"), Some(1));
        assert_eq!(slice_index("copy#12"), Some(11));
        for other in ["copy#1", "copy#0", "copy#x", "copy:orders", "apply", "summary", "copyx"] {
            assert_eq!(slice_index(other), None, "{other}");
        }
    }
}
