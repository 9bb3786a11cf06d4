//! Parallel apply (`--apply-threads N`): a batch keeps the last statement of each row (`collapse`) and is split by
//! a hash of the row's key over N writer connections (`Shards`: a row's changes always go to one writer, in the
//! source's order). The parts are written at once, each in its own transaction with its writer's position row
//! (`apply`, `apply#2`, ...), and the next batch starts when every part is committed (a failed part is retried
//! alone). So the rows differ by one batch at most, and none is ever ahead of what its writer committed. After a
//! crash the run continues from the least of them (`checkpoint::spread_apply_rows` sets every row to it first):
//! the writers that had committed the last batch apply it again, which ends as it did (the rows' full images and
//! deletes by key, in order), so a kill -9 redoes at most one batch. Changes of different rows may commit in
//! another order than the source's; nobody reads the ghost before the cut-over, and the cut-over, the
//! verification and the drain wait for a position that is published only once every part before it is committed.

use std::borrow::Cow;
use std::collections::HashMap;

use mysql_async::Value;

use crate::engine::plan::schema::Column;

/// One queued statement, in the order of the source's changes.
pub(super) struct Op<'a> {
    pub(super) stmt: Cow<'a, str>,
    /// The target table, for messages.
    pub(super) table: &'a str,
    pub(super) params: Vec<Value>,
    /// The row it writes: the target table and its key's values (see `row_identity`).
    pub(super) row: Vec<u8>,
    /// Which writer connection writes it (see `Shards`).
    pub(super) shard: u64,
}

/// Keeps the last statement of each row (by its exact key bytes) and drops the earlier ones, in order. A row's
/// last statement leaves it as the batch's last change left it (a REPLACE of the full after image, or its DELETE),
/// whatever came before. Keys equal only by collation ('a' and 'A') are different rows here: each keeps its own
/// last statement, in the source's order, and they go to one writer (see `Shards`), so the last of them still wins.
pub(super) fn collapse(ops: Vec<Op<'_>>) -> Vec<Op<'_>> {
    let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        last.insert(&op.row, i);
    }
    let keep: Vec<bool> = ops.iter().enumerate().map(|(i, op)| last.get(op.row.as_slice()) == Some(&i)).collect();
    ops.into_iter().zip(keep).filter_map(|(op, keep)| keep.then_some(op)).collect()
}

/// Splits a batch's statements into one list per writer, each in the batch's order.
pub(super) fn split(ops: Vec<Op<'_>>, writers: usize) -> Vec<Vec<Op<'_>>> {
    let mut parts: Vec<Vec<Op<'_>>> = (0..writers.max(1)).map(|_| Vec::new()).collect();
    let n = parts.len() as u64;
    for op in ops {
        parts[(op.shard % n) as usize].push(op);
    }
    parts
}

/// The identity of a row for `collapse`: its table and the exact bytes of its key values.
pub(super) fn row_identity(table: &str, key: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(table.len() + 16 * key.len());
    out.extend_from_slice(table.as_bytes());
    out.push(0);
    for v in key {
        value_bytes(v, &mut out);
    }
    out
}

/// Appends an unambiguous encoding of `v` (a tag, then its fields; byte strings with their length).
fn value_bytes(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::NULL => out.push(0),
        Value::Bytes(b) => {
            out.push(1);
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        }
        Value::Int(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::UInt(u) => {
            out.push(3);
            out.extend_from_slice(&u.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(4);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Double(d) => {
            out.push(5);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::Date(y, mo, d, h, mi, s, us) => {
            out.push(6);
            out.extend_from_slice(&y.to_le_bytes());
            out.extend_from_slice(&[*mo, *d, *h, *mi, *s]);
            out.extend_from_slice(&us.to_le_bytes());
        }
        Value::Time(neg, d, h, mi, s, us) => {
            out.push(7);
            out.push(u8::from(*neg));
            out.extend_from_slice(&d.to_le_bytes());
            out.extend_from_slice(&[*h, *mi, *s]);
            out.extend_from_slice(&us.to_le_bytes());
        }
    }
}

/// Which writer a row goes to: a hash of its key's values in the columns whose bytes identify the value (integers,
/// dates, binary strings, ...), never of a text column under a collation or a float, where two different byte
/// strings can be one key to the server ('a' and 'A ', 0.0 and -0.0): two changes of one row always go to one
/// writer, in order. A key without such columns sends the whole table to one writer.
#[derive(Debug, Clone)]
pub(super) struct Shards {
    /// Positions in the key's values that are hashed.
    exact: Vec<usize>,
    /// Hash of the table's name: the shard of a key without exact columns, and the seed of the others.
    table: u64,
}

impl Shards {
    pub(super) fn for_key(table: &str, key: &[(usize, Column, String)]) -> Shards {
        let exact = key
            .iter()
            .enumerate()
            .filter(|(_, (_, c, _))| !c.is_text() && !matches!(c.data_type.as_str(), "float" | "double" | "real"))
            .map(|(i, _)| i)
            .collect();
        Shards { exact, table: hash_bytes(table.as_bytes()) }
    }

    pub(super) fn of(&self, key: &[Value]) -> u64 {
        if self.exact.is_empty() {
            return self.table;
        }
        let mut bytes = Vec::with_capacity(16 * self.exact.len());
        for i in &self.exact {
            if let Some(v) = key.get(*i) {
                value_bytes(v, &mut bytes);
            }
        }
        self.table ^ hash_bytes(&bytes)
    }
}

/// FNV-1a: stable, quick, and spread enough for a writer index.
fn hash_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::{collapse, row_identity, split, Op, Shards};
    use crate::engine::plan::schema::Column;
    use mysql_async::Value;
    use std::borrow::Cow;

    fn column(data_type: &str, charset: Option<&str>) -> Column {
        Column { name: "k".into(), ordinal: 1, data_type: data_type.into(), column_type: data_type.into(), nullable: false, unsigned: false, charset: charset.map(str::to_string), collation: None, octet_length: None, generated: false, labels: Vec::new(), enum_as_index: false }
    }

    fn op(stmt: &'static str, key: i64, shards: &Shards) -> Op<'static> {
        let k = vec![Value::Int(key)];
        Op { stmt: Cow::Borrowed(stmt), table: "d.t", params: vec![Value::Int(key), Value::Bytes(stmt.into())], row: row_identity("d.t", &k), shard: shards.of(&k) }
    }

    #[test]
    fn a_batch_keeps_the_last_statement_of_each_row_in_order() {
        let shards = Shards::for_key("d.t", &[(0, column("int", None), "id".into())]);
        let ops = vec![op("R1", 1, &shards), op("R2", 2, &shards), op("D1", 1, &shards), op("R3", 3, &shards), op("R2b", 2, &shards)];
        let kept: Vec<String> = collapse(ops).iter().map(|o| o.stmt.to_string()).collect();
        assert_eq!(kept, ["D1", "R3", "R2b"]);
    }

    #[test]
    fn a_rows_changes_go_to_one_writer_and_integer_keys_spread() {
        let shards = Shards::for_key("d.t", &[(0, column("bigint", None), "id".into())]);
        let ops: Vec<Op<'static>> = (0..400).map(|k| op("R", k % 100, &shards)).collect();
        let parts = split(ops, 4);
        for part in &parts {
            assert!(part.len() > 40, "every writer gets rows: {:?}", parts.iter().map(Vec::len).collect::<Vec<_>>());
        }
        for k in 0..100 {
            let writers = parts.iter().filter(|p| p.iter().any(|o| o.params[0] == Value::Int(k))).count();
            assert_eq!(writers, 1, "key {k}");
        }
    }

    #[test]
    fn text_and_float_keys_never_split_a_table() {
        let text = Shards::for_key("d.t", &[(0, column("varchar", Some("utf8mb4")), "name".into())]);
        assert_eq!(text.of(&[Value::Bytes(b"a".to_vec())]), text.of(&[Value::Bytes(b"A ".to_vec())]));
        let float = Shards::for_key("d.t", &[(0, column("double", None), "x".into())]);
        assert_eq!(float.of(&[Value::Double(0.0)]), float.of(&[Value::Double(-0.0)]));
        // A binary string is its bytes: it spreads; a text column next to an integer one is left out of the hash.
        let binary = Shards::for_key("d.t", &[(0, column("varbinary", Some("binary")), "b".into())]);
        assert!((0..50u8).map(|b| binary.of(&[Value::Bytes(vec![b])]) % 2).any(|w| w == 1));
        let mixed = Shards::for_key("d.t", &[(0, column("int", None), "id".into()), (1, column("char", Some("latin1")), "c".into())]);
        assert_eq!(mixed.of(&[Value::Int(7), Value::Bytes(b"x".to_vec())]), mixed.of(&[Value::Int(7), Value::Bytes(b"X".to_vec())]));
    }
}
