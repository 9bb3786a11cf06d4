//! Maps the client's binlog events (mysql_common) onto the assembler's input, names the watched table a rows
//! event belongs to (compared as the server compares names), and writes and reads the one-line text form of a
//! mapped event that the assembler's recorded fixtures use (`tests/record_binlog.rs` records them).

use mysql_common::binlog::events::{Event as BinlogEvent, EventData, TableMapEvent};

use crate::engine::stream::assembler::{Event, WatchedName};
use crate::engine::stream::gtid::Gtid;
use crate::engine::stream::statement::NameCase;

/// What the streamer needs besides the assembler's input.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    None,
    /// ROTATE: the raw file name bytes and the position in it.
    Rotate { name: Vec<u8>, pos: u64 },
    FormatDescription,
    Heartbeat,
    /// A rows event of a watched table: decode its rows (the index is in the event).
    DecodeRows,
}

/// One mapped event: the assembler's input (rows as `()`: the streamer decodes watched ones) and a note.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub event: Event<()>,
    pub note: Note,
    /// `db.table` of a rows or table-map event, for fixtures and messages.
    pub table: Option<String>,
}

impl Mapped {
    fn plain(event: Event<()>) -> Self {
        Mapped { event, note: Note::None, table: None }
    }
}

/// Finds a table among the watched ones as the server compares names.
pub fn watched_index(watched: &[WatchedName], case: NameCase, db: &str, table: &str) -> Option<usize> {
    watched.iter().position(|w| case.same(&w.database, db) && case.same(&w.table, table))
}

/// Maps one event. `tme` finds the table map of a table id; `mariadb` selects the raw GTID layout.
pub fn map<'t>(
    ev: &BinlogEvent,
    tme: impl Fn(u64) -> Option<&'t TableMapEvent<'static>>,
    watched: &[WatchedName],
    case: NameCase,
) -> Mapped {
    let header = ev.header();
    let code = header.event_type_raw();
    let rows_of = |table_id: u64, what: Option<&str>| -> Mapped {
        let Some(t) = tme(table_id) else {
            let what = what.unwrap_or("a rows event whose table map is missing").to_string();
            return Mapped::plain(Event::Unreadable { what, watched: None });
        };
        let (db, name) = (t.database_name().into_owned(), t.table_name().into_owned());
        let index = watched_index(watched, case, &db, &name);
        let table = Some(format!("{db}.{name}"));
        match what {
            Some(what) => Mapped {
                event: Event::Unreadable { what: what.to_string(), watched: Some(index.is_some()) },
                note: Note::None,
                table,
            },
            None => Mapped {
                event: Event::Rows { table: index, rows: () },
                note: if index.is_some() { Note::DecodeRows } else { Note::None },
                table,
            },
        }
    };
    match code {
        // MariaDB GTID: seq u64, domain u32, flags u8.
        162 => {
            let d = ev.data();
            if d.len() < 13 {
                return Mapped::plain(Event::Unreadable { what: "a MariaDB GTID event too short to read".into(), watched: None });
            }
            let seq = u64::from_le_bytes(d[0..8].try_into().unwrap_or([0; 8]));
            let domain = u32::from_le_bytes(d[8..12].try_into().unwrap_or([0; 4]));
            // Flag bit 1: standalone (one statement, no XID); otherwise an implicit BEGIN (MariaDB logs none).
            let standalone = Some(d[12] & 1 != 0);
            // FL_PREPARED_XA (64): the group is an XA transaction's `XA START .. XA PREPARE` (MariaDB logs no XA
            // START; the xid first shows in XA END): the assembler must not hand its rows out in parts.
            let xa = d[12] & 64 != 0;
            Mapped::plain(Event::Gtid { gtid: Some(Gtid::MariaDb { domain, server: header.server_id(), seq }), standalone, xa })
        }
        // MariaDB compressed query (165) and rows events (166-171): table id in the first 6 bytes.
        165 => Mapped::plain(Event::Unreadable {
            what: "a compressed query event (log_bin_compress=ON; set it OFF)".into(),
            watched: None,
        }),
        166..=171 => {
            let d = ev.data();
            let mut id = [0u8; 8];
            if d.len() >= 6 {
                id[..6].copy_from_slice(&d[..6]);
            }
            rows_of(u64::from_le_bytes(id), Some("a compressed rows event (log_bin_compress=ON; set it OFF)"))
        }
        // MariaDB XA_PREPARE_LOG_EVENT has the same number and layout as MySQL's: one_phase byte first.
        38 => Mapped::plain(Event::XaPrepare { one_phase: ev.data().first().is_some_and(|b| *b != 0) }),
        40 => Mapped::plain(Event::Payload),
        _ => map_decoded(ev, rows_of),
    }
}

fn map_decoded(ev: &BinlogEvent, rows_of: impl Fn(u64, Option<&str>) -> Mapped) -> Mapped {
    let code = ev.header().event_type_raw();
    let data = match ev.read_data() {
        Ok(Some(d)) => d,
        Ok(None) => return Mapped::plain(Event::Other),
        Err(e) => {
            return Mapped::plain(Event::Unreadable { what: format!("an event of type {code} that failed to decode ({e})"), watched: None })
        }
    };
    match data {
        EventData::GtidEvent(g) => {
            let sid = format_uuid(&g.sid());
            let sid = match g.tag() {
                Some(tag) => format!("{sid}:{}", String::from_utf8_lossy(tag.as_bytes()).to_ascii_lowercase()),
                None => sid,
            };
            Mapped::plain(Event::Gtid { gtid: Some(Gtid::MySql { sid, gno: g.gno() }), standalone: None, xa: false })
        }
        EventData::AnonymousGtidEvent(_) => Mapped::plain(Event::Gtid { gtid: None, standalone: None, xa: false }),
        EventData::QueryEvent(q) => Mapped::plain(Event::Query {
            schema: String::from_utf8_lossy(q.schema_raw()).into_owned(),
            text: q.query().into_owned(),
        }),
        EventData::XidEvent(_) => Mapped::plain(Event::Xid),
        // Partial JSON updates (39) decode too; a JSON diff in a watched row is refused when its values convert.
        EventData::RowsEvent(r) => rows_of(r.table_id(), None),
        EventData::RotateEvent(r) => {
            Mapped { event: Event::Other, note: Note::Rotate { name: r.name_raw().to_vec(), pos: r.position() }, table: None }
        }
        EventData::FormatDescriptionEvent(_) => Mapped { event: Event::Other, note: Note::FormatDescription, table: None },
        EventData::HeartbeatEvent => Mapped { event: Event::Other, note: Note::Heartbeat, table: None },
        EventData::TableMapEvent(t) => Mapped {
            event: Event::Other,
            note: Note::None,
            table: Some(format!("{}.{}", t.database_name(), t.table_name())),
        },
        _ if code == 41 => Mapped { event: Event::Other, note: Note::Heartbeat, table: None },
        _ => Mapped::plain(Event::Other),
    }
}

fn format_uuid(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The fixture line of a mapped event: `code<TAB>kind<TAB>fields...` (text with `\n`, `\t`, `\\` escaped).
pub fn describe(code: u8, m: &Mapped) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('\n', "\\n").replace('\t', "\\t");
    let table = m.table.clone().unwrap_or_else(|| "?".into());
    let body = match &m.event {
        Event::Gtid { gtid, standalone, xa } => {
            let flag = match standalone {
                Some(true) => "\tstandalone",
                Some(false) => "\ttransaction",
                None => "",
            };
            let xa = if *xa { "\txa" } else { "" };
            format!("gtid\t{}{flag}{xa}", gtid.as_ref().map_or_else(|| "-".to_string(), ToString::to_string))
        }
        Event::Query { schema, text } => format!("query\t{}\t{}", esc(schema), esc(text)),
        Event::Rows { .. } => format!("rows\t{table}"),
        Event::Xid => "xid".into(),
        Event::XaPrepare { one_phase } => format!("xa_prepare\t{}", u8::from(*one_phase)),
        Event::Payload => "payload".into(),
        Event::Unreadable { what, .. } => format!("unreadable\t{table}\t{}", esc(what)),
        Event::Other => match &m.note {
            Note::Heartbeat => "heartbeat".into(),
            Note::Rotate { name, pos } => format!("rotate\t{}\t{pos}", esc(&String::from_utf8_lossy(name))),
            Note::FormatDescription => "format_description".into(),
            _ if m.table.is_some() => format!("table_map\t{table}"),
            _ => "other".into(),
        },
    };
    format!("{code}\t{body}")
}

/// Reads a fixture line back into the assembler's input; rows carry their `db.table` label, and `watched`
/// decides which tables are watched. Comment lines (`#`) and blank lines give None.
pub fn parse_fixture_line(line: &str, mariadb: bool, watched: &[&str]) -> Option<Event<String>> {
    let unesc = |s: &str| s.replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\");
    if line.trim().is_empty() || line.starts_with('#') {
        return None;
    }
    let f: Vec<&str> = line.split('\t').collect();
    let field = |i: usize| f.get(i).copied().unwrap_or("");
    let is_watched = |t: &str| watched.iter().position(|w| *w == t);
    Some(match field(1) {
        "gtid" => {
            let gtid = if field(2) == "-" { None } else { Some(parse_gtid(field(2), mariadb)?) };
            let standalone = match field(3) {
                "standalone" => Some(true),
                "transaction" => Some(false),
                _ => None,
            };
            Event::Gtid { gtid, standalone, xa: field(4) == "xa" }
        }
        "query" => Event::Query { schema: unesc(field(2)), text: unesc(field(3)) },
        "rows" => Event::Rows { table: is_watched(field(2)), rows: field(2).to_string() },
        "xid" => Event::Xid,
        "xa_prepare" => Event::XaPrepare { one_phase: field(2) == "1" },
        "payload" => Event::Payload,
        "unreadable" => Event::Unreadable {
            what: unesc(field(3)),
            watched: if field(2) == "?" { None } else { Some(is_watched(field(2)).is_some()) },
        },
        _ => Event::Other,
    })
}

fn parse_gtid(text: &str, mariadb: bool) -> Option<Gtid> {
    if mariadb {
        let p: Vec<&str> = text.split('-').collect();
        Some(Gtid::MariaDb { domain: p.first()?.parse().ok()?, server: p.get(1)?.parse().ok()?, seq: p.get(2)?.parse().ok()? })
    } else {
        let (sid, gno) = text.rsplit_once(':')?;
        Some(Gtid::MySql { sid: sid.to_string(), gno: gno.parse().ok()? })
    }
}
