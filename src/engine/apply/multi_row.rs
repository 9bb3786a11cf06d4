//! Multi-row REPLACE for servers without bulk execution. MariaDB runs a batch of one prepared statement in one
//! round trip (`COM_STMT_BULK_EXECUTE`, which mysql_async's `exec_batch` uses); MySQL has no such command, so
//! `exec_batch` there is one round trip a row (about 14,000 row events/s here). A run of the same `REPLACE ...
//! VALUES (...)` is instead sent as `REPLACE ... VALUES (...), (...), ...` over groups of rows: the server applies
//! the rows of one statement in order, as it would the single-row statements one after the other, so the result
//! is the same. Groups are bounded by rows (the prepared-statement cache keeps the full-size statement), by the
//! protocol's 65,535 placeholders and by bytes (well under any `max_allowed_packet`).

use mysql_async::Value;

/// Rows in one statement at most.
const MAX_ROWS: usize = 256;
/// Placeholders in one prepared statement at most (the protocol's limit).
const MAX_PARAMS: usize = 65_535;
/// Parameter bytes in one statement at most (a larger row goes alone).
const MAX_BYTES: usize = 4 << 20;

/// The `(...)` row group of a single-row `... VALUES (...)` statement; None for any other statement.
pub(super) fn row_group(stmt: &str) -> Option<&str> {
    if !stmt.starts_with("REPLACE INTO ") {
        return None;
    }
    let at = stmt.rfind(" VALUES (")?;
    let group = &stmt[at + " VALUES ".len()..];
    group.ends_with(')').then_some(group)
}

/// The statement for `rows` rows: `stmt` with its row group repeated.
pub(super) fn statement(stmt: &str, group: &str, rows: usize) -> String {
    let mut s = String::with_capacity(stmt.len() + (group.len() + 2) * rows.saturating_sub(1));
    s.push_str(stmt);
    for _ in 1..rows {
        s.push_str(", ");
        s.push_str(group);
    }
    s
}

fn bytes(row: &[Value]) -> usize {
    row.iter().map(|v| if let Value::Bytes(b) = v { b.len() } else { 8 }).sum()
}

/// Splits `rows` (in order) into the groups of one statement each; every group holds at least one row.
pub(super) fn groups(rows: Vec<Vec<Value>>) -> Vec<Vec<Vec<Value>>> {
    let per_row = rows.first().map_or(1, |r| r.len().max(1));
    let max_rows = MAX_ROWS.min(MAX_PARAMS / per_row).max(1);
    let mut out: Vec<Vec<Vec<Value>>> = Vec::new();
    let mut size = 0;
    for row in rows {
        let b = bytes(&row);
        match out.last_mut() {
            Some(g) if g.len() < max_rows && size + b <= MAX_BYTES => {
                size += b;
                g.push(row);
            }
            _ => {
                size = b;
                out.push(vec![row]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_group_is_the_values_list_of_a_replace() {
        let s = "REPLACE INTO `d`.`t` (`a`, `b`) VALUES (?, CONVERT(? USING utf8mb4))";
        assert_eq!(row_group(s), Some("(?, CONVERT(? USING utf8mb4))"));
        assert_eq!(statement(s, "(?, CONVERT(? USING utf8mb4))", 3), format!("{s}, (?, CONVERT(? USING utf8mb4)), (?, CONVERT(? USING utf8mb4))"));
        assert_eq!(statement(s, "(x)", 1), s);
        assert_eq!(row_group("DELETE FROM `d`.`t` WHERE `id` = ?"), None);
        assert_eq!(row_group("/* revenant: ENUM error value */ REPLACE INTO t (a) VALUES (?)"), None);
    }

    #[test]
    fn groups_keep_the_order_and_respect_rows_params_and_bytes() {
        let rows: Vec<Vec<Value>> = (0..600).map(|i| vec![Value::Int(i), Value::NULL]).collect();
        let g = groups(rows);
        assert_eq!(g.iter().map(Vec::len).collect::<Vec<_>>(), [256, 256, 88]);
        assert_eq!(g[1][0][0], Value::Int(256));
        let wide: Vec<Vec<Value>> = (0..10).map(|_| vec![Value::NULL; 30_000]).collect();
        assert_eq!(groups(wide).iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2, 2, 2]);
        let big: Vec<Vec<Value>> = (0..3).map(|_| vec![Value::Bytes(vec![0; 3 << 20])]).collect();
        assert_eq!(groups(big).iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
        assert!(groups(Vec::new()).is_empty());
    }
}
