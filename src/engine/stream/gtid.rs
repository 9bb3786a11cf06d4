//! GTID positions for both flavours, as text that is stored in checkpoints and compared on resume.
//!
//! MySQL: a set of `uuid[:tag]:intervals` (`3E11FA47-...:1-5:7-9,...`), grown by each transaction's GTID.
//! MariaDB: the last GTID per replication domain (`0-1-100,1-2-7`), which is what `@slave_connect_state` takes.

use std::collections::BTreeMap;
use std::fmt;

use color_eyre::eyre::{bail, eyre, Result};

/// A position in the server's GTID history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidSet {
    /// source id (uuid, with `:tag` for tagged GTIDs, lower case) -> sorted, disjoint, inclusive intervals.
    MySql(BTreeMap<String, Vec<(u64, u64)>>),
    /// domain -> (server id, sequence number) of the last transaction seen in that domain.
    MariaDb(BTreeMap<u32, (u32, u64)>),
}

/// One transaction's GTID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gtid {
    MySql { sid: String, gno: u64 },
    MariaDb { domain: u32, server: u32, seq: u64 },
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::MySql { sid, gno } => write!(f, "{sid}:{gno}"),
            Gtid::MariaDb { domain, server, seq } => write!(f, "{domain}-{server}-{seq}"),
        }
    }
}

impl GtidSet {
    pub fn empty_mysql() -> Self {
        GtidSet::MySql(BTreeMap::new())
    }
    pub fn empty_mariadb() -> Self {
        GtidSet::MariaDb(BTreeMap::new())
    }

    /// Parses a MySQL `gtid_executed` value (newlines allowed).
    pub fn parse_mysql(text: &str) -> Result<Self> {
        let mut map: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for part in cleaned.split(',').filter(|p| !p.is_empty()) {
            let mut pieces = part.split(':');
            let uuid = pieces.next().ok_or_else(|| eyre!("empty GTID set element"))?.to_ascii_lowercase();
            if uuid.len() != 36 {
                bail!("bad MySQL GTID set element '{part}': expected a 36-character uuid");
            }
            let mut tag: Option<String> = None;
            for piece in pieces {
                if piece.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    let (a, b) = match piece.split_once('-') {
                        Some((a, b)) => (a.parse::<u64>()?, b.parse::<u64>()?),
                        None => {
                            let n = piece.parse::<u64>()?;
                            (n, n)
                        }
                    };
                    if a == 0 || b < a {
                        bail!("bad interval '{piece}' in GTID set element '{part}'");
                    }
                    let key = match &tag {
                        Some(t) => format!("{uuid}:{t}"),
                        None => uuid.clone(),
                    };
                    add_interval(map.entry(key).or_default(), a, b);
                } else {
                    tag = Some(piece.to_ascii_lowercase());
                }
            }
        }
        Ok(GtidSet::MySql(map))
    }

    /// Parses a MariaDB GTID list (`@@gtid_binlog_pos`, `@@gtid_current_pos`): `D-S-N,...`.
    pub fn parse_mariadb(text: &str) -> Result<Self> {
        let mut map = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let nums: Vec<&str> = part.split('-').collect();
            if nums.len() != 3 {
                bail!("bad MariaDB GTID '{part}': expected domain-server-sequence");
            }
            let d: u32 = nums[0].parse()?;
            let s: u32 = nums[1].parse()?;
            let n: u64 = nums[2].parse()?;
            map.insert(d, (s, n));
        }
        Ok(GtidSet::MariaDb(map))
    }

    /// Parses text of the given flavour (`mysql` or `mariadb`).
    pub fn parse(flavor_is_mariadb: bool, text: &str) -> Result<Self> {
        if flavor_is_mariadb {
            Self::parse_mariadb(text)
        } else {
            Self::parse_mysql(text)
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            GtidSet::MySql(m) => m.is_empty(),
            GtidSet::MariaDb(m) => m.is_empty(),
        }
    }

    /// Records one more transaction.
    pub fn add(&mut self, gtid: &Gtid) {
        match (self, gtid) {
            (GtidSet::MySql(m), Gtid::MySql { sid, gno }) => add_interval(m.entry(sid.clone()).or_default(), *gno, *gno),
            (GtidSet::MariaDb(m), Gtid::MariaDb { domain, server, seq }) => {
                m.insert(*domain, (*server, *seq));
            }
            _ => {}
        }
    }

    /// Takes one MySQL transaction out of the set again (a gap: `uuid:1-4:6-9`), so that a stream started from the
    /// set sends it once more. MariaDB positions hold one sequence number per domain and have no gaps: unchanged.
    pub fn remove(&mut self, gtid: &Gtid) {
        let (GtidSet::MySql(m), Gtid::MySql { sid, gno }) = (self, gtid) else { return };
        let Some(ivs) = m.get_mut(sid) else { return };
        let mut out = Vec::with_capacity(ivs.len() + 1);
        for &(s, e) in ivs.iter() {
            if *gno < s || *gno > e {
                out.push((s, e));
                continue;
            }
            if s < *gno {
                out.push((s, gno - 1));
            }
            if *gno < e {
                out.push((gno + 1, e));
            }
        }
        if out.is_empty() {
            m.remove(sid);
        } else {
            *ivs = out;
        }
    }

    /// True when every transaction of `other` is in `self` (MariaDB: per domain, our sequence is at least theirs).
    pub fn contains(&self, other: &GtidSet) -> bool {
        match (self, other) {
            (GtidSet::MySql(a), GtidSet::MySql(b)) => b.iter().all(|(sid, ivs)| {
                let mine = a.get(sid).map(Vec::as_slice).unwrap_or(&[]);
                ivs.iter().all(|(s, e)| mine.iter().any(|(ms, me)| ms <= s && e <= me))
            }),
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => {
                b.iter().all(|(d, (_, seq))| a.get(d).is_some_and(|(_, mine)| mine >= seq))
            }
            _ => false,
        }
    }

    /// True when the single transaction is in the set.
    pub fn contains_gtid(&self, gtid: &Gtid) -> bool {
        match (self, gtid) {
            (GtidSet::MySql(m), Gtid::MySql { sid, gno }) => {
                m.get(sid).is_some_and(|ivs| ivs.iter().any(|(s, e)| s <= gno && gno <= e))
            }
            (GtidSet::MariaDb(m), Gtid::MariaDb { domain, seq, .. }) => m.get(domain).is_some_and(|(_, s)| s >= seq),
            _ => false,
        }
    }

    /// Number of transactions in `self` that are not in `base` (MySQL), or the sequence distance (MariaDB).
    pub fn count_after(&self, base: &GtidSet) -> u64 {
        match (self, base) {
            (GtidSet::MySql(a), GtidSet::MySql(b)) => {
                let total = |m: &BTreeMap<String, Vec<(u64, u64)>>| -> u64 {
                    m.values().flat_map(|v| v.iter()).map(|(s, e)| e - s + 1).sum()
                };
                total(a).saturating_sub(total(b))
            }
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => a
                .iter()
                .map(|(d, (_, seq))| seq.saturating_sub(b.get(d).map(|x| x.1).unwrap_or(0)))
                .sum(),
            _ => 0,
        }
    }

    /// The MySQL sets for a `COM_BINLOG_DUMP_GTID` request.
    pub fn to_sids(&self) -> Result<Vec<mysql_common::packets::Sid<'static>>> {
        let GtidSet::MySql(m) = self else { bail!("a MariaDB position has no MySQL sids") };
        let mut out = Vec::new();
        for (key, ivs) in m {
            // Tagged GTIDs need the tagged wire format; parse through mysql_common's own parser.
            let text = if ivs.is_empty() {
                continue;
            } else {
                let ranges: Vec<String> = ivs.iter().map(|(s, e)| format!("{s}-{e}")).collect();
                format!("{key}:{}", ranges.join(":"))
            };
            let sid: mysql_common::packets::Sid<'static> =
                text.parse().map_err(|e| eyre!("GTID element '{text}' not understood by the client: {e}"))?;
            out.push(sid);
        }
        Ok(out)
    }
}

fn add_interval(ivs: &mut Vec<(u64, u64)>, a: u64, b: u64) {
    ivs.push((a, b));
    ivs.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
    for (s, e) in ivs.drain(..) {
        if let Some(last) = merged.last_mut() {
            if s <= last.1.saturating_add(1) {
                last.1 = last.1.max(e);
                continue;
            }
        }
        merged.push((s, e));
    }
    *ivs = merged;
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::MySql(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(sid, ivs)| {
                        let r: Vec<String> = ivs
                            .iter()
                            .map(|(s, e)| if s == e { s.to_string() } else { format!("{s}-{e}") })
                            .collect();
                        format!("{sid}:{}", r.join(":"))
                    })
                    .collect();
                f.write_str(&parts.join(","))
            }
            GtidSet::MariaDb(m) => {
                let parts: Vec<String> = m.iter().map(|(d, (s, n))| format!("{d}-{s}-{n}")).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn mysql_sets_merge_and_compare() {
        let mut s = GtidSet::parse_mysql(&format!("{U}:1-5:7")).unwrap();
        s.add(&Gtid::MySql { sid: U.into(), gno: 6 });
        assert_eq!(s.to_string(), format!("{U}:1-7"));
        let sub = GtidSet::parse_mysql(&format!("{U}:2-4")).unwrap();
        assert!(s.contains(&sub));
        assert!(!sub.contains(&s));
        assert_eq!(s.count_after(&sub), 4);
        assert!(s.contains_gtid(&Gtid::MySql { sid: U.into(), gno: 7 }));
        assert!(!s.contains_gtid(&Gtid::MySql { sid: U.into(), gno: 8 }));
        assert_eq!(s.to_sids().unwrap().len(), 1);
    }

    #[test]
    fn mysql_set_with_newlines_and_upper_case_parses() {
        let s = GtidSet::parse_mysql(&format!("{},\n{U}:3", "AAAAAAAA-71CA-11E1-9E33-C80AA9429562:1-2")).unwrap();
        assert_eq!(s.to_string(), format!("{U}:3,aaaaaaaa-71ca-11e1-9e33-c80aa9429562:1-2"));
    }

    #[test]
    fn a_removed_mysql_gtid_leaves_a_gap() {
        let mut s = GtidSet::parse_mysql(&format!("{U}:1-9")).unwrap();
        s.remove(&Gtid::MySql { sid: U.into(), gno: 5 });
        assert_eq!(s.to_string(), format!("{U}:1-4:6-9"));
        s.remove(&Gtid::MySql { sid: U.into(), gno: 1 });
        s.remove(&Gtid::MySql { sid: U.into(), gno: 9 });
        assert_eq!(s.to_string(), format!("{U}:2-4:6-8"));
        s.add(&Gtid::MySql { sid: U.into(), gno: 5 });
        assert_eq!(s.to_string(), format!("{U}:2-8"));
        let mut one = GtidSet::parse_mysql(&format!("{U}:3")).unwrap();
        one.remove(&Gtid::MySql { sid: U.into(), gno: 3 });
        assert!(one.is_empty());
    }

    #[test]
    fn mariadb_positions_compare_per_domain() {
        let mut s = GtidSet::parse_mariadb("0-1-100,1-2-5").unwrap();
        assert!(s.contains(&GtidSet::parse_mariadb("0-1-99").unwrap()));
        assert!(!s.contains(&GtidSet::parse_mariadb("0-1-101").unwrap()));
        assert!(!s.contains(&GtidSet::parse_mariadb("2-1-1").unwrap()));
        s.add(&Gtid::MariaDb { domain: 0, server: 3, seq: 101 });
        assert_eq!(s.to_string(), "0-3-101,1-2-5");
        assert!(GtidSet::parse_mariadb("bad").is_err());
        assert!(GtidSet::parse_mariadb("").unwrap().is_empty());
    }
}
