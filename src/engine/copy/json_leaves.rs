//! MySQL JSON in a cross-server copy (move-tables): the values JSON text cannot carry, read on the source beside
//! the document, and the SQL that puts them back on the target.
//!
//! Why: on one server the copy is `INSERT ... SELECT` and the server copies its binary JSON. Across servers the
//! rows pass through the client, and MySQL sends JSON only as text, over both protocols (measured on 9.7: even
//! `CAST(j AS BINARY)` is the text; no function returns the binary form). JSON text loses what MySQL's binary JSON
//! holds beyond it: the opaque scalars a DECIMAL, DATETIME, DATE, TIME or binary string becomes inside JSON, and
//! unsigned integers. Parsed again, `1.50` (a DECIMAL) is the DOUBLE 1.5, `"2024-02-29"` (a DATE) a string, `5`
//! (UNSIGNED INTEGER) a signed INTEGER. The apply path has the binary form from the binary log and rebuilds such
//! documents with SQL (`apply::values`); the copy must arrive the same.
//!
//! How, and why this way: the chunk's SELECT on the source also selects, per JSON column, a report of the leaves
//! the text cannot carry: a recursive walk of the document on the source ([`report_sql`]) giving, for each such
//! leaf, its path, its `JSON_TYPE` and its text (its bytes in hex for a binary string). It runs in the same
//! statement as the row read, under the same shared locks, so it describes exactly the document read; a document
//! without such leaves (plain JSON, the common case) reports NULL and is written as text as before. On the target
//! the document is parsed from its text and the reported leaves are set back with their SQL types:
//! `JSON_SET(CAST(text AS JSON), path, CAST(... AS DECIMAL(p,s)), ...)`, with the casts the apply path uses
//! ([`rebuild`]). Every other leaf (strings, signed integers, doubles, booleans, null) is exact as text: MySQL
//! prints a DOUBLE with a fraction or an exponent (`7.0`, `1e300`, measured), so it parses back as a DOUBLE.
//! Rejected: one query per row or per path for the types (a round trip each); rebuilding the whole document in SQL
//! from a client-side parse (its numbers need an exact parser, and every leaf would become a parameter).
//! Cost, measured (MySQL 9.7, 2 cores): the walk adds about 25 us per row on the source for a plain document of 15
//! nodes (a 11,822-row read under shared locks: 50 ms without the reports, 340 ms with them); a prefilter over
//! `$**.*` / `$**[*]` saved too little to be worth a second way of reading the document.
//! A DECIMAL's declared precision is not kept in JSON (`JSON_STORAGE_SIZE` of 1.50 as DECIMAL(3,2), (10,2) and
//! (65,2) is the same, measured): its digits and scale, which the text holds, are the value.

use color_eyre::eyre::{bail, eyre, Result, WrapErr};
use mysql_async::Value;

use crate::engine::apply::values::{self, SqlValue, MAX_JSON_PARAMS};

/// The `JSON_TYPE`s whose text is the value exactly; every other scalar is reported.
const TEXT_EXACT: &str = "'OBJECT', 'ARRAY', 'STRING', 'INTEGER', 'DOUBLE', 'BOOLEAN', 'NULL'";

/// The `JSON_TYPE`s of opaque binary values (text `base64:type<N>:<base64>`): reported as the bytes in hex.
const BINARY_TYPES: [&str; 4] = ["BLOB", "BIT", "GEOMETRY", "OPAQUE"];

/// A scalar subquery over the outer row's JSON column `column` (qualified, quoted): NULL, or a JSON array of
/// `[path, JSON_TYPE, text]` for every leaf the JSON text cannot carry, paths in MySQL's syntax with every member
/// name quoted (`$."a"[2]."b"`). The walk's depth is the document's (MySQL allows 100 levels; the recursion limit,
/// `cte_max_recursion_depth`, defaults to 1000). The writers' sessions run with `NAMES binary`: the walk's texts
/// and paths are utf8mb4 explicitly, as JSON takes no binary strings (not even as paths: measured).
pub fn report_sql(column: &str) -> String {
    let binary = BINARY_TYPES.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
    format!(
        "(WITH RECURSIVE revenant_walk (path, v) AS (\
         SELECT CAST(_utf8mb4'$' AS CHAR(16000000) CHARACTER SET utf8mb4), {column} \
         UNION ALL SELECT CONCAT(w.path, _utf8mb4'.', JSON_QUOTE(m.k)), JSON_EXTRACT(w.v, CONCAT(_utf8mb4'$.', JSON_QUOTE(m.k))) \
         FROM revenant_walk w, JSON_TABLE(JSON_KEYS(w.v), _utf8mb4'$[*]' COLUMNS (k LONGTEXT CHARACTER SET utf8mb4 PATH _utf8mb4'$')) m \
         WHERE JSON_TYPE(w.v) = 'OBJECT' \
         UNION ALL SELECT CONCAT(w.path, _utf8mb4'[', e.i - 1, _utf8mb4']'), e.v \
         FROM revenant_walk w, JSON_TABLE(w.v, _utf8mb4'$[*]' COLUMNS (i FOR ORDINALITY, v JSON PATH _utf8mb4'$')) e \
         WHERE JSON_TYPE(w.v) = 'ARRAY') \
         SELECT JSON_ARRAYAGG(JSON_ARRAY(path, JSON_TYPE(v), IF(JSON_TYPE(v) IN ({binary}), \
         CONVERT(HEX(FROM_BASE64(SUBSTRING_INDEX(JSON_UNQUOTE(v), ':', -1))) USING utf8mb4), JSON_UNQUOTE(v)))) \
         FROM revenant_walk WHERE JSON_TYPE(v) NOT IN ({TEXT_EXACT}))"
    )
}

/// The SQL (in the column's placeholder's place) that writes the document `text` with the leaves of `report` (what
/// [`report_sql`] gave for it) set back with their types; None when the report is NULL (the text is exact). Like the
/// apply path, a document with more such leaves than one statement's parameters can carry is written as text, with
/// a warning.
pub fn rebuild(column: &str, text: &Value, report: Option<&Value>) -> Result<Option<SqlValue>> {
    let raw = match report {
        None | Some(Value::NULL) => return Ok(None),
        Some(Value::Bytes(b)) => b,
        Some(other) => bail!("the JSON report of column {column} is not text: {other:?}"),
    };
    let Value::Bytes(doc) = text else { bail!("a JSON value of column {column} is not text: {text:?}") };
    let leaves: Vec<(String, String, Option<String>)> =
        serde_json::from_slice(raw).wrap_err_with(|| format!("reading the JSON report of column {column}"))?;
    if leaves.len() * 2 + 1 > MAX_JSON_PARAMS {
        tracing::warn!(
            "a JSON value of column {column} holds {} scalars without a JSON text form; written as JSON text",
            leaves.len()
        );
        return Ok(None);
    }
    let mut out = SqlValue { sql: "JSON_SET(CAST(CONVERT(? USING utf8mb4) AS JSON)".into(), params: vec![Value::Bytes(doc.clone())] };
    for (path, json_type, value) in leaves {
        let value = value.ok_or_else(|| eyre!("the JSON report of column {column} has no value at {path} ({json_type})"))?;
        out.sql.push_str(", CONVERT(? USING utf8mb4), ");
        out.params.push(Value::Bytes(path.clone().into_bytes()));
        leaf(&mut out, &json_type, value).wrap_err_with(|| format!("rebuilding column {column} at {path}"))?;
    }
    out.sql.push(')');
    Ok(Some(out))
}

/// Appends the SQL value of one reported leaf, cast as the apply path casts the same opaque scalar.
fn leaf(out: &mut SqlValue, json_type: &str, value: String) -> Result<()> {
    match json_type {
        "DECIMAL" => {
            let cast = decimal_type(&value)?;
            values::cast_text(out, &cast, value);
        }
        "UNSIGNED INTEGER" => {
            let n: u64 = value.parse().wrap_err_with(|| format!("an UNSIGNED INTEGER reads {value:?}"))?;
            values::unsigned(out, n);
        }
        "DATE" => values::cast_text(out, "DATE", value),
        "TIME" => values::cast_text(out, "TIME(6)", value),
        // As in the apply path: a TIMESTAMP inside JSON is a DATETIME of the same text.
        "DATETIME" | "TIMESTAMP" => values::cast_text(out, "DATETIME(6)", value),
        // As in the apply path: rebuilt as a binary string (type 15) with the same bytes.
        t if BINARY_TYPES.contains(&t) => {
            let bytes = hex::decode(&value).wrap_err_with(|| format!("a {t} reads {value:?}"))?;
            values::binary(out, bytes);
        }
        other => bail!("a JSON value of type {other} ({value:?}) that the copy cannot rebuild"),
    }
    Ok(())
}

/// `DECIMAL(p,s)` for a DECIMAL's text (`-12.340`: DECIMAL(5,3)): its digits and scale.
fn decimal_type(text: &str) -> Result<String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || int.len() + frac.len() > 65 || frac.len() > 30 {
        bail!("a DECIMAL reads {text:?}");
    }
    Ok(format!("DECIMAL({},{})", int.len() + frac.len(), frac.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_types_come_from_the_digits() {
        assert_eq!(decimal_type("1.50").ok().as_deref(), Some("DECIMAL(3,2)"));
        assert_eq!(decimal_type("-12345678901234567890.123456789000000000000000000000").ok().as_deref(), Some("DECIMAL(50,30)"));
        assert_eq!(decimal_type("7").ok().as_deref(), Some("DECIMAL(1,0)"));
        assert_eq!(decimal_type("0.001").ok().as_deref(), Some("DECIMAL(4,3)"));
        assert!(decimal_type("1e5").is_err() && decimal_type("").is_err() && decimal_type(".5").is_err());
    }

    #[test]
    fn reported_leaves_are_set_back_with_their_types() -> Result<()> {
        let doc = Value::Bytes(br#"{"b": "base64:type15:AP8=", "p": 1.50, "u": 5}"#.to_vec());
        let report = Value::Bytes(br#"[["$.\"b\"", "BLOB", "00FF"], ["$.\"p\"", "DECIMAL", "1.50"], ["$.\"u\"", "UNSIGNED INTEGER", "5"]]"#.to_vec());
        let sql = rebuild("j", &doc, Some(&report))?.ok_or_else(|| eyre!("no SQL"))?;
        assert_eq!(
            sql.sql,
            "JSON_SET(CAST(CONVERT(? USING utf8mb4) AS JSON), CONVERT(? USING utf8mb4), CAST(? AS BINARY), \
             CONVERT(? USING utf8mb4), CAST(CONVERT(? USING utf8mb4) AS DECIMAL(3,2)), CONVERT(? USING utf8mb4), CAST(? AS UNSIGNED))"
        );
        assert_eq!(sql.params[0], doc);
        assert_eq!(sql.params[2], Value::Bytes(vec![0, 255]));
        assert_eq!(sql.params[6], Value::UInt(5));
        assert_eq!(rebuild("j", &doc, Some(&Value::NULL))?, None);
        assert_eq!(rebuild("j", &doc, None)?, None);
        let unknown = Value::Bytes(br#"[["$", "YEAR", "2024"]]"#.to_vec());
        assert!(rebuild("j", &doc, Some(&unknown)).is_err(), "an unknown type must not be written as text silently");
        Ok(())
    }
}
