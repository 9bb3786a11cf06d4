//! Reading the statements the binary log carries as text (QUERY events): which transaction-control statement a
//! query is (BEGIN, COMMIT, SAVEPOINT, XA ...), and which tables a DDL or a statement-format DML names.
//! Comments are removed first, except versioned comments (`/*!50100 ... */`, MariaDB's `/*M!100100 ... */`),
//! whose text the server executes and which therefore count as statement text. Pure text work, no I/O.

/// How table names compare on the source (`lower_case_table_names`): 0 byte for byte, 1 and 2 without case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameCase {
    #[default]
    Exact,
    Folded,
}

impl NameCase {
    /// From the server's `@@lower_case_table_names`.
    pub fn from_setting(value: u64) -> Self {
        if value == 0 {
            NameCase::Exact
        } else {
            NameCase::Folded
        }
    }

    /// Do two names (databases or tables) name the same object on this server?
    pub fn same(self, a: &str, b: &str) -> bool {
        match self {
            NameCase::Exact => a == b,
            NameCase::Folded => a.to_lowercase() == b.to_lowercase(),
        }
    }
}

/// What a QUERY event's text is, for transaction boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Begin,
    Commit,
    Rollback,
    /// `SAVEPOINT x`, `ROLLBACK TO [SAVEPOINT] x`, `RELEASE SAVEPOINT x`: inside a transaction, no boundary.
    Savepoint,
    /// `XA START|BEGIN xid` (normalised xid text).
    XaStart(String),
    XaEnd(String),
    /// `XA PREPARE xid` written as a query (not the XA_PREPARE event).
    XaPrepare(String),
    /// `XA COMMIT xid [ONE PHASE]`.
    XaCommit { xid: String, one_phase: bool },
    XaRollback(String),
    /// Anything else: DDL, or DML written as a statement.
    Statement,
}

/// Classifies a query event's text.
pub fn classify(text: &str) -> Control {
    let clean = strip_comments(text);
    let upper = clean.trim().trim_end_matches(';').trim().to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    match words.as_slice() {
        ["BEGIN"] | ["BEGIN", "WORK"] | ["START", "TRANSACTION", ..] => Control::Begin,
        ["COMMIT"] | ["COMMIT", "WORK"] => Control::Commit,
        ["ROLLBACK"] | ["ROLLBACK", "WORK"] => Control::Rollback,
        ["SAVEPOINT", ..] | ["ROLLBACK", "TO", ..] | ["ROLLBACK", "WORK", "TO", ..] | ["RELEASE", "SAVEPOINT", ..] => {
            Control::Savepoint
        }
        ["XA", verb, rest @ ..] => {
            let xid = |rest: &[&str]| normalize_xid(&rest.join(" "));
            match *verb {
                "START" | "BEGIN" => Control::XaStart(xid(rest)),
                "END" => Control::XaEnd(xid(rest)),
                "PREPARE" => Control::XaPrepare(xid(rest)),
                "COMMIT" => {
                    let one_phase = rest.ends_with(&["ONE", "PHASE"]);
                    let xid_words = if one_phase { &rest[..rest.len() - 2] } else { rest };
                    Control::XaCommit { xid: xid(xid_words), one_phase }
                }
                "ROLLBACK" => Control::XaRollback(xid(rest)),
                _ => Control::Statement,
            }
        }
        _ => Control::Statement,
    }
}

/// An xid as `X'..',X'..',n` or `'gtrid'[,'bqual'[,n]]`, compared without spaces or case of the hex digits; the
/// suffixes `JOIN`/`RESUME`/`SUSPEND ...` of XA START/END are dropped.
fn normalize_xid(text: &str) -> String {
    let mut t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for suffix in ["JOIN", "RESUME", "SUSPEND", "SUSPENDFORMIGRATE"] {
        if let Some(s) = t.strip_suffix(suffix) {
            t = s.to_string();
        }
    }
    t.to_ascii_uppercase()
}

/// Statement text without comments; versioned comments keep their content (the server runs it).
pub fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' || c == b'"' || c == b'`' {
            let end = quoted_end(b, i);
            out.push_str(&text[i..end]);
            i = end;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = text[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
            let body = &text[i + 2..end.saturating_sub(2).max(i + 2)];
            out.push(' ');
            if let Some(inner) = versioned_body(body) {
                out.push_str(&strip_comments(inner));
                out.push(' ');
            }
            i = end;
        } else if (c == b'-' && b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_none_or(|x| x.is_ascii_whitespace()))
            || c == b'#'
        {
            let end = text[i..].find('\n').map_or(b.len(), |p| i + p);
            out.push(' ');
            i = end;
        } else {
            let next = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + next]);
            i += next;
        }
    }
    out
}

/// The executed part of `/*!NNNNN text*/` or `/*M!NNNNNN text*/` (given the text between `/*` and `*/`).
fn versioned_body(body: &str) -> Option<&str> {
    let rest = body.strip_prefix("M!").or_else(|| body.strip_prefix('!'))?;
    Some(rest.trim_start_matches(|c: char| c.is_ascii_digit()))
}

/// Index just past the quoted token starting at `start` (doubled quotes and backslash escapes inside strings).
fn quoted_end(b: &[u8], start: usize) -> usize {
    let q = b[start];
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' && q != b'`' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// A token of statement text: a word or identifier (unquoted), or punctuation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A bare word or a backquoted / double-quoted identifier, unquoted.
    Name { text: String, quoted: bool },
    Dot,
    Other,
}

fn tokens(clean: &str) -> Vec<Token> {
    let b = clean.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'`' || c == b'"' {
            let end = quoted_end(b, i);
            let inner = &clean[i + 1..end.saturating_sub(1).max(i + 1)];
            let q = if c == b'`' { "``" } else { "\"\"" };
            out.push(Token::Name { text: inner.replace(q, &q[..1]), quoted: true });
            i = end;
        } else if c == b'\'' {
            i = quoted_end(b, i);
            out.push(Token::Other);
        } else if c == b'.' {
            out.push(Token::Dot);
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80) {
                i += 1;
            }
            out.push(Token::Name { text: clean[start..i].to_string(), quoted: false });
        } else {
            if !c.is_ascii_whitespace() {
                out.push(Token::Other);
            }
            i += 1;
        }
    }
    out
}

/// Every name in the text that could be a table, with its database when qualified (`db.t`).
fn table_names(clean: &str) -> Vec<(Option<String>, String)> {
    let toks = tokens(clean);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if let Token::Name { text, .. } = &toks[i] {
            if let (Some(Token::Dot), Some(Token::Name { text: t, .. })) = (toks.get(i + 1), toks.get(i + 2)) {
                out.push((Some(text.clone()), t.clone()));
                i += 3;
                continue;
            }
            out.push((None, text.clone()));
        }
        i += 1;
    }
    out
}

/// Does the statement name `db.table` anywhere (unqualified names resolve in `schema`, the query's default
/// database)? Conservative: any identifier or word equal to the table counts, wherever it stands.
pub fn mentions(stmt: &str, schema: &str, db: &str, table: &str, case: NameCase) -> bool {
    let clean = strip_comments(stmt);
    table_names(&clean).iter().any(|(d, t)| {
        case.same(t, table) && match d {
            Some(d) => case.same(d, db),
            None => case.same(schema, db) || schema.is_empty(),
        }
    })
}

/// The leading keywords of the statement (comments removed), lower case, bare words only.
fn leading_words(clean: &str, n: usize) -> Vec<String> {
    tokens(clean)
        .into_iter()
        .take_while(|t| matches!(t, Token::Name { quoted: false, .. }))
        .take(n)
        .filter_map(|t| match t {
            Token::Name { text, .. } => Some(text.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Is this a statement that changes rows (DML written as a statement, `binlog_format=STATEMENT` or MIXED)?
pub fn is_dml(stmt: &str) -> bool {
    let clean = strip_comments(stmt);
    let words = leading_words(&clean, 1);
    matches!(words.first().map(String::as_str), Some("insert" | "update" | "delete" | "replace" | "load" | "call" | "with"))
}

/// Is this DDL that can change or remove a table's definition or rows: ALTER / DROP / RENAME / TRUNCATE TABLE,
/// CREATE / DROP [UNIQUE|FULLTEXT|SPATIAL] INDEX, CREATE OR REPLACE TABLE, CREATE TRIGGER, DROP DATABASE?
fn is_table_ddl(clean: &str) -> bool {
    let words = leading_words(clean, 6);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let skip_modifiers = |from: usize| {
        w.iter().skip(from).copied().find(|x| {
            !matches!(*x, "online" | "offline" | "ignore" | "unique" | "fulltext" | "spatial" | "or" | "replace" | "temporary")
        })
    };
    match w.first().copied() {
        Some("alter") => w.iter().take(4).any(|x| *x == "table"),
        Some("drop") => matches!(skip_modifiers(1), Some("table" | "tables" | "index" | "database" | "schema" | "trigger")),
        Some("rename") => matches!(w.get(1).copied(), Some("table" | "tables")),
        Some("truncate") => true,
        Some("create") => matches!(skip_modifiers(1), Some("index" | "table" | "trigger")) || w.contains(&"trigger"),
        _ => false,
    }
}

/// Does this DDL alter, drop, rename, truncate, re-create or index `db.table` (unqualified names resolve in the
/// query's default database `schema`)? `DROP DATABASE db` counts for every table of db.
pub fn ddl_touches(stmt: &str, schema: &str, db: &str, table: &str, case: NameCase) -> bool {
    let clean = strip_comments(stmt);
    if !is_table_ddl(&clean) {
        return false;
    }
    let words = leading_words(&clean, 3);
    if words.first().map(String::as_str) == Some("drop") && matches!(words.get(1).map(String::as_str), Some("database" | "schema")) {
        return table_names(&clean).iter().skip(2).any(|(d, t)| d.is_none() && case.same(t, db));
    }
    mentions(&clean, schema, db, table, case)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_statements_are_told_apart() {
        assert_eq!(classify("BEGIN"), Control::Begin);
        assert_eq!(classify("COMMIT"), Control::Commit);
        assert_eq!(classify("SAVEPOINT `s`"), Control::Savepoint);
        assert_eq!(classify("ROLLBACK TO `s`"), Control::Savepoint);
        assert_eq!(classify("ROLLBACK TO SAVEPOINT s"), Control::Savepoint);
        assert_eq!(classify("ROLLBACK"), Control::Rollback);
        assert_eq!(classify("XA START X'7831',X'',1"), Control::XaStart("X'7831',X'',1".into()));
        assert_eq!(classify("XA END X'7831',X'',1"), Control::XaEnd("X'7831',X'',1".into()));
        assert_eq!(
            classify("XA COMMIT X'7831',X'',1 ONE PHASE"),
            Control::XaCommit { xid: "X'7831',X'',1".into(), one_phase: true }
        );
        assert_eq!(classify("xa rollback 'x1'"), Control::XaRollback("'X1'".into()));
        assert_eq!(classify("UPDATE t SET a = 1"), Control::Statement);
    }

    #[test]
    fn ddl_behind_comments_and_versioned_comments_is_seen() {
        let c = NameCase::Exact;
        assert!(ddl_touches("/* app */ ALTER TABLE t ADD COLUMN x INT", "d", "d", "t", c));
        assert!(ddl_touches("-- x\nALTER TABLE t ADD COLUMN x INT", "d", "d", "t", c));
        assert!(ddl_touches("# x\nDROP TABLE `t`", "d", "d", "t", c));
        assert!(ddl_touches("/*!40000 ALTER TABLE `t` DISABLE KEYS */", "d", "d", "t", c));
        assert!(ddl_touches("/*M!100100 ALTER TABLE t ENGINE=InnoDB */", "d", "d", "t", c));
        assert!(ddl_touches("CREATE INDEX i ON t (a)", "d", "d", "t", c));
        assert!(ddl_touches("CREATE UNIQUE INDEX i ON `d`.`t` (a)", "x", "d", "t", c));
        assert!(ddl_touches("DROP INDEX i ON t", "d", "d", "t", c));
        assert!(ddl_touches("TRUNCATE t", "d", "d", "t", c));
        assert!(ddl_touches("DROP DATABASE d", "", "d", "t", c));
        assert!(ddl_touches("RENAME TABLE t TO x", "d", "d", "t", c));
    }

    #[test]
    fn ddl_elsewhere_is_not_ours() {
        let c = NameCase::Exact;
        assert!(!ddl_touches("ALTER TABLE `_t_gho` ADD COLUMN x INT", "d", "d", "t", c));
        assert!(!ddl_touches("ALTER TABLE t ADD COLUMN x INT", "other", "d", "t", c));
        assert!(!ddl_touches("ALTER TABLE other.t ADD COLUMN x INT", "d", "d", "t", c));
        assert!(!ddl_touches("/* ALTER TABLE t */ CREATE TABLE x (a INT)", "d", "d", "t", c));
        assert!(!ddl_touches("ALTER EVENT t DISABLE", "d", "d", "t", c));
        assert!(!ddl_touches("DROP TABLE other", "d", "d", "t", c));
        assert!(!ddl_touches("ALTER TABLE T ADD x INT", "d", "d", "t", c));
        assert!(ddl_touches("ALTER TABLE T ADD x INT", "D", "d", "t", NameCase::Folded));
    }

    #[test]
    fn statement_dml_names_its_tables() {
        let c = NameCase::Exact;
        assert!(is_dml("UPDATE t SET a = 1 WHERE id = 2"));
        assert!(is_dml("/* x */ insert into d.t values (1)"));
        assert!(!is_dml("CREATE TABLE t (a INT)"));
        assert!(mentions("UPDATE `t` SET a = 1", "d", "d", "t", c));
        assert!(mentions("INSERT INTO x SELECT * FROM d.t", "e", "d", "t", c));
        assert!(!mentions("UPDATE x SET b = 't'", "d", "d", "t", c));
        assert!(!mentions("UPDATE `_t_gho` SET b = 1", "d", "d", "t", c));
    }
}
