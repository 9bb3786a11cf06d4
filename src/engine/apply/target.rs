//! What the applier writes for one watched table: the target table, its columns and key as they arrive in the
//! row images, and the REPLACE / DELETE statements prepared from them (with the row's exact SQL where a value
//! needs it, and the ENUM error value written without strict mode).

use std::sync::Arc;

use mysql_async::Value;

use crate::engine::apply::split::Shards;
use crate::engine::apply::values::SqlValue;
use crate::engine::copy::delete_log::DeleteLog;
use crate::engine::plan::schema::Column;
use crate::engine::sql::{qualified, quote_ident};

/// How one watched table's changes are written.
#[derive(Debug, Clone)]
pub struct ApplyTarget {
    /// Database and table written to (the ghost, or the target table of move-tables).
    pub database: String,
    pub table: String,
    /// (index in the source row image, source column, target column name) for every written column.
    pub columns: Vec<(usize, Column, String)>,
    /// Indexes (into the row image) of the key columns, with their target names.
    pub key: Vec<(usize, Column, String)>,
    /// Where deleted keys are recorded while the row copy runs without locks (migrate; see `delete_log`).
    pub deletes: Option<Arc<DeleteLog>>,
    /// The key allows NULL (`--allow-nullable-unique-key`): a row written with a NULL in it stops the run.
    pub nullable_key: bool,
}

/// Marks a statement that writes the ENUM error value: it runs with the non-strict sql_mode, the only one that can
/// store that value, then the session is strict again. The value is the original's, so nothing changes.
pub(super) const LENIENT: &str = "/* revenant: ENUM error value */ ";

/// The applier's statements for one target, prepared once.
pub(super) struct Statements {
    pub(super) replace: String,
    pub(super) delete: String,
    /// `db.table`, for error messages.
    pub(super) target: String,
    pub(super) shards: Shards,
}

impl ApplyTarget {
    pub(super) fn statements(&self) -> Statements {
        let cols: Vec<String> = self.columns.iter().map(|(_, _, n)| quote_ident(n)).collect();
        let phs: Vec<String> = self.columns.iter().map(|(_, c, _)| c.placeholder()).collect();
        let conds: Vec<String> =
            self.key.iter().map(|(_, c, n)| format!("{} = {}", quote_ident(n), c.key_placeholder())).collect();
        Statements {
            replace: format!(
                "REPLACE INTO {} ({}) VALUES ({})",
                qualified(&self.database, &self.table),
                cols.join(", "),
                phs.join(", ")
            ),
            delete: format!("DELETE FROM {} WHERE {}", qualified(&self.database, &self.table), conds.join(" AND ")),
            target: format!("{}.{}", self.database, self.table),
            shards: Shards::for_key(&format!("{}.{}", self.database, self.table), &self.key),
        }
    }

    pub(super) fn row_params(&self, row: &[Value]) -> Vec<Value> {
        self.columns.iter().map(|(i, _, _)| row.get(*i).cloned().unwrap_or(Value::NULL)).collect()
    }

    /// The REPLACE for a row some of whose written columns need SQL to be exact (see `RowChange::after_sql`), with
    /// its parameters; None when no written column does.
    pub(super) fn replace_with_sql(&self, row: &[Value], sql: &[(usize, SqlValue)]) -> Option<(String, Vec<Value>)> {
        if !self.columns.iter().any(|(i, _, _)| sql.iter().any(|(j, _)| j == i)) {
            return None;
        }
        let mut exprs = Vec::with_capacity(self.columns.len());
        let mut params = Vec::with_capacity(self.columns.len());
        for (i, col, _) in &self.columns {
            match sql.iter().find(|(j, _)| j == i) {
                Some((_, v)) => {
                    exprs.push(v.sql.clone());
                    params.extend(v.params.iter().cloned());
                }
                None => {
                    exprs.push(col.placeholder());
                    params.push(row.get(*i).cloned().unwrap_or(Value::NULL));
                }
            }
        }
        let cols: Vec<String> = self.columns.iter().map(|(_, _, n)| quote_ident(n)).collect();
        let stmt = format!(
            "REPLACE INTO {} ({}) VALUES ({})",
            qualified(&self.database, &self.table),
            cols.join(", "),
            exprs.join(", ")
        );
        Some((stmt, params))
    }

    /// Does the row hold the ENUM error value ('', index 0, which a non-strict write stored in the original)? Strict
    /// mode cannot write it, so such a row is written without strict mode (see [`LENIENT`]).
    pub(super) fn holds_enum_error_value(&self, row: &[Value]) -> bool {
        self.columns.iter().filter(|(_, c, _)| c.is_enum()).any(|(i, _, _)| match row.get(*i) {
            Some(Value::Int(0) | Value::UInt(0)) => true,
            Some(Value::Bytes(b)) => b.is_empty(),
            _ => false,
        })
    }

    pub fn key_params(&self, row: &[Value]) -> Vec<Value> {
        self.key.iter().map(|(i, _, _)| row.get(*i).cloned().unwrap_or(Value::NULL)).collect()
    }
}
