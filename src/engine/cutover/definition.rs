//! The original's definition, checked again right before the rename: a change the binary log did not show (a DDL
//! run with `sql_log_bin=0`, one the stream could not see) would otherwise be swapped away, with the data of any
//! column it added. Under the atomic cut-over's `LOCK TABLES ... WRITE` no DDL can reach the table between this
//! check and the rename, so the check is exact there.

use color_eyre::eyre::{eyre, Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::checkpoint::table_fingerprint;

/// The original's definition is not the one preflight planned the migration for.
#[derive(Debug)]
pub struct DefinitionChanged {
    pub table: String,
    pub now: String,
}

impl std::fmt::Display for DefinitionChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the definition of {} changed during the migration (a DDL the binary log did not show, e.g. run with \
             sql_log_bin=0); it is now: {}",
            self.table, self.now
        )
    }
}

impl std::error::Error for DefinitionChanged {}

/// True when `e` says the original's definition changed (never retried: the migration is for the old definition).
pub fn is_definition_changed(e: &color_eyre::Report) -> bool {
    e.chain().any(|c| c.downcast_ref::<DefinitionChanged>().is_some())
}

/// Fails with [`DefinitionChanged`] unless `qualified_table`'s definition is still `expected` (as preflight read it).
pub async fn check_unchanged(conn: &mut mysql_async::Conn, qualified_table: &str, expected: &str) -> Result<()> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE {qualified_table}"))
        .await
        .wrap_err_with(|| format!("reading the definition of {qualified_table} before the rename"))?;
    let now = row.map(|r| r.1).unwrap_or_default();
    // Compared as the resume compares them: without the AUTO_INCREMENT counter, which moves with the rows.
    if table_fingerprint(&now) != table_fingerprint(expected) {
        return Err(eyre!(DefinitionChanged { table: qualified_table.to_string(), now }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_auto_increment_counter_is_ignored() {
        let a = "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=17 DEFAULT CHARSET=utf8mb4";
        let b = a.replace("AUTO_INCREMENT=17", "AUTO_INCREMENT=90210");
        assert_eq!(table_fingerprint(a), table_fingerprint(&b));
        let c = a.replace("PRIMARY KEY (`id`)", "`z` int DEFAULT NULL,\n  PRIMARY KEY (`id`)");
        assert_ne!(table_fingerprint(a), table_fingerprint(&c));
        let d = a.replace("`id` int NOT NULL AUTO_INCREMENT,", "`id` int NOT NULL,");
        assert_ne!(table_fingerprint(a), table_fingerprint(&d), "the column attribute AUTO_INCREMENT is part of the definition");
    }
}
