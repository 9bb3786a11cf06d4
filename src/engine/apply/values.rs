//! Turning decoded binlog row values into parameters for the ghost table, using column facts from
//! information_schema (the binlog may lack signedness and names: MariaDB's default `binlog_row_metadata=NO_LOG`).

use color_eyre::eyre::{eyre, Result};
use mysql_async::Value;
use mysql_common::binlog::decimal::Decimal;
use mysql_common::binlog::jsonb;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::binlog::time::MysqlTime;

use crate::engine::plan::schema::Column;

/// A value only SQL can rebuild exactly: `sql` takes the column's placeholder's place in the statement, `params`
/// bind its `?`s in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlValue {
    pub sql: String,
    pub params: Vec<Value>,
}

/// Above this many parameters a JSON value is written as JSON text instead (a statement takes at most 65,535).
pub(crate) const MAX_JSON_PARAMS: usize = 20_000;

/// Converts one binlog value of `col` into the value to bind (with `col.placeholder()`), and, for a MySQL JSON value
/// that JSON text cannot carry exactly, the SQL that rebuilds it.
pub fn convert(value: BinlogValue<'_>, col: &Column) -> Result<(Value, Option<SqlValue>)> {
    match value {
        BinlogValue::Value(v) => Ok((convert_plain(v, col), None)),
        BinlogValue::Jsonb(j) => {
            // Plain JSON converts directly. Opaque scalars (what MySQL stores for a DECIMAL, DATETIME, DATE, TIME
            // or binary string put into JSON) and unsigned integers have no JSON text of their own (text parses
            // 1.50 as a DOUBLE, 5 as a signed INTEGER): those documents are rebuilt with SQL.
            let rebuilt = if needs_sql(&j) {
                let mut out = SqlValue { sql: String::new(), params: Vec::new() };
                if j.is_array() || j.is_object() {
                    json_sql(&j, &mut out).map_err(|e| eyre!("decoding JSON of column {}: {e}", col.name))?;
                } else {
                    out.sql.push_str("JSON_EXTRACT(JSON_ARRAY(");
                    json_sql(&j, &mut out).map_err(|e| eyre!("decoding JSON of column {}: {e}", col.name))?;
                    out.sql.push_str("), _utf8mb4'$[0]')");
                }
                if out.params.len() > MAX_JSON_PARAMS {
                    tracing::warn!(
                        "a JSON value of column {} holds {} scalars without a JSON text form; written as JSON text",
                        col.name,
                        out.params.len()
                    );
                    None
                } else {
                    Some(out)
                }
            } else {
                None
            };
            if rebuilt.is_some() {
                // The SQL takes the placeholder's place: no parameter is bound for the column itself.
                return Ok((Value::NULL, rebuilt));
            }
            let json: serde_json::Value = match serde_json::Value::try_from(j.clone()) {
                Ok(v) => v,
                Err(_) => {
                    let dom = j.parse().map_err(|e| eyre!("decoding JSON of column {}: {e:?}", col.name))?;
                    serde_json::Value::from(dom)
                }
            };
            Ok((Value::Bytes(json.to_string().into_bytes()), None))
        }
        BinlogValue::JsonDiff(_) => Err(eyre!(
            "column {} arrived as a partial JSON update; set binlog_row_value_options='' on the server",
            col.name
        )),
    }
}

/// Does this JSONB document hold a value that JSON text would change (an opaque scalar or an unsigned integer)?
fn needs_sql(v: &jsonb::Value<'_>) -> bool {
    match v {
        jsonb::Value::Opaque(_) | jsonb::Value::U16(_) | jsonb::Value::U32(_) => true,
        // Above i64::MAX JSON text parses back as unsigned anyway.
        jsonb::Value::U64(x) => *x <= i64::MAX as u64,
        jsonb::Value::SmallArray(a) => a.iter().any(|e| e.map(|e| needs_sql(&e)).unwrap_or(true)),
        jsonb::Value::LargeArray(a) => a.iter().any(|e| e.map(|e| needs_sql(&e)).unwrap_or(true)),
        jsonb::Value::SmallObject(o) => o.iter().any(|e| e.map(|(_, e)| needs_sql(&e)).unwrap_or(true)),
        jsonb::Value::LargeObject(o) => o.iter().any(|e| e.map(|(_, e)| needs_sql(&e)).unwrap_or(true)),
        _ => false,
    }
}

/// Appends the SQL that builds `v` (as a JSON_OBJECT / JSON_ARRAY argument) to `out`.
fn json_sql(v: &jsonb::Value<'_>, out: &mut SqlValue) -> std::io::Result<()> {
    fn members<'v>(
        out: &mut SqlValue,
        func: &str,
        items: impl Iterator<Item = std::io::Result<(Option<Vec<u8>>, jsonb::Value<'v>)>>,
    ) -> std::io::Result<()> {
        out.sql.push_str(func);
        out.sql.push('(');
        for (i, item) in items.enumerate() {
            let (key, value) = item?;
            if i > 0 {
                out.sql.push_str(", ");
            }
            if let Some(key) = key {
                out.sql.push_str("CONVERT(? USING utf8mb4), ");
                out.params.push(Value::Bytes(key));
            }
            json_sql(&value, out)?;
        }
        out.sql.push(')');
        Ok(())
    }
    match v {
        jsonb::Value::Null => out.sql.push_str("CAST(_utf8mb4'null' AS JSON)"),
        jsonb::Value::Bool(b) => out.sql.push_str(if *b { "CAST(_utf8mb4'true' AS JSON)" } else { "CAST(_utf8mb4'false' AS JSON)" }),
        jsonb::Value::I16(x) => signed(out, *x as i64),
        jsonb::Value::I32(x) => signed(out, *x as i64),
        jsonb::Value::I64(x) => signed(out, *x),
        jsonb::Value::U16(x) => unsigned(out, *x as u64),
        jsonb::Value::U32(x) => unsigned(out, *x as u64),
        jsonb::Value::U64(x) => unsigned(out, *x),
        jsonb::Value::F64(x) => {
            out.sql.push_str("CAST(? AS DOUBLE)");
            out.params.push(Value::Double(*x));
        }
        jsonb::Value::String(s) => {
            out.sql.push_str("CONVERT(? USING utf8mb4)");
            out.params.push(Value::Bytes(s.str_raw().to_vec()));
        }
        jsonb::Value::SmallArray(a) => members(out, "JSON_ARRAY", a.iter().map(|e| e.map(|e| (None, e))))?,
        jsonb::Value::LargeArray(a) => members(out, "JSON_ARRAY", a.iter().map(|e| e.map(|e| (None, e))))?,
        jsonb::Value::SmallObject(o) => {
            members(out, "JSON_OBJECT", o.iter().map(|e| e.map(|(k, e)| (Some(k.value_raw().to_vec()), e))))?
        }
        jsonb::Value::LargeObject(o) => {
            members(out, "JSON_OBJECT", o.iter().map(|e| e.map(|(k, e)| (Some(k.value_raw().to_vec()), e))))?
        }
        jsonb::Value::Opaque(o) => {
            let data = o.data_raw();
            let packed = || -> std::io::Result<i64> {
                data.first_chunk::<8>()
                    .map(|b| i64::from_le_bytes(*b))
                    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "a short temporal value in JSON"))
            };
            match o.value_type() {
                ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                    let (precision, scale) = match data {
                        [p, s, ..] => (*p, *s),
                        _ => {
                            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a short DECIMAL in JSON"))
                        }
                    };
                    let decimal = Decimal::read_packed(data, false)?;
                    cast_text(out, &format!("DECIMAL({},{})", precision.max(1), scale), decimal.to_string());
                }
                ColumnType::MYSQL_TYPE_DATE => {
                    cast_text(out, "DATE", MysqlTime::from_int64_date_packed(packed()?).to_string());
                }
                ColumnType::MYSQL_TYPE_TIME => {
                    cast_text(out, "TIME(6)", format!("{:.6}", MysqlTime::from_int64_time_packed(packed()?)));
                }
                // A TIMESTAMP inside JSON comes back as a DATETIME: same value and text, JSON_TYPE says DATETIME.
                ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_TIMESTAMP => {
                    cast_text(out, "DATETIME(6)", format!("{:.6}", MysqlTime::from_int64_datetime_packed(packed()?)));
                }
                // Binary strings: MySQL stores any binary string expression as type 15 (VARCHAR); other types
                // (BLOB, BIT, ...) come from columns only and are rebuilt as type 15 with the same bytes.
                _ => binary(out, data.to_vec()),
            }
        }
    }
    Ok(())
}

/// Appends `CAST(<text> AS <cast>)` (DECIMAL(p,s), DATE, TIME(6), DATETIME(6)) binding `value` as its text. The
/// text goes through CONVERT first: MySQL 9.7 types a bare `?` in CAST(? AS TIME(6)) as TIME and turns
/// '12:00:01.000000' into 00:00:00 (measured).
pub(crate) fn cast_text(out: &mut SqlValue, cast: &str, value: String) {
    out.sql.push_str(&format!("CAST(CONVERT(? USING utf8mb4) AS {cast})"));
    out.params.push(Value::Bytes(value.into_bytes()));
}

/// Appends a binary string (a JSON opaque scalar of type 15, as MySQL stores any binary string expression).
pub(crate) fn binary(out: &mut SqlValue, bytes: Vec<u8>) {
    out.sql.push_str("CAST(? AS BINARY)");
    out.params.push(Value::Bytes(bytes));
}

fn signed(out: &mut SqlValue, x: i64) {
    out.sql.push_str("CAST(? AS SIGNED)");
    out.params.push(Value::Int(x));
}

pub(crate) fn unsigned(out: &mut SqlValue, x: u64) {
    out.sql.push_str("CAST(? AS UNSIGNED)");
    out.params.push(Value::UInt(x));
}

fn convert_plain(v: Value, col: &Column) -> Value {
    match v {
        Value::NULL => Value::NULL,
        // The same ENUM/SET definition on both sides: write the index / bitmask itself (exact even where the
        // labels cannot be read back, e.g. 4-byte characters).
        Value::Int(i) if col.is_enum() && col.enum_as_index => Value::UInt(i.max(0) as u64),
        Value::Bytes(b) if col.is_set() && col.enum_as_index => {
            let mut mask = 0u64;
            for (i, byte) in b.iter().enumerate().take(8) {
                mask |= (*byte as u64) << (8 * i);
            }
            Value::UInt(mask)
        }
        // The decoder does not sign-extend MEDIUMINT: a signed value above its maximum is a negative one.
        Value::Int(i) if col.data_type == "mediumint" && !col.unsigned && (0x80_0000..0x100_0000).contains(&i) => {
            Value::Int(i - 0x100_0000)
        }
        Value::Time(..) => time_as_text(v),
        Value::Int(i) if col.is_enum() => {
            // ENUM arrives as its 1-based index; write the label, so a changed definition maps by name.
            match usize::try_from(i).ok().and_then(|i| i.checked_sub(1)).and_then(|i| col.labels.get(i)) {
                Some(label) => Value::Bytes(label.clone().into_bytes()),
                None => Value::Bytes(Vec::new()),
            }
        }
        Value::Int(i) if col.unsigned => match col.int_bits() {
            Some(64) => Value::UInt(i as u64),
            Some(bits) => Value::UInt((i as u64) & ((1u64 << bits) - 1)),
            None => Value::Int(i),
        },
        Value::Bytes(b) if col.is_set() => {
            let mut mask = 0u64;
            for (i, byte) in b.iter().enumerate().take(8) {
                mask |= (*byte as u64) << (8 * i);
            }
            let labels: Vec<&str> = col
                .labels
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 64 && mask & (1u64 << i) != 0)
                .map(|(_, l)| l.as_str())
                .collect();
            Value::Bytes(labels.join(",").into_bytes())
        }
        Value::Bytes(b) if col.data_type == "timestamp" => match epoch_to_utc_text(&b) {
            Some(text) => Value::Bytes(text.into_bytes()),
            None => Value::Bytes(b),
        },
        Value::Bytes(b) if col.data_type == "year" && b == b"1900" => Value::Int(0),
        Value::Bytes(mut b) if col.data_type == "binary" => {
            if let Some(len) = col.octet_length {
                if (b.len() as u64) < len {
                    b.resize(len as usize, 0);
                }
            }
            Value::Bytes(b)
        }
        other => other,
    }
}

/// `1709294400` / `1709294400.123456` (seconds since the epoch, as the binlog decoder gives TIMESTAMP) to
/// `2024-03-01 12:00:00[.123456]` in UTC; `0` is the zero timestamp. The applier's session runs at `+00:00`.
pub fn epoch_to_utc_text(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let secs: i64 = secs.parse().ok()?;
    if secs == 0 && frac.is_none_or(|f| f.chars().all(|c| c == '0')) {
        return Some("0000-00-00 00:00:00".to_string());
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let base = format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, (rem % 3600) / 60, rem % 60);
    Some(match frac {
        Some(f) if !f.is_empty() => format!("{base}.{f}"),
        _ => base,
    })
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// TIME as text: MySQL refuses binary TIME parameters of 838 hours with a fraction (`ERROR 1690 TIME value is
/// out of range in 'set_parameter_value'`), on the apply path and in a cross-server copy alike. Other values pass.
pub fn time_as_text(v: Value) -> Value {
    let Value::Time(neg, days, h, m, sec, us) = v else { return v };
    let hours = days as u64 * 24 + h as u64;
    let sign = if neg { "-" } else { "" };
    Value::Bytes(if us > 0 {
        format!("{sign}{hours:02}:{m:02}:{sec:02}.{us:06}").into_bytes()
    } else {
        format!("{sign}{hours:02}:{m:02}:{sec:02}").into_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(data_type: &str, column_type: &str) -> Column {
        Column {
            name: "c".into(),
            ordinal: 1,
            data_type: data_type.into(),
            column_type: column_type.into(),
            nullable: true,
            unsigned: column_type.contains("unsigned"),
            charset: None,
            collation: None,
            octet_length: Some(4),
            generated: false,
            labels: crate::engine::plan::schema::parse_labels(column_type),
            enum_as_index: false,
        }
    }

    #[test]
    fn timestamps_become_utc_text() {
        assert_eq!(epoch_to_utc_text(b"1709294400").as_deref(), Some("2024-03-01 12:00:00"));
        assert_eq!(epoch_to_utc_text(b"2147483647.999999").as_deref(), Some("2038-01-19 03:14:07.999999"));
        assert_eq!(epoch_to_utc_text(b"0").as_deref(), Some("0000-00-00 00:00:00"));
    }

    #[test]
    fn unsigned_enum_set_binary_are_mapped() {
        let u = col("tinyint", "tinyint(3) unsigned");
        assert_eq!(convert_plain(Value::Int(-1), &u), Value::UInt(255));
        let b = col("bigint", "bigint(20) unsigned");
        assert_eq!(convert_plain(Value::Int(-1), &b), Value::UInt(u64::MAX));
        let e = col("enum", "enum('red','green')");
        assert_eq!(convert_plain(Value::Int(2), &e), Value::Bytes(b"green".to_vec()));
        let s = col("set", "set('a','b','c')");
        assert_eq!(convert_plain(Value::Bytes(vec![5]), &s), Value::Bytes(b"a,c".to_vec()));
        let mi = col("mediumint", "mediumint(9)");
        assert_eq!(convert_plain(Value::Int(16777215), &mi), Value::Int(-1));
        assert_eq!(convert_plain(Value::Int(8388608), &mi), Value::Int(-8388608));
        let t = col("time", "time(6)");
        assert_eq!(convert_plain(Value::Time(false, 34, 22, 59, 58, 999999), &t), Value::Bytes(b"838:59:58.999999".to_vec()));
        let bin = col("binary", "binary(4)");
        assert_eq!(convert_plain(Value::Bytes(vec![1]), &bin), Value::Bytes(vec![1, 0, 0, 0]));
    }
}
