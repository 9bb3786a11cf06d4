//! SQL text helpers: identifier quoting and the few statements built from table structure.

/// Quotes an identifier with backticks (doubling embedded backticks).
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`
pub fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(db), quote_ident(table))
}

/// Comma-separated quoted identifiers.
pub fn ident_list<S: AsRef<str>>(names: &[S]) -> String {
    names.iter().map(|n| quote_ident(n.as_ref())).collect::<Vec<_>>().join(", ")
}

/// Quotes a string literal for SQL text (only for values that are not bound: names in hook messages, DDL comments).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The lexicographic "key greater than" condition for a composite key, expanded so that every server's range
/// optimiser uses the index: `(a > ?) OR (a = ? AND b > ?) ...`. Returns the SQL and, for each placeholder, the
/// index of the key column whose value it takes.
pub fn tuple_compare(columns: &[String], placeholders: &[String], op_last: &str, op_strict: &str) -> (String, Vec<usize>) {
    let mut ors = Vec::new();
    let mut binds = Vec::new();
    for i in 0..columns.len() {
        let mut ands = Vec::new();
        for j in 0..i {
            ands.push(format!("{} = {}", quote_ident(&columns[j]), placeholders[j]));
            binds.push(j);
        }
        let op = if i == columns.len() - 1 { op_last } else { op_strict };
        ands.push(format!("{} {} {}", quote_ident(&columns[i]), op, placeholders[i]));
        binds.push(i);
        ors.push(format!("({})", ands.join(" AND ")));
    }
    (format!("({})", ors.join(" OR ")), binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(qualified("d", "t"), "`d`.`t`");
    }

    #[test]
    fn composite_key_comparison_expands() {
        let cols = vec!["a".to_string(), "b".to_string()];
        let ph = vec!["?".to_string(), "?".to_string()];
        let (sql, binds) = tuple_compare(&cols, &ph, ">", ">");
        assert_eq!(sql, "((`a` > ?) OR (`a` = ? AND `b` > ?))");
        assert_eq!(binds, vec![0, 0, 1]);
        let (sql, _) = tuple_compare(&cols, &ph, "<=", "<");
        assert_eq!(sql, "((`a` < ?) OR (`a` = ? AND `b` <= ?))");
    }
}

/// Takes NO_ZERO_DATE and NO_ZERO_IN_DATE out of the session's sql_mode (gh-ost's `--allow-zero-in-date`: the
/// ghost's CREATE/ALTER then accepts a zero-date DEFAULT); the rest of the server's mode stays.
pub async fn allow_zero_dates(conn: &mut mysql_async::Conn) -> color_eyre::eyre::Result<()> {
    use color_eyre::eyre::WrapErr;
    use mysql_async::prelude::Queryable;
    let mode: Option<String> = conn.query_first("SELECT @@SESSION.sql_mode").await.wrap_err("reading the session's sql_mode")?;
    let kept = without_zero_date_modes(&mode.unwrap_or_default());
    conn.exec_drop("SET SESSION sql_mode = ?", (kept,)).await.wrap_err("allowing zero dates in the session (--allow-zero-in-date)")
}

fn without_zero_date_modes(mode: &str) -> String {
    mode.split(',').filter(|m| !m.is_empty() && !matches!(*m, "NO_ZERO_DATE" | "NO_ZERO_IN_DATE")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod zero_date_tests {
    #[test]
    fn only_the_zero_date_modes_go() {
        assert_eq!(super::without_zero_date_modes("STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO"), "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO");
        assert_eq!(super::without_zero_date_modes(""), "");
    }
}
