//! The checksum's SQL: which shared columns can be compared exactly and in what form (the ghost's value and the
//! original's, converted the way the ghost would hold it), the key ranges of the shared key on either table, and
//! the per-chunk query `COUNT(*)`, `BIT_XOR(CRC32(..))` over `CONCAT_WS` of the columns with
//! `ISNULL` markers (a NULL and an empty string differ). Only identifiers from the schema become SQL, quoted; key
//! values are bound.

use mysql_async::Value;

use crate::engine::copy::copier::CopyJob;
use crate::engine::plan::schema::{Column, TableInfo};
use crate::engine::sql::{qualified, quote_ident, tuple_compare};

/// ISNULL markers packed into one integer of the row's text.
const MARKS_PER_WORD: usize = 60;

/// A chunk of the shared key: `lower < key <= upper` (no lower: from the start; no upper: to the end).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRange {
    pub lower: Option<Vec<Value>>,
    pub upper: Option<Vec<Value>>,
}

impl KeyRange {
    /// `(lower, upper]` as people read it, for messages.
    pub fn describe(&self) -> String {
        let side = |k: &Option<Vec<Value>>, none: &str| k.as_deref().map(crate::engine::checkpoint::describe_key).unwrap_or_else(|| none.into());
        format!("({}, {}]", side(&self.lower, "start"), side(&self.upper, "end"))
    }
}

/// One side of the comparison (original or ghost): its table, key columns and the compared expressions.
#[derive(Debug, Clone)]
pub struct Side {
    pub table: String,
    /// `FORCE INDEX (..)` on the original (the copier's index); empty on the ghost.
    pub hint: String,
    pub key: Vec<String>,
    pub key_placeholders: Vec<String>,
    /// The compared expressions, in the same order on both sides.
    pub exprs: Vec<String>,
    /// Whether each expression can be NULL on either side (only those get an ISNULL marker).
    pub nullable: Vec<bool>,
}

/// Both sides, and the columns left out because their conversion cannot be compared exactly.
#[derive(Debug, Clone)]
pub struct Forms {
    pub original: Side,
    pub ghost: Side,
    pub skipped: Vec<String>,
}

fn is_integer(c: &Column) -> bool {
    matches!(c.data_type.as_str(), "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint")
}

fn is_varbinary(c: &Column) -> bool {
    matches!(c.data_type.as_str(), "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob")
        || (matches!(c.data_type.as_str(), "varchar" | "tinytext" | "text" | "mediumtext" | "longtext") && !c.is_text())
}

/// The decimal scale of `decimal(p,s)`.
fn decimal_scale(c: &Column) -> Option<&str> {
    (c.data_type == "decimal").then(|| c.column_type.split(',').nth(1).unwrap_or("0)").trim_end_matches(|ch: char| !ch.is_ascii_digit()))
}

/// How a pair compares: `Some((original expr, ghost expr))`, or None when the conversion is not exact text.
/// Text in the same charset is compared as its bytes; across charsets as utf8mb4 on both sides (a charset change
/// that lost characters shows as a difference);
/// integers, decimals of the same scale and byte strings by their text; anything else only when the column
/// type is unchanged.
pub fn compare_form(orig: &Column, ghost: &Column) -> Option<(String, String)> {
    let (o, g) = (quote_ident(&orig.name), quote_ident(&ghost.name));
    if orig.is_text() && ghost.is_text() && orig.charset == ghost.charset {
        // The same bytes stand for the same text: compared as bytes, without a conversion.
        return Some((format!("CAST({o} AS BINARY)"), format!("CAST({g} AS BINARY)")));
    }
    if orig.is_text() && ghost.is_text() {
        return Some((format!("CONVERT({o} USING utf8mb4)"), format!("CONVERT({g} USING utf8mb4)")));
    }
    let same_type = orig.column_type.eq_ignore_ascii_case(&ghost.column_type) && orig.charset == ghost.charset;
    let exact = same_type
        || (is_integer(orig) && is_integer(ghost))
        || (is_varbinary(orig) && is_varbinary(ghost))
        || (decimal_scale(orig).is_some() && decimal_scale(orig) == decimal_scale(ghost));
    exact.then_some((o, g))
}

/// The forms of a copy job's column pairs against the ghost's structure. `bare_allowed`: text may go into the row
/// bare where [`bare_text`] allows it; only on MariaDB, where that was cheaper (one connection, a million rows:
/// 629-672 -> 438-527 ms on scripts/bench's table), while MySQL 9.7 built a bare row of `id, a, VARCHAR` slower
/// than one with the VARCHAR cast to binary (598-604 against 379-552 ms): docs/benchmarks.md.
pub fn forms(job: &CopyJob, ghost: &TableInfo, bare_allowed: bool) -> Forms {
    let mut original = side(&job.source_db, &job.source_table, format!(" FORCE INDEX ({})", quote_ident(&job.key_index)));
    let mut ghost_side = side(&job.target_db, &job.target_table, String::new());
    let mut skipped = Vec::new();
    for k in &job.key {
        original.key.push(k.name.clone());
        original.key_placeholders.push(k.key_placeholder());
        let (name, ph) = match job.columns.iter().find(|(c, _)| c.name == k.name).and_then(|(_, g)| ghost.column(g)) {
            Some(gc) => (gc.name.clone(), gc.key_placeholder()),
            None => (k.name.clone(), k.key_placeholder()),
        };
        ghost_side.key.push(name);
        ghost_side.key_placeholders.push(ph);
    }
    // --panic-on-warnings=false lets the copy store a value converted to a changed column: such columns cannot be
    // proven equal, so only the columns the ALTER leaves as they are are compared then.
    let accepted_conversion = |orig: &Column, gc: &Column| {
        !job.warnings.panic_on_warnings
            && (!orig.column_type.eq_ignore_ascii_case(&gc.column_type) || orig.charset != gc.charset || orig.nullable != gc.nullable)
    };
    // Each column with its ghost column, None where it is not compared.
    let pairs: Vec<(&Column, &String, Option<&Column>)> =
        job.columns.iter().map(|(orig, name)| (orig, name, ghost.column(name).filter(|gc| !accepted_conversion(orig, gc)))).collect();
    let compared: Vec<(&Column, &Column)> = pairs.iter().filter_map(|(o, _, g)| g.map(|g| (*o, g))).collect();
    let bare = bare_allowed && bare_text(&compared);
    for (orig, ghost_name, gc) in pairs {
        let form = gc.and_then(|gc| compare_form(orig, gc).map(|f| if bare { (quote_ident(&orig.name), quote_ident(&gc.name)) } else { f }));
        match (form, gc) {
            (Some((o, g)), Some(gc)) => {
                let nullable = orig.nullable || gc.nullable;
                original.exprs.push(o);
                ghost_side.exprs.push(g);
                original.nullable.push(nullable);
                ghost_side.nullable.push(nullable);
            }
            _ => skipped.push(format!("{} -> {}", orig.name, ghost_name)),
        }
    }
    Forms { original, ghost: ghost_side, skipped }
}

/// Whether the row's text may take every text value as it is, without `CAST(.. AS BINARY)`: only when every
/// compared column is a number, a date or time, or text (ENUM and SET included) and, on each side, all the text
/// shares one character set and one collation, the same character set on both sides. CONCAT_WS then converts nothing but the numbers (into that
/// character set, the same way on both sides) and cannot meet a mix of collations; the bytes of the text are the
/// column's, as the casts would give them.
fn bare_text(pairs: &[(&Column, &Column)]) -> bool {
    let number_or_time = |c: &Column| {
        matches!(
            c.data_type.as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal" | "float" | "double" | "date" | "datetime" | "timestamp" | "time" | "year"
        )
    };
    let text = |c: &Column| (c.is_text() || matches!(c.data_type.as_str(), "enum" | "set")) && c.charset.is_some() && c.collation.is_some();
    let mut seen: Option<(&Option<String>, &Option<String>, &Option<String>)> = None;
    for (o, g) in pairs {
        match (number_or_time(o) && number_or_time(g), text(o) && text(g)) {
            (true, _) => {}
            (false, true) if o.charset == g.charset => {
                let this = (&o.charset, &o.collation, &g.collation);
                if seen.is_some_and(|s| s != this) {
                    return false;
                }
                seen = Some(this);
            }
            _ => return false,
        }
    }
    true
}

fn side(db: &str, table: &str, hint: String) -> Side {
    Side { table: qualified(db, table), hint, key: Vec::new(), key_placeholders: Vec::new(), exprs: Vec::new(), nullable: Vec::new() }
}

impl Side {
    /// WHERE text and bound values of a key range on this side (`1=1` for the whole table).
    pub fn range_where(&self, range: &KeyRange) -> (String, Vec<Value>) {
        let mut parts = vec!["1=1".to_string()];
        let mut params = Vec::new();
        if let Some(lower) = &range.lower {
            let (sql, binds) = tuple_compare(&self.key, &self.key_placeholders, ">", ">");
            parts.push(sql);
            params.extend(binds.iter().map(|i| lower[*i].clone()));
        }
        if let Some(upper) = &range.upper {
            let (sql, binds) = tuple_compare(&self.key, &self.key_placeholders, "<=", "<");
            parts.push(sql);
            params.extend(binds.iter().map(|i| upper[*i].clone()));
        }
        (parts.join(" AND "), params)
    }

    /// The row's text: the ISNULL markers of the columns that can be NULL (a NULL and an empty string differ) as
    /// integers of up to [`MARKS_PER_WORD`] bits each, then the expressions (CONCAT_WS skips NULLs). Integer markers
    /// rather than a string of them: MySQL 9.7 evaluated the whole checksum about a quarter faster that way
    /// (docs/benchmarks.md).
    fn row_text(&self) -> String {
        let nullable: Vec<&String> = self.exprs.iter().zip(&self.nullable).filter(|(_, n)| **n).map(|(e, _)| e).collect();
        let words: Vec<String> = nullable
            .chunks(MARKS_PER_WORD)
            .map(|group| {
                let bits: Vec<String> = group.iter().enumerate().map(|(i, e)| if i == 0 { format!("ISNULL({e})") } else { format!("ISNULL({e}) << {i}") }).collect();
                format!("({})", bits.join(" | "))
            })
            .collect();
        let parts: Vec<&str> = words.iter().chain(&self.exprs).map(String::as_str).collect();
        format!("CONCAT_WS('#', {})", parts.join(", "))
    }

    /// `COUNT(*), BIT_XOR(CRC32(row))` over a range (the row's text computed once: the checksum's cost is mostly
    /// reading the rows and this one CRC).
    pub fn checksum_sql(&self, range: &KeyRange) -> (String, Vec<Value>) {
        let (cond, params) = self.range_where(range);
        let row = self.row_text();
        let sql = format!("SELECT COUNT(*), COALESCE(BIT_XOR(CRC32({row})), 0) FROM {}{} WHERE {cond}", self.table, self.hint);
        (sql, params)
    }

    /// Each row's key (as text) and CRC32, for naming the keys that differ.
    pub fn rows_sql(&self, range: &KeyRange) -> (String, Vec<Value>) {
        let (cond, params) = self.range_where(range);
        let keys: Vec<String> = self.key.iter().map(|k| format!("CONVERT({} USING utf8mb4)", quote_ident(k))).collect();
        let sql = format!(
            "SELECT CONCAT_WS(',', {}), CRC32({}) FROM {}{} WHERE {cond}",
            keys.join(", "),
            self.row_text(),
            self.table,
            self.hint
        );
        (sql, params)
    }

    /// The key `rows` rows after `lower` (None: fewer are left), on the original.
    pub fn chunk_end_sql(&self, lower: Option<&[Value]>, rows: u64) -> (String, Vec<Value>) {
        let range = KeyRange { lower: lower.map(<[Value]>::to_vec), upper: None };
        let (cond, params) = self.range_where(&range);
        let cols: Vec<String> = self.key.iter().map(|k| quote_ident(k)).collect();
        let order = cols.join(", ");
        let sql = format!("SELECT {order} FROM {}{} WHERE {cond} ORDER BY {order} LIMIT 1 OFFSET {}", self.table, self.hint, rows.saturating_sub(1));
        (sql, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, data_type: &str, column_type: &str, charset: Option<&str>) -> Column {
        Column {
            name: name.into(),
            ordinal: 1,
            data_type: data_type.into(),
            column_type: column_type.into(),
            nullable: true,
            unsigned: false,
            charset: charset.map(String::from),
            collation: None,
            octet_length: None,
            generated: false,
            labels: vec![],
            enum_as_index: false,
        }
    }

    #[test]
    fn text_goes_bare_only_in_one_charset_and_collation_among_numbers_and_times() {
        let with = |c: Column, coll: &str| Column { collation: Some(coll.into()), ..c };
        let id = col("id", "bigint", "bigint(20)", None);
        let at = col("c", "datetime", "datetime", None);
        let b = with(col("b", "varchar", "varchar(64)", Some("utf8mb4")), "utf8mb4_general_ci");
        let e = with(col("e", "text", "text", Some("utf8mb4")), "utf8mb4_general_ci");
        assert!(bare_text(&[(&id, &id), (&at, &at), (&b, &b), (&e, &e)]));
        let e_bin = with(col("e", "text", "text", Some("utf8mb4")), "utf8mb4_bin");
        assert!(!bare_text(&[(&b, &b), (&e_bin, &e_bin)]), "two collations on one side");
        assert!(bare_text(&[(&b, &with(b.clone(), "utf8mb4_bin"))]), "one collation per side is enough");
        let latin = with(col("b", "varchar", "varchar(64)", Some("latin1")), "latin1_swedish_ci");
        assert!(!bare_text(&[(&latin, &b)]), "a charset change is converted");
        assert!(!bare_text(&[(&latin, &latin), (&b, &b)]), "two charsets");
        let blob = col("p", "blob", "blob", None);
        let json = col("j", "json", "json", None);
        assert!(!bare_text(&[(&b, &b), (&blob, &blob)]));
        assert!(!bare_text(&[(&json, &json)]));
    }

    #[test]
    fn null_markers_are_packed_into_integers() {
        let side = |nullable: Vec<bool>| Side {
            table: "t".into(),
            hint: String::new(),
            key: vec![],
            key_placeholders: vec![],
            exprs: (0..nullable.len()).map(|i| format!("c{i}")).collect(),
            nullable,
        };
        assert_eq!(side(vec![false, false]).row_text(), "CONCAT_WS('#', c0, c1)");
        assert_eq!(side(vec![false, true, true]).row_text(), "CONCAT_WS('#', (ISNULL(c1) | ISNULL(c2) << 1), c0, c1, c2)");
        let wide = side(vec![true; 61]).row_text();
        assert!(wide.starts_with("CONCAT_WS('#', (ISNULL(c0) | ISNULL(c1) << 1 |") && wide.contains("ISNULL(c59) << 59), (ISNULL(c60)), c0,"), "{wide}");
    }

    #[test]
    fn conversions_that_keep_the_text_are_compared_and_others_left_out() {
        let int = col("a", "int", "int(11)", None);
        let big = col("a", "bigint", "bigint(20)", None);
        assert!(compare_form(&int, &big).is_some());
        let v10 = col("b", "varchar", "varchar(10)", Some("latin1"));
        let v20 = col("b", "varchar", "varchar(20)", Some("utf8mb4"));
        assert_eq!(compare_form(&v10, &v20).map(|f| f.0), Some("CONVERT(`b` USING utf8mb4)".into()));
        let f = col("c", "float", "float", None);
        let d = col("c", "double", "double", None);
        assert!(compare_form(&f, &d).is_none());
        assert!(compare_form(&f, &f).is_some());
        let d2 = col("d", "decimal", "decimal(10,2)", None);
        let d3 = col("d", "decimal", "decimal(12,2)", None);
        let d4 = col("d", "decimal", "decimal(12,4)", None);
        assert!(compare_form(&d2, &d3).is_some());
        assert!(compare_form(&d2, &d4).is_none());
        let dt = col("e", "datetime", "datetime", None);
        let ts = col("e", "timestamp", "timestamp", None);
        assert!(compare_form(&dt, &ts).is_none());
    }
}
