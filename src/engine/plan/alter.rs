//! Reading the operator's ALTER: the clause to apply to the ghost table, and what it says about columns and the
//! table's name (renamed columns need approval; renaming the table is refused).

use std::collections::{HashMap, HashSet};

use color_eyre::eyre::{bail, Result};

/// What the engine needs to know about an ALTER clause.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlterPlan {
    /// The clause without `ALTER TABLE name` (what is applied to the ghost table).
    pub clause: String,
    /// `old -> new` column renames (lower-case keys), from `CHANGE [COLUMN] a b` and `RENAME COLUMN a TO b`.
    pub renames: HashMap<String, String>,
    /// Columns the ALTER drops (lower-case), from `DROP [COLUMN] [IF EXISTS] c`. A column dropped and added again
    /// under the same name is a new column: its old values are not copied (gh-ost does the same).
    pub dropped_columns: HashSet<String>,
    /// The ALTER renames the table itself.
    pub renames_table: bool,
    /// The ALTER adds a foreign key.
    pub adds_foreign_key: bool,
    /// Database and table named by a full `ALTER TABLE db.t ...`, if given.
    pub named_database: Option<String>,
    pub named_table: Option<String>,
}

/// Splits SQL text into tokens: identifiers/keywords, quoted strings/identifiers, and single punctuation.
fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '`' || c == '\'' || c == '"' {
            let q = c;
            let mut s = String::from(q);
            i += 1;
            while i < chars.len() {
                if chars[i] == q {
                    if i + 1 < chars.len() && chars[i + 1] == q {
                        s.push(q);
                        s.push(q);
                        i += 2;
                        continue;
                    }
                    break;
                }
                if chars[i] == '\\' && q != '`' && i + 1 < chars.len() {
                    s.push(chars[i]);
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            s.push(q);
            i += 1;
            out.push(s);
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut s = String::new();
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                s.push(chars[i]);
                i += 1;
            }
            out.push(s);
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// The name inside a token, without backticks.
fn unquote(tok: &str) -> String {
    if tok.len() >= 2 && tok.starts_with('`') && tok.ends_with('`') {
        tok[1..tok.len() - 1].replace("``", "`")
    } else {
        tok.to_string()
    }
}

fn is_kw(tok: Option<&String>, kw: &str) -> bool {
    tok.is_some_and(|t| t.eq_ignore_ascii_case(kw))
}

/// Words an ALTER TABLE specification may begin with (MySQL 8.0+ and MariaDB 10.6+), lower case. Table options
/// may follow each other without commas (`ENGINE=InnoDB ROW_FORMAT=DYNAMIC`): only a specification's first word
/// is checked here; the server checks the rest on a private temporary table.
const SPEC_WORDS: &[&str] = &[
    "add", "algorithm", "alter", "analyze", "auto_increment", "autoextend_size", "avg_row_length", "change",
    "character", "charset", "check", "checksum", "coalesce", "collate", "comment", "compression", "connection",
    "convert", "data", "default", "delay_key_write", "disable", "drop", "enable", "encrypted", "encryption",
    "encryption_key_id", "engine", "engine_attribute", "force", "ietf_quotes", "index", "insert_method",
    "key_block_size", "lock", "max_rows", "min_rows", "modify", "nowait", "optimize", "order", "pack_keys",
    "page_checksum", "page_compressed", "page_compression_level", "partition", "password", "rebuild", "remove",
    "rename", "reorganize", "repair", "row_format", "secondary_engine", "secondary_engine_attribute",
    "stats_auto_recalc", "stats_persistent", "stats_sample_pages", "storage", "tablespace", "transactional",
    "truncate", "union", "upgrade", "wait", "with", "without",
];

/// Finds what makes `text` more (or other) than one statement: a `;` followed by more text, a comment (text the
/// server reads but a person does not: `/*! ... */` even runs), an unterminated quote. `None` when it is one
/// statement (a trailing `;` is allowed). Quotes follow MySQL's rules (doubled quotes, backslash escapes).
pub fn single_statement_problem(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if let Some(q) = quote {
            if c == '\\' && q != '`' {
                i += 2;
                continue;
            }
            if c == q {
                if next == Some(q) {
                    i += 2;
                    continue;
                }
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '`' | '\'' | '"' => quote = Some(c),
            ';' if chars[i + 1..].iter().all(|c| c.is_whitespace()) => {}
            ';' => return Some("holds a `;` followed by more text (a second statement)".into()),
            '#' => return Some("holds a `#` comment".into()),
            '/' if next == Some('*') => return Some("holds a `/*` comment".into()),
            '-' if next == Some('-') && chars.get(i + 2).is_none_or(|c| c.is_whitespace() || c.is_control()) => {
                return Some("holds a `-- ` comment".into())
            }
            _ => {}
        }
        i += 1;
    }
    quote.map(|q| format!("has a {q} quote that is never closed"))
}

/// Refuses what is not one ALTER clause list (see [`single_statement_problem`]). Checked before anything connects.
pub fn check_one_alter(text: &str) -> Result<()> {
    match single_statement_problem(text) {
        Some(p) => bail!("--alter must be one ALTER clause list, but it {p}: `{}`", text.trim()),
        None => Ok(()),
    }
}

/// Refuses a top-level specification that does not begin like an ALTER TABLE specification (`next` is the word
/// after it: `DROP TABLE x` and `TRUNCATE TABLE x` are statements, not specifications).
fn check_spec_word(word: &str, next: Option<&String>, clause: &str) -> Result<()> {
    let w = word.to_ascii_lowercase();
    let n = next.map(|n| n.to_ascii_lowercase()).unwrap_or_default();
    let statement_objects = ["table", "tables", "database", "schema", "user", "view", "procedure", "function", "trigger", "event", "server", "role", "temporary"];
    if (w == "drop" && statement_objects.contains(&n.as_str())) || (w == "truncate" && n != "partition") {
        bail!("--alter must be one ALTER clause list, but `{word} {}` is a statement, not an ALTER TABLE specification", next.map(String::as_str).unwrap_or(""));
    }
    if w == "exchange" {
        bail!("--alter: EXCHANGE PARTITION changes another table; revenant does not run it");
    }
    if !SPEC_WORDS.contains(&w.as_str()) {
        bail!(
            "--alter must be one ALTER clause list, but `{word}` does not begin an ALTER TABLE specification \
             (in `{clause}`); give e.g. ADD COLUMN c INT, DROP KEY k"
        );
    }
    Ok(())
}

/// Parses `--alter` text: either a clause (`ADD COLUMN x INT`) or a full `ALTER TABLE [db.]t clause`.
/// Anything else (a second statement, a comment, a specification ALTER TABLE does not have) is refused.
pub fn parse_alter(text: &str) -> Result<AlterPlan> {
    check_one_alter(text)?;
    let trimmed = text.trim().trim_end_matches(';').trim();
    if trimmed.is_empty() {
        bail!("the ALTER is empty");
    }
    let mut plan = AlterPlan::default();
    let clause = strip_alter_table(trimmed, &mut plan)?;
    if clause.is_empty() {
        bail!("the ALTER has no clause after the table name");
    }
    let ct = tokens(&clause);
    for i in spec_starts(&ct) {
        check_spec_word(&ct[i], ct.get(i + 1), &clause)?;
        read_spec(&ct[i..], &mut plan);
    }
    plan.clause = clause;
    Ok(plan)
}

/// `ALTER [ONLINE] [IGNORE] TABLE [db.]name clause` -> the clause (the names go into `plan`); a clause alone is
/// returned as it is.
fn strip_alter_table(trimmed: &str, plan: &mut AlterPlan) -> Result<String> {
    let toks = tokens(trimmed);
    if !is_kw(toks.first(), "alter") {
        return Ok(trimmed.to_string());
    }
    let Some(i) = toks.iter().position(|t| t.eq_ignore_ascii_case("table")) else {
        bail!("'{trimmed}' starts with ALTER but has no TABLE: give the clause only (e.g. ADD COLUMN c INT)");
    };
    let first = toks.get(i + 1).map(|t| unquote(t)).unwrap_or_default();
    let mut consumed = i + 2;
    if toks.get(i + 2).map(String::as_str) == Some(".") {
        plan.named_database = Some(first);
        plan.named_table = toks.get(i + 3).map(|t| unquote(t));
        consumed = i + 4;
    } else {
        plan.named_table = Some(first);
    }
    // Cut the text after the table name: find the name tokens' end in the original text.
    let mut pos = 0;
    for t in toks.iter().take(consumed) {
        if let Some(found) = trimmed[pos..].find(t.as_str()) {
            pos += found + t.len();
        }
    }
    Ok(trimmed[pos..].trim().to_string())
}

/// The token indexes where a top-level, comma-separated alter specification begins.
fn spec_starts(ct: &[String]) -> Vec<usize> {
    let (mut depth, mut starts, mut spec_start) = (0i32, Vec::new(), true);
    for (i, t) in ct.iter().enumerate() {
        match t.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," if depth == 0 => {
                spec_start = true;
                continue;
            }
            _ => {}
        }
        if depth == 0 && spec_start {
            spec_start = false;
            starts.push(i);
        }
    }
    starts
}

/// What one specification (its tokens from the first word on) tells the plan: renamed, dropped columns, a
/// renamed table, an added foreign key.
fn read_spec(spec: &[String], plan: &mut AlterPlan) {
    let word = |k: usize| spec.get(k).map(|s| s.to_ascii_lowercase());
    match word(0).as_deref() {
        Some("rename") => match word(1).as_deref() {
            Some("column") => note_rename(spec.get(2), spec.get(4), plan),
            Some("index") | Some("key") => {}
            _ => plan.renames_table = true,
        },
        Some("change") => {
            let mut j = 1;
            if is_kw(spec.get(j), "column") {
                j += 1;
            }
            if is_kw(spec.get(j), "if") {
                j += 2; // IF EXISTS
            }
            note_rename(spec.get(j), spec.get(j + 1), plan);
        }
        Some("drop") => {
            let not_a_column = ["index", "key", "primary", "foreign", "constraint", "check", "partition", "unique", "fulltext", "spatial", "period", "system"];
            if word(1).as_deref().is_some_and(|n| not_a_column.contains(&n)) {
                return;
            }
            let mut j = 1;
            if is_kw(spec.get(j), "column") {
                j += 1;
            }
            if is_kw(spec.get(j), "if") && is_kw(spec.get(j + 1), "exists") {
                j += 2;
            }
            if let Some(c) = spec.get(j) {
                plan.dropped_columns.insert(unquote(c).to_ascii_lowercase());
            }
        }
        Some("add") => {
            // ADD [CONSTRAINT [name]] FOREIGN KEY
            let window: Vec<String> = spec[..spec.len().min(5)].iter().map(|s| s.to_ascii_lowercase()).collect();
            if window.windows(2).any(|w| w[0] == "foreign" && w[1] == "key") {
                plan.adds_foreign_key = true;
            }
        }
        _ => {}
    }
}

/// `from` renamed to `to` (names compared as the server does: without case).
fn note_rename(from: Option<&String>, to: Option<&String>, plan: &mut AlterPlan) {
    if let (Some(a), Some(b)) = (from, to) {
        let (a, b) = (unquote(a), unquote(b));
        if !a.eq_ignore_ascii_case(&b) {
            plan.renames.insert(a.to_ascii_lowercase(), b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clause_and_full_statement() {
        let p = parse_alter("ADD COLUMN f INT").unwrap();
        assert_eq!(p.clause, "ADD COLUMN f INT");
        let p = parse_alter("ALTER TABLE `shop`.`orders` ADD COLUMN f INT;").unwrap();
        assert_eq!(p.clause, "ADD COLUMN f INT");
        assert_eq!(p.named_database.as_deref(), Some("shop"));
        assert_eq!(p.named_table.as_deref(), Some("orders"));
        let p = parse_alter("alter table t engine=innodb").unwrap();
        assert_eq!(p.clause, "engine=innodb");
        assert_eq!(p.named_table.as_deref(), Some("t"));
    }

    #[test]
    fn renames_are_detected() {
        let p = parse_alter("change column i j int not null, modify k bigint").unwrap();
        assert_eq!(p.renames.get("i").map(String::as_str), Some("j"));
        let p = parse_alter("CHANGE i i bigint").unwrap();
        assert!(p.renames.is_empty());
        let p = parse_alter("rename column a to b").unwrap();
        assert_eq!(p.renames.get("a").map(String::as_str), Some("b"));
        assert!(parse_alter("rename to other").unwrap().renames_table);
        assert!(parse_alter("RENAME AS other").unwrap().renames_table);
        assert!(!parse_alter("rename index a to b").unwrap().renames_table);
        assert!(parse_alter("add constraint fk foreign key (a) references p(id)").unwrap().adds_foreign_key);
        assert!(parse_alter("add column x enum('a,b','c') , add key (x)").unwrap().renames.is_empty());
    }

    #[test]
    fn a_second_statement_or_a_comment_is_refused() {
        for bad in [
            "ADD COLUMN c INT; DROP TABLE shop.victim",
            "ADD COLUMN c INT;DROP TABLE shop.victim;",
            "ADD COLUMN c INT ; ; ",
            "ADD COLUMN c INT -- hidden\n; DROP TABLE x",
            "ADD COLUMN c INT /*!; DROP TABLE x */",
            "ADD COLUMN c INT # x",
            "ADD COLUMN c VARCHAR(3) DEFAULT 'a",
            "ALTER TABLE t ADD COLUMN c INT; DROP TABLE x",
        ] {
            let e = parse_alter(bad).expect_err(bad).to_string();
            assert!(e.contains("one ALTER clause list"), "{bad:?}: {e}");
        }
        // Inside quotes a `;`, `#` or `--` is data.
        for good in [
            "ADD COLUMN c VARCHAR(9) DEFAULT 'a;b'",
            "ADD COLUMN `we;ird` INT COMMENT 'x -- y # z /* w */'",
            "ADD COLUMN c VARCHAR(9) DEFAULT 'it''s; ok'",
            "ADD COLUMN c VARCHAR(9) DEFAULT 'back\\'slash;'",
            "ADD COLUMN c INT;",
            "ADD COLUMN c INT DEFAULT -1",
        ] {
            parse_alter(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
    }

    #[test]
    fn only_alter_specifications_are_accepted() {
        for bad in ["SELECT 1", "DROP TABLE x", "ADD COLUMN c INT, DELETE FROM t", "TRUNCATE TABLE x", "GRANT ALL ON *.* TO x"] {
            let e = parse_alter(bad).expect_err(bad).to_string();
            assert!(e.contains("one ALTER clause list") || e.contains("revenant does not run"), "{bad:?}: {e}");
        }
        let e = parse_alter("EXCHANGE PARTITION p WITH TABLE shop.victim").expect_err("exchange").to_string();
        assert!(e.contains("another table"), "{e}");
        for good in [
            "ENGINE=InnoDB ROW_FORMAT=DYNAMIC",
            "MODIFY c BIGINT, ALGORITHM=INPLACE, LOCK=NONE",
            "CONVERT TO CHARACTER SET utf8mb4",
            "FORCE",
            "add index (a), add unique key u (b)",
            "ALTER TABLE shop.orders ADD COLUMN c INT",
        ] {
            parse_alter(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
    }

    #[test]
    fn dropped_columns_are_detected() {
        let p = parse_alter("drop column c1, add column c1 int not null default 47").unwrap();
        assert!(p.dropped_columns.contains("c1"));
        let p = parse_alter("DROP `Mixed`, DROP COLUMN IF EXISTS y, drop index k, drop primary key, drop foreign key f").unwrap();
        let mut d: Vec<&String> = p.dropped_columns.iter().collect();
        d.sort();
        assert_eq!(d, vec!["mixed", "y"]);
    }
}
