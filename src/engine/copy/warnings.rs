//! What the server said about a copied chunk. The copy writes with `INSERT IGNORE` in strict mode, so a value the
//! new column cannot hold (too long, out of range, not in the character set, NULL into NOT NULL, a bad date) is
//! a warning, not an error; and a row whose key is already in the ghost is skipped with a duplicate-key warning.
//! Skips on the shared key (the applier wrote the row first) and on a unique key the original already has (a value
//! that moved between rows; the applier brings the row) are expected. Anything else stops the run before the
//! cut-over with the server's text (`--panic-on-warnings`, on by default), except a duplicate on a unique key the
//! ALTER adds: that is either real duplicates in the original (refused, the values named) or a value that moved
//! during the copy (the chunk is tried again once the applier has caught up).

use mysql_async::prelude::Queryable;

use color_eyre::eyre::{Result, WrapErr};

/// Which duplicate-key skips are expected, and what else is allowed.
#[derive(Debug, Clone, Default)]
pub struct WarningRules {
    /// Stop on any other warning (else log it and go on).
    pub panic_on_warnings: bool,
    /// Index names (as the target table names them) whose duplicate-key skips are expected.
    pub expected_duplicate_keys: Vec<String>,
    /// Unique keys of the target that the original does not have: (index name, the original's column names).
    pub new_unique_keys: Vec<(String, Vec<String>)>,
    /// ENUM columns (target names) defined as in the original: their only "Data truncated" is the ENUM error
    /// value ('', index 0) that the original holds, stored as it is.
    pub same_enum_columns: Vec<String>,
}

/// One `SHOW WARNINGS` line.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerWarning {
    pub code: u16,
    pub message: String,
}

/// What a chunk's warnings mean.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing but expected skips.
    Clean,
    /// Warnings that are not expected skips (the first few), with the 1-based row of the first, if the server said.
    Unexpected { warnings: Vec<ServerWarning>, row: Option<u64> },
    /// Duplicates on a unique key the ALTER adds (index name).
    NewKeyDuplicate(String),
    /// The server counted more warnings than it lists: the chunk must be smaller to be judged.
    TooMany,
}

/// Reads the warnings of the last statement on `conn` when the server counted any (`count`).
pub async fn read(conn: &mut impl Queryable, count: u16) -> Result<Vec<ServerWarning>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, u16, String)> = conn.query("SHOW WARNINGS").await.wrap_err("reading the chunk's warnings")?;
    Ok(rows.into_iter().map(|(_, code, message)| ServerWarning { code, message }).collect())
}

/// Judges a statement's warnings (`count` as the server counted them, `listed` as SHOW WARNINGS gave them).
pub fn judge(rules: &WarningRules, count: u16, listed: &[ServerWarning]) -> Verdict {
    let mut unexpected = Vec::new();
    let mut new_key = None;
    for w in listed {
        if w.code == DUPLICATE_KEY {
            let key = duplicate_key_name(&w.message);
            if rules.expected_duplicate_keys.iter().any(|k| Some(k.as_str()) == key.as_deref()) {
                continue;
            }
            if let Some((name, _)) = rules.new_unique_keys.iter().find(|(k, _)| Some(k.as_str()) == key.as_deref()) {
                new_key.get_or_insert_with(|| name.clone());
                continue;
            }
        }
        if w.code == DATA_TRUNCATED && truncated_column(&w.message).is_some_and(|c| rules.same_enum_columns.iter().any(|e| e.eq_ignore_ascii_case(&c))) {
            continue;
        }
        unexpected.push(w.clone());
    }
    if !unexpected.is_empty() {
        let row = unexpected.iter().find_map(|w| row_number(&w.message));
        unexpected.truncate(5);
        return Verdict::Unexpected { warnings: unexpected, row };
    }
    if let Some(k) = new_key {
        return Verdict::NewKeyDuplicate(k);
    }
    if (listed.len() as u64) < u64::from(count) {
        return Verdict::TooMany;
    }
    Verdict::Clean
}

const DUPLICATE_KEY: u16 = 1062;
const DATA_TRUNCATED: u16 = 1265;

/// The column named by "Data truncated for column 'name' at row N".
fn truncated_column(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Data truncated for column '")?;
    Some(rest[..rest.rfind("' at row")?].to_string())
}

/// The index named by "Duplicate entry '...' for key 'name'" (MySQL 8+ writes 'table.name').
pub fn duplicate_key_name(message: &str) -> Option<String> {
    let rest = &message[message.rfind(" for key '")? + " for key '".len()..];
    let quoted = rest.strip_suffix('\'')?;
    Some(match quoted.rsplit_once('.') {
        Some((_, name)) => name.to_string(),
        None => quoted.to_string(),
    })
}

/// The row number of "... at row N".
fn row_number(message: &str) -> Option<u64> {
    message.rsplit_once(" at row ").and_then(|(_, n)| n.trim().parse().ok())
}

/// The warnings as one line: `1265 Data truncated for column 'b' at row 3; ...`.
pub fn describe(warnings: &[ServerWarning]) -> String {
    warnings.iter().map(|w| format!("{} {}", w.code, w.message)).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(code: u16, message: &str) -> ServerWarning {
        ServerWarning { code, message: message.to_string() }
    }

    fn rules() -> WarningRules {
        WarningRules {
            panic_on_warnings: true,
            expected_duplicate_keys: vec!["PRIMARY".into(), "uk_old".into()],
            new_unique_keys: vec![("uk_name".into(), vec!["name".into()])],
            same_enum_columns: vec!["e".into()],
        }
    }

    #[test]
    fn key_names_of_both_flavours() {
        assert_eq!(duplicate_key_name("Duplicate entry '7' for key 'PRIMARY'").as_deref(), Some("PRIMARY"));
        assert_eq!(duplicate_key_name("Duplicate entry 'bob' for key '_t_gho.uk_name'").as_deref(), Some("uk_name"));
        assert_eq!(duplicate_key_name("Data truncated for column 'b' at row 1"), None);
    }

    #[test]
    fn expected_skips_are_clean_anything_else_is_not() {
        let r = rules();
        assert_eq!(judge(&r, 0, &[]), Verdict::Clean);
        assert_eq!(judge(&r, 2, &[w(1062, "Duplicate entry '1' for key 'PRIMARY'"), w(1062, "Duplicate entry 'x' for key 't.uk_old'")]), Verdict::Clean);
        assert_eq!(judge(&r, 1, &[w(1062, "Duplicate entry 'bob' for key '_t_gho.uk_name'")]), Verdict::NewKeyDuplicate("uk_name".into()));
        let trunc = w(1265, "Data truncated for column 'b' at row 3");
        assert_eq!(
            judge(&r, 2, &[w(1062, "Duplicate entry 'bob' for key 'uk_name'"), trunc.clone()]),
            Verdict::Unexpected { warnings: vec![trunc], row: Some(3) }
        );
        assert_eq!(judge(&r, 3, &[w(1062, "Duplicate entry '1' for key 'PRIMARY'")]), Verdict::TooMany);
        assert!(matches!(judge(&r, 1, &[w(1062, "Duplicate entry '1' for key 'other'")]), Verdict::Unexpected { .. }));
        assert_eq!(judge(&r, 1, &[w(1265, "Data truncated for column 'e' at row 2")]), Verdict::Clean, "the ENUM error value");
        assert!(matches!(judge(&r, 1, &[w(1265, "Data truncated for column 'f' at row 2")]), Verdict::Unexpected { .. }));
    }
}
