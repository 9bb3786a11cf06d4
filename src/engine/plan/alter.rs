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

/// Parses `--alter` text: either a clause (`ADD COLUMN x INT`) or a full `ALTER TABLE [db.]t clause`.
pub fn parse_alter(text: &str) -> Result<AlterPlan> {
    let trimmed = text.trim().trim_end_matches(';').trim();
    if trimmed.is_empty() {
        bail!("the ALTER is empty");
    }
    let toks = tokens(trimmed);
    let mut plan = AlterPlan::default();
    let mut clause = trimmed.to_string();
    if is_kw(toks.first(), "alter") {
        // ALTER [ONLINE] [IGNORE] TABLE name clause
        let mut i = 1;
        while i < toks.len() && !toks[i].eq_ignore_ascii_case("table") {
            i += 1;
        }
        if i >= toks.len() {
            bail!("'{trimmed}' starts with ALTER but has no TABLE: give the clause only (e.g. ADD COLUMN c INT)");
        }
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
        clause = trimmed[pos..].trim().to_string();
    }
    if clause.is_empty() {
        bail!("the ALTER has no clause after the table name");
    }
    let ct = tokens(&clause);
    let mut depth = 0i32;
    // Walk the top-level, comma-separated alter specifications.
    let mut spec_start = true;
    for i in 0..ct.len() {
        let t = &ct[i];
        match t.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," if depth == 0 => {
                spec_start = true;
                continue;
            }
            _ => {}
        }
        if depth != 0 {
            continue;
        }
        if spec_start {
            spec_start = false;
            let kw = t.to_ascii_lowercase();
            if kw == "rename" {
                let next = ct.get(i + 1).map(|s| s.to_ascii_lowercase());
                match next.as_deref() {
                    Some("column") => {
                        if let (Some(a), Some(b)) = (ct.get(i + 2), ct.get(i + 4)) {
                            let (a, b) = (unquote(a), unquote(b));
                            if !a.eq_ignore_ascii_case(&b) {
                                plan.renames.insert(a.to_ascii_lowercase(), b);
                            }
                        }
                    }
                    Some("index") | Some("key") => {}
                    _ => plan.renames_table = true,
                }
            } else if kw == "change" {
                let mut j = i + 1;
                if is_kw(ct.get(j), "column") {
                    j += 1;
                }
                if is_kw(ct.get(j), "if") {
                    j += 2; // IF EXISTS
                }
                if let (Some(a), Some(b)) = (ct.get(j), ct.get(j + 1)) {
                    let (a, b) = (unquote(a), unquote(b));
                    if !a.eq_ignore_ascii_case(&b) {
                        plan.renames.insert(a.to_ascii_lowercase(), b);
                    }
                }
            } else if kw == "drop" {
                let mut j = i + 1;
                let next = ct.get(j).map(|s| s.to_ascii_lowercase());
                let not_a_column = ["index", "key", "primary", "foreign", "constraint", "check", "partition", "unique", "fulltext", "spatial", "period", "system"];
                if next.as_deref().is_some_and(|n| not_a_column.contains(&n)) {
                    continue;
                }
                if is_kw(ct.get(j), "column") {
                    j += 1;
                }
                if is_kw(ct.get(j), "if") && is_kw(ct.get(j + 1), "exists") {
                    j += 2;
                }
                if let Some(c) = ct.get(j) {
                    plan.dropped_columns.insert(unquote(c).to_ascii_lowercase());
                }
            } else if kw == "add" {
                // ADD [CONSTRAINT [name]] FOREIGN KEY
                let window: Vec<String> = ct[i..ct.len().min(i + 5)].iter().map(|s| s.to_ascii_lowercase()).collect();
                if window.windows(2).any(|w| w[0] == "foreign" && w[1] == "key") {
                    plan.adds_foreign_key = true;
                }
            }
        }
    }
    plan.clause = clause;
    Ok(plan)
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
    fn dropped_columns_are_detected() {
        let p = parse_alter("drop column c1, add column c1 int not null default 47").unwrap();
        assert!(p.dropped_columns.contains("c1"));
        let p = parse_alter("DROP `Mixed`, DROP COLUMN IF EXISTS y, drop index k, drop primary key, drop foreign key f").unwrap();
        let mut d: Vec<&String> = p.dropped_columns.iter().collect();
        d.sort();
        assert_eq!(d, vec!["mixed", "y"]);
    }
}
