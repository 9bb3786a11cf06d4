//! What the engine knows of a table: columns (type, charset, signedness, generation), unique keys, and how the
//! original and the ghost table relate (shared columns, renamed columns, the shared unique key used for chunking).

use std::collections::{HashMap, HashSet};

use color_eyre::eyre::{bail, Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::sql::{qualified, quote_ident};

/// One column as information_schema describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// 1-based position in the table (the index in a binlog row image is ordinal - 1).
    pub ordinal: usize,
    /// `int`, `varchar`, `timestamp`, ... (lower case).
    pub data_type: String,
    /// Full type (`int(10) unsigned`, `enum('a','b')`, ...).
    pub column_type: String,
    pub nullable: bool,
    pub unsigned: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    /// Maximum length in bytes (fixed-length BINARY padding).
    pub octet_length: Option<u64>,
    /// VIRTUAL or STORED generated column: never written.
    pub generated: bool,
    /// ENUM or SET labels, in definition order (4-byte characters come back as '?' from the server).
    pub labels: Vec<String>,
    /// ENUM/SET values are written by index/bitmask (the new column has the same definition), not by label.
    pub enum_as_index: bool,
}

impl Column {
    pub fn is_text(&self) -> bool {
        matches!(
            self.data_type.as_str(),
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
        ) && self.charset.as_deref().is_some_and(|c| c != "binary")
    }
    pub fn is_enum(&self) -> bool {
        self.data_type == "enum"
    }
    pub fn is_set(&self) -> bool {
        self.data_type == "set"
    }
    pub fn is_json(&self) -> bool {
        self.data_type == "json"
    }
    /// Width in bits of an integer type, for reinterpreting unsigned values.
    pub fn int_bits(&self) -> Option<u32> {
        Some(match self.data_type.as_str() {
            "tinyint" => 8,
            "smallint" => 16,
            "mediumint" => 24,
            "int" | "integer" => 32,
            "bigint" => 64,
            _ => return None,
        })
    }

    /// The SQL expression that turns a bound parameter holding this column's value into the right type on the
    /// server. Writer connections run with `SET NAMES binary`: string parameters (from the binary log, or read
    /// back from the table) are the column's raw bytes, so they are relabelled with the column's character set and
    /// never converted. JSON text and ENUM/SET labels are UTF-8 text.
    pub fn placeholder(&self) -> String {
        match &self.charset {
            _ if self.is_json() => "CONVERT(? USING utf8mb4)".to_string(),
            _ if (self.is_enum() || self.is_set()) && !self.enum_as_index => "CONVERT(? USING utf8mb4)".to_string(),
            Some(cs) if self.is_text() => format!("CONVERT(? USING {cs})"),
            _ => "?".to_string(),
        }
    }

    /// Like [`placeholder`](Self::placeholder) but with the column's collation, for comparisons of key values.
    pub fn key_placeholder(&self) -> String {
        match (&self.charset, &self.collation) {
            (Some(cs), Some(coll)) if self.is_text() => format!("CONVERT(? USING {cs}) COLLATE {coll}"),
            _ => self.placeholder(),
        }
    }
}

/// A unique index (or the primary key).
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueKey {
    pub name: String,
    pub columns: Vec<String>,
    pub is_primary: bool,
    /// True when every column is NOT NULL (usable for chunking).
    pub not_null: bool,
}

/// A table's structure.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub database: String,
    pub name: String,
    pub engine: String,
    pub columns: Vec<Column>,
    pub unique_keys: Vec<UniqueKey>,
    pub create_statement: String,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// Reads a table's structure; `None` when the table does not exist. Uses SHOW statements (not information_schema)
/// so that it also works on the temporary table a dry run validates the ALTER on.
pub async fn read_table(conn: &mut mysql_async::Conn, database: &str, table: &str) -> Result<Option<TableInfo>> {
    let q = qualified(database, table);
    let create: (String, String) = match conn.query_first(format!("SHOW CREATE TABLE {q}")).await {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => return Ok(None),
        Err(e) => return Err(e).wrap_err_with(|| format!("SHOW CREATE TABLE {q}")),
    };
    let create_statement = create.1;
    let engine = create_statement
        .rsplit_once("ENGINE=")
        .map(|(_, rest)| rest.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("").to_string())
        .unwrap_or_default();
    let rows: Vec<mysql_async::Row> =
        conn.query(format!("SHOW FULL COLUMNS FROM {q}")).await.wrap_err_with(|| format!("SHOW FULL COLUMNS FROM {q}"))?;
    let mut columns: Vec<Column> = rows.iter().enumerate().map(|(i, r)| column_of(i + 1, r)).collect();
    for col in columns.iter_mut().filter(|c| c.labels.iter().any(|l| l.contains('?'))) {
        match stored_labels(conn, database, &q, col).await {
            Ok(labels) => col.labels = labels,
            Err(e) => tracing::warn!("reading the labels of {q}.{} back from the server: {e:#}", col.name),
        }
    }
    let index_rows: Vec<mysql_async::Row> = conn.query(format!("SHOW INDEX FROM {q}")).await.wrap_err("SHOW INDEX")?;
    let unique_keys = unique_keys_of(&index_rows, &columns);
    Ok(Some(TableInfo { database: database.to_string(), name: table.to_string(), engine, columns, unique_keys, create_statement }))
}

/// The text of a SHOW row's field `name` (any case); None for NULL or a missing field.
fn show_field(r: &mysql_async::Row, name: &str) -> Option<String> {
    let idx = r.columns_ref().iter().position(|c| c.name_str().eq_ignore_ascii_case(name))?;
    match r.as_ref(idx)? {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        mysql_async::Value::Int(i) => Some(i.to_string()),
        mysql_async::Value::UInt(u) => Some(u.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// One row of SHOW FULL COLUMNS as a [`Column`] (`ordinal` from 1).
fn column_of(ordinal: usize, r: &mysql_async::Row) -> Column {
    let get = |name: &str| show_field(r, name);
    let column_type = get("Type").unwrap_or_default();
    let lower = column_type.to_ascii_lowercase();
    let data_type = lower.split(['(', ' ']).next().unwrap_or("").to_string();
    let extra = get("Extra").unwrap_or_default().to_ascii_uppercase();
    let collation = get("Collation");
    let charset = collation.as_ref().map(|c| c.split('_').next().unwrap_or(c).to_string());
    let octet_length = match data_type == "binary" {
        true => lower.split('(').nth(1).and_then(|r| r.split(')').next()).and_then(|n| n.trim().parse().ok()),
        false => None,
    };
    let labels = if data_type == "enum" || data_type == "set" { parse_labels(&column_type) } else { Vec::new() };
    // MySQL marks defaults as DEFAULT_GENERATED: only these words mean a generated column.
    let generated = extra.contains("VIRTUAL GENERATED") || extra.contains("STORED GENERATED") || extra.contains("PERSISTENT");
    Column {
        name: get("Field").unwrap_or_default(),
        ordinal,
        unsigned: lower.contains("unsigned"),
        data_type,
        column_type,
        nullable: get("Null").as_deref() == Some("YES"),
        charset,
        collation,
        octet_length,
        generated,
        labels,
        enum_as_index: false,
    }
}

/// The usable unique keys from SHOW INDEX rows: whole columns only (a prefix or an expression part makes the
/// whole key unusable); primary first, then fewest columns, then name: the same choice every time.
fn unique_keys_of(index_rows: &[mysql_async::Row], columns: &[Column]) -> Vec<UniqueKey> {
    // (key, position in the key, column); position 0 marks a part that is not a whole column.
    let mut parts: Vec<(String, u64, String)> = Vec::new();
    for r in index_rows {
        let get = |name: &str| show_field(r, name);
        if get("Non_unique").as_deref() != Some("0") {
            continue;
        }
        let key = get("Key_name").unwrap_or_default();
        match (get("Column_name"), get("Sub_part")) {
            (Some(col), None) => parts.push((key, get("Seq_in_index").and_then(|s| s.parse().ok()).unwrap_or(0), col)),
            _ => parts.push((key, 0, String::new())),
        }
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut keys: Vec<UniqueKey> = Vec::new();
    let mut unusable: Vec<String> = Vec::new();
    for (index, seq, column) in parts {
        if seq == 0 {
            unusable.push(index);
            continue;
        }
        match keys.iter_mut().find(|k| k.name == index) {
            Some(k) => k.columns.push(column),
            None => keys.push(UniqueKey { is_primary: index == "PRIMARY", name: index, columns: vec![column], not_null: true }),
        }
    }
    keys.retain(|k| !unusable.contains(&k.name));
    for k in &mut keys {
        k.not_null = k.columns.iter().all(|c| columns.iter().any(|col| col.name.eq_ignore_ascii_case(c) && !col.nullable));
    }
    keys.sort_by(|a, b| b.is_primary.cmp(&a.is_primary).then(a.columns.len().cmp(&b.columns.len())).then(a.name.cmp(&b.name)));
    keys
}

/// Parses `enum('a','b''c')` / `set(...)` labels.
pub fn parse_labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else { return Vec::new() };
    let body = &column_type[start + 1..column_type.rfind(')').unwrap_or(column_type.len())];
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quote {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    cur.push('\'');
                    chars.next();
                } else {
                    in_quote = false;
                    out.push(std::mem::take(&mut cur));
                }
            } else if c == '\\' {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            } else {
                cur.push(c);
            }
        } else if c == '\'' {
            in_quote = true;
        }
    }
    out
}

/// The ENUM/SET labels as the server stores them. The server's metadata text is utf8mb3 (MariaDB shows a 4-byte
/// character as '?', even in SHOW CREATE TABLE); the values themselves are not: store each index (or bit) in a
/// temporary table with the column's own type and read the value back as utf8mb4 bytes.
async fn stored_labels(conn: &mut mysql_async::Conn, database: &str, table: &str, col: &Column) -> Result<Vec<String>> {
    let tmp = qualified(database, "_rvn_enum_labels");
    conn.query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {tmp}")).await?;
    conn.query_drop(format!("CREATE TEMPORARY TABLE {tmp} (i INT) SELECT {} AS v FROM {table} LIMIT 0", quote_ident(&col.name)))
        .await
        .wrap_err("creating a temporary table with the column's type")?;
    let values: Vec<String> = (0..col.labels.len())
        .map(|k| format!("({}, {})", k + 1, if col.is_set() { 1u64 << k.min(63) } else { k as u64 + 1 }))
        .collect();
    let read = async {
        conn.query_drop(format!("INSERT INTO {tmp} (i, v) VALUES {}", values.join(", "))).await?;
        let rows: Vec<Vec<u8>> =
            conn.query(format!("SELECT CAST(CONVERT(v USING utf8mb4) AS BINARY) FROM {tmp} ORDER BY i")).await?;
        Ok::<_, mysql_async::Error>(rows)
    }
    .await;
    let _ = conn.query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {tmp}")).await;
    let rows = read.wrap_err("reading the labels back")?;
    if rows.len() != col.labels.len() {
        bail!("{} labels read back, {} expected", rows.len(), col.labels.len());
    }
    Ok(rows.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect())
}

/// How the original and the ghost table relate.
#[derive(Debug, Clone)]
pub struct ColumnMapping {
    /// (original column, ghost column name) for every column written by copy and apply.
    pub shared: Vec<(Column, String)>,
    /// The original's unique key the copy walks (original column names).
    pub key: UniqueKey,
    /// The ghost's unique key that identifies a row for apply (ghost names); its columns include the chunk key's,
    /// so it is unique in the original too.
    pub ghost_key_columns: Vec<String>,
    /// The original column names of `ghost_key_columns`, in the same order.
    pub apply_key_source_columns: Vec<String>,
    /// The keys allow NULL (no PRIMARY nor NOT NULL UNIQUE key is shared): only taken with gh-ost's
    /// `--allow-nullable-unique-key`, and only while no row holds a NULL in them (see `plan::preflight`).
    pub nullable_key: bool,
}

impl ColumnMapping {
    /// The original's columns of the copy key and the apply key (a NULL in any of them is a row no key reaches).
    pub fn key_source_columns(&self) -> Vec<String> {
        let mut cols = self.key.columns.clone();
        for c in &self.apply_key_source_columns {
            if !cols.iter().any(|k| k.eq_ignore_ascii_case(c)) {
                cols.push(c.clone());
            }
        }
        cols
    }
}

/// Pairs the columns of `original` and `ghost` (by name, and through the approved renames `old -> new`; a column the
/// ALTER drops is never paired, even when it is added again under its name), and picks the
/// shared unique key: a NOT NULL unique key of the original whose columns all lie inside a NOT NULL unique key of
/// the ghost (equal column lists first).
pub fn map_columns(
    original: &TableInfo,
    ghost: &TableInfo,
    renames: &HashMap<String, String>,
    dropped: &HashSet<String>,
) -> Result<ColumnMapping> {
    let mut shared = Vec::new();
    for col in &original.columns {
        if col.generated || dropped.contains(&col.name.to_ascii_lowercase()) {
            continue;
        }
        let target = renames.get(&col.name.to_ascii_lowercase()).cloned().unwrap_or_else(|| col.name.clone());
        if let Some(g) = ghost.column(&target) {
            if !g.generated {
                shared.push((col.clone(), g.name.clone()));
            }
        }
    }
    if shared.is_empty() {
        bail!("the original and the new table share no columns");
    }
    // Key columns also pair through stored generated columns defined alike in both (never written: the server
    // computes them from the shared columns, so their values are the same on both sides).
    let generated = same_generated_columns(original, ghost, renames, dropped);
    let ghost_name = |orig: &str| -> Option<String> {
        shared.iter().chain(&generated).find(|(c, _)| c.name.eq_ignore_ascii_case(orig)).map(|(_, g)| g.clone())
    };
    let orig_name = |ghost_col: &str| -> Option<String> {
        shared.iter().chain(&generated).find(|(_, g)| g.eq_ignore_ascii_case(ghost_col)).map(|(c, _)| c.name.clone())
    };
    let search = |nullable: bool| best_key(original, ghost, &shared, nullable, &ghost_name, &orig_name);
    if let Some(m) = search(false).or_else(|| search(true)) {
        return Ok(m);
    }
    bail!(
        "no PRIMARY KEY or UNIQUE KEY of {}.{} exists on the same columns in the new schema \
         (original keys: {}; new keys: {})",
        original.database,
        original.name,
        describe_keys(&original.unique_keys),
        describe_keys(&ghost.unique_keys)
    )
}

/// The best pair of an original and a ghost unique key over the same columns (the ghost's exactly those, else
/// the fewest more): among NOT NULL keys, or with `nullable` among keys that allow NULL too.
fn best_key(
    original: &TableInfo,
    ghost: &TableInfo,
    shared: &[(Column, String)],
    nullable: bool,
    ghost_name: &dyn Fn(&str) -> Option<String>,
    orig_name: &dyn Fn(&str) -> Option<String>,
) -> Option<ColumnMapping> {
    let eligible = |k: &&UniqueKey| nullable || k.not_null;
    let mut best: Option<(usize, ColumnMapping)> = None;
    for key in original.unique_keys.iter().filter(eligible) {
        let Some(ghost_cols) = key.columns.iter().map(|c| ghost_name(c)).collect::<Option<Vec<String>>>() else {
            continue;
        };
        for gk in ghost.unique_keys.iter().filter(eligible) {
            let contains_all = ghost_cols.iter().all(|c| gk.columns.iter().any(|g| g.eq_ignore_ascii_case(c)));
            let Some(sources) = gk.columns.iter().map(|g| orig_name(g)).collect::<Option<Vec<String>>>() else {
                continue;
            };
            if !contains_all {
                continue;
            }
            let exact = gk.columns.len() == ghost_cols.len();
            let rank = if exact { 0 } else { gk.columns.len() };
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                best = Some((
                    rank,
                    ColumnMapping {
                        shared: shared.to_vec(),
                        key: key.clone(),
                        ghost_key_columns: gk.columns.clone(),
                        apply_key_source_columns: sources,
                        nullable_key: !key.not_null || !gk.not_null,
                    },
                ));
            }
        }
        if best.as_ref().is_some_and(|(r, _)| *r == 0) {
            break;
        }
    }
    best.map(|(_, m)| m)
}

/// The ghost's unique keys split for the copy's duplicate-key warnings: (keys that contain a unique key of the
/// original, whose skips are expected; keys the ALTER adds, with the original's names of their columns, empty when
/// a column is new).
pub fn unique_keys_of_ghost(original: &TableInfo, ghost: &TableInfo, mapping: &ColumnMapping) -> (Vec<String>, Vec<(String, Vec<String>)>) {
    let orig_name = |ghost_col: &str| -> Option<String> {
        mapping.shared.iter().find(|(_, g)| g.eq_ignore_ascii_case(ghost_col)).map(|(c, _)| c.name.clone())
    };
    let mut implied = Vec::new();
    let mut added = Vec::new();
    for gk in &ghost.unique_keys {
        let sources: Option<Vec<String>> = gk.columns.iter().map(|g| orig_name(g)).collect();
        let contains_shared_key = mapping.ghost_key_columns.iter().all(|c| gk.columns.iter().any(|g| g.eq_ignore_ascii_case(c)));
        let contains_original_key = contains_shared_key
            || sources.as_ref().is_some_and(|src| {
                original.unique_keys.iter().any(|k| k.columns.iter().all(|c| src.iter().any(|s| s.eq_ignore_ascii_case(c))))
            });
        match contains_original_key {
            true => implied.push(gk.name.clone()),
            false => added.push((gk.name.clone(), sources.unwrap_or_default())),
        }
    }
    (implied, added)
}

/// Generated columns of the original whose definition (as SHOW CREATE TABLE prints it) the ghost keeps word for
/// word under the same or the approved new name: (original column, ghost column name).
fn same_generated_columns(original: &TableInfo, ghost: &TableInfo, renames: &HashMap<String, String>, dropped: &HashSet<String>) -> Vec<(Column, String)> {
    let mut pairs = Vec::new();
    for col in original.columns.iter().filter(|c| c.generated && !dropped.contains(&c.name.to_ascii_lowercase())) {
        let target = renames.get(&col.name.to_ascii_lowercase()).cloned().unwrap_or_else(|| col.name.clone());
        let Some(g) = ghost.column(&target).filter(|g| g.generated) else { continue };
        let (a, b) = (column_definition(&original.create_statement, &col.name), column_definition(&ghost.create_statement, &g.name));
        if a.is_some() && a == b {
            pairs.push((col.clone(), g.name.clone()));
        }
    }
    pairs
}

/// The definition of column `name` in a CREATE TABLE statement (the text after the quoted name, without the comma).
fn column_definition(create: &str, name: &str) -> Option<String> {
    let quoted = format!("`{}` ", name.replace('`', "``"));
    create
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(quoted.as_str()))
        .map(|d| d.trim_end_matches(',').to_string())
}

fn describe_keys(keys: &[UniqueKey]) -> String {
    if keys.is_empty() {
        return "none".to_string();
    }
    keys.iter()
        .map(|k| format!("{}({}){}", k.name, k.columns.join(","), if k.not_null { "" } else { " nullable" }))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_parse_with_quotes() {
        assert_eq!(parse_labels("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
        assert_eq!(parse_labels("set('x')"), vec!["x"]);
    }
}
