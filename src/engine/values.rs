//! Turning decoded binlog row values into parameters for the ghost table, using column facts from
//! information_schema (the binlog may lack signedness and names: MariaDB's default `binlog_row_metadata=NO_LOG`).

use color_eyre::eyre::{eyre, Result};
use mysql_async::Value;
use mysql_common::binlog::value::BinlogValue;

use super::schema::Column;

/// Converts one binlog value of `col` into the value to bind (with `col.placeholder()`).
pub fn convert(value: BinlogValue<'_>, col: &Column) -> Result<Value> {
    match value {
        BinlogValue::Value(v) => Ok(convert_plain(v, col)),
        BinlogValue::Jsonb(j) => {
            // Plain JSON converts directly; values with opaque scalars (DECIMAL, DATETIME inside JSON) go through
            // the JSON DOM, which renders them as numbers and strings.
            let json: serde_json::Value = match serde_json::Value::try_from(j.clone()) {
                Ok(v) => v,
                Err(_) => {
                    let dom = j.parse().map_err(|e| eyre!("decoding JSON of column {}: {e:?}", col.name))?;
                    serde_json::Value::from(dom)
                }
            };
            Ok(Value::Bytes(json.to_string().into_bytes()))
        }
        BinlogValue::JsonDiff(_) => Err(eyre!(
            "column {} arrived as a partial JSON update; set binlog_row_value_options='' on the server",
            col.name
        )),
    }
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
        // TIME as text: MySQL refuses binary TIME parameters of 838 hours with a fraction.
        Value::Time(neg, days, h, m, sec, us) => {
            let hours = days as u64 * 24 + h as u64;
            let sign = if neg { "-" } else { "" };
            Value::Bytes(if us > 0 {
                format!("{sign}{hours:02}:{m:02}:{sec:02}.{us:06}").into_bytes()
            } else {
                format!("{sign}{hours:02}:{m:02}:{sec:02}").into_bytes()
            })
        }
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
            labels: super::super::schema::parse_labels(column_type),
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
