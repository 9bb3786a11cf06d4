//! gh-ost's `--include-triggers`: the original's triggers, read at preflight, are created on the ghost during the
//! cut-over, once the original is locked and the applier has applied everything before the lock, and before the
//! RENAME is queued. Until then the ghost has no trigger, so neither the copy nor the applier ever fires one (their
//! rows are the original's, whose triggers already ran). A cut-over attempt that fails drops them from the ghost
//! again before the applier writes to it; a resume drops any a crash left there. The names: gh-ost's rule
//! (`--trigger-suffix` appended, or, with `--remove-trigger-suffix-if-exists`, removed where the name ends with it).

use color_eyre::eyre::{eyre, Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::sql::{qualified, quote_literal};

/// The longest name the server takes for a trigger.
pub const MAX_NAME: usize = 64;

/// How the ghost's triggers are named (gh-ost's `--trigger-suffix`, `--remove-trigger-suffix-if-exists`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerNaming {
    pub suffix: String,
    pub remove_suffix_if_exists: bool,
}

impl TriggerNaming {
    /// The ghost's name for the original's trigger `name`.
    pub fn ghost_name(&self, name: &str) -> String {
        match name.strip_suffix(self.suffix.as_str()) {
            Some(base) if self.remove_suffix_if_exists && !base.is_empty() => base.to_string(),
            _ => format!("{name}{}", self.suffix),
        }
    }
}

/// One trigger of the original, as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerDef {
    pub name: String,
    /// `BEFORE` / `AFTER`.
    pub timing: String,
    /// `INSERT` / `UPDATE` / `DELETE`.
    pub event: String,
    /// The body (`ACTION_STATEMENT`), the server's own text.
    pub body: String,
    /// `user@host`.
    pub definer: String,
    pub sql_mode: String,
    pub collation_connection: String,
}

/// The triggers of `db.table`, in the order they fire (per event and timing).
pub async fn read(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<Vec<TriggerDef>> {
    let rows: Vec<(String, String, String, String, String, String, String)> = conn
        .exec(
            "SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT, DEFINER, SQL_MODE, \
             COLLATION_CONNECTION FROM information_schema.TRIGGERS \
             WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER",
            (db, table),
        )
        .await
        .wrap_err_with(|| format!("reading the triggers of {db}.{table}"))?;
    Ok(rows
        .into_iter()
        .map(|(name, timing, event, body, definer, sql_mode, collation_connection)| TriggerDef {
            name,
            timing,
            event,
            body,
            definer,
            sql_mode,
            collation_connection,
        })
        .collect())
}

/// Refuses names the server cannot take or that another trigger of the schema already has.
pub async fn check_names(conn: &mut mysql_async::Conn, db: &str, defs: &[TriggerDef], naming: &TriggerNaming) -> Result<()> {
    for d in defs {
        let ghost = naming.ghost_name(&d.name);
        if ghost.chars().count() > MAX_NAME {
            return Err(eyre!("the trigger name {ghost} (from {} with --trigger-suffix {}) is longer than {MAX_NAME} characters", d.name, naming.suffix));
        }
        let taken: Option<String> = conn
            .exec_first("SELECT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = ?", (db, &ghost))
            .await?;
        if let Some(table) = taken {
            return Err(eyre!("a trigger named {ghost} already exists in {db} (on {table}): the new table's copy of {} needs that name", d.name));
        }
    }
    Ok(())
}

/// `user@host` as the DEFINER clause (`'user'@'host'`).
fn definer_clause(definer: &str) -> String {
    match definer.rsplit_once('@') {
        Some((user, host)) => format!("{}@{}", quote_literal(user), quote_literal(host)),
        None => quote_literal(definer),
    }
}

/// Creates the ghost's copies of `defs` on `ghost`, each under the sql_mode and connection collation it was
/// created with (the body is sent as utf8mb4, the connection's character set, so it arrives as the server keeps it).
pub async fn create_on(conn: &mut mysql_async::Conn, db: &str, ghost: &str, defs: &[TriggerDef], naming: &TriggerNaming) -> Result<()> {
    for d in defs {
        conn.query_drop(format!(
            "SET SESSION sql_mode = {}, SESSION collation_connection = {}",
            quote_literal(&d.sql_mode),
            quote_literal(&d.collation_connection)
        ))
        .await
        .wrap_err_with(|| format!("taking trigger {}'s session settings", d.name))?;
        let stmt = format!(
            "CREATE DEFINER={} TRIGGER {} {} {} ON {} FOR EACH ROW {}",
            definer_clause(&d.definer),
            qualified(db, &naming.ghost_name(&d.name)),
            d.timing,
            d.event,
            qualified(db, ghost),
            d.body
        );
        conn.query_drop(stmt).await.wrap_err_with(|| format!("creating trigger {} on {db}.{ghost}", naming.ghost_name(&d.name)))?;
    }
    Ok(())
}

/// Drops the ghost's copies of `defs` from `ghost` (only triggers on that table: never the original's, never the
/// swapped table's).
pub async fn drop_from(conn: &mut mysql_async::Conn, db: &str, ghost: &str, defs: &[TriggerDef], naming: &TriggerNaming) -> Result<()> {
    for d in defs {
        let name = naming.ghost_name(&d.name);
        let on: Option<String> = conn
            .exec_first("SELECT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = ?", (db, &name))
            .await?;
        if on.as_deref() == Some(ghost) {
            conn.query_drop(format!("DROP TRIGGER {}", qualified(db, &name))).await.wrap_err_with(|| format!("dropping trigger {name} from {db}.{ghost}"))?;
        }
    }
    Ok(())
}

/// Puts the ghost's copies of `defs` on `ghost` whatever a crash left there (a resume that finishes a swap).
pub async fn recreate_on(conn: &mut mysql_async::Conn, db: &str, ghost: &str, defs: &[TriggerDef], naming: &TriggerNaming) -> Result<()> {
    drop_from(conn, db, ghost, defs, naming).await?;
    create_on(conn, db, ghost, defs, naming).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghost_names_follow_gh_osts_rule() {
        let add = TriggerNaming { suffix: "_v2".into(), remove_suffix_if_exists: false };
        assert_eq!(add.ghost_name("audit"), "audit_v2");
        assert_eq!(add.ghost_name("audit_v2"), "audit_v2_v2");
        let toggle = TriggerNaming { suffix: "_v2".into(), remove_suffix_if_exists: true };
        assert_eq!(toggle.ghost_name("audit_v2"), "audit");
        assert_eq!(toggle.ghost_name("audit"), "audit_v2");
        assert_eq!(toggle.ghost_name("_v2"), "_v2_v2", "a name that is only the suffix keeps a name");
    }

    #[test]
    fn the_definer_is_quoted_at_its_last_at_sign() {
        assert_eq!(definer_clause("root@localhost"), "'root'@'localhost'");
        assert_eq!(definer_clause("a@b@%"), "'a@b'@'%'");
    }
}
