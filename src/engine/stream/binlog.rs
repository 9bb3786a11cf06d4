//! The binlog streamer: reads the source server's binary log from a GTID position, keeps the row events of the
//! watched tables, and hands whole transactions (with the position after each) to the applier; a transaction
//! heavier than the assembler's part budget goes in parts first ([`StreamItem::Part`]), through a queue bounded in
//! bytes (`queue.rs`).
//! Works on MySQL (COM_BINLOG_DUMP_GTID) and MariaDB (`@slave_connect_state`, raw GTID events). Boundaries and
//! positions are the assembler's (`assembler.rs`); this file does the I/O. Reconnects from the last safe position
//! after a network error or when the server falls silent (no event or heartbeat for `SILENCE_TIMEOUT`).

use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, eyre, Result, WrapErr};
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Value};
use mysql_common::binlog::events::EventData;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::engine::stream::assembler::{is_fatal, Assembler, Event as AsmEvent, Fatal, Output, WatchedName, Weigh};
use crate::engine::stream::queue::QueueTx;
use crate::engine::stream::events::{self, Mapped, Note};
use crate::engine::stream::gtid::{Gtid, GtidSet};
use crate::engine::stream::statement::NameCase;
use crate::engine::plan::schema::Column;
use crate::engine::apply::values;

/// A position in the source's binary log: the GTID set executed up to here, with file:pos for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinlogPosition {
    /// GTID set text (MySQL `uuid:1-n`, MariaDB `D-S-N,...`).
    pub gtid_set: String,
    pub file: String,
    pub pos: u64,
}

/// A table whose row events are kept.
#[derive(Debug, Clone)]
pub struct WatchedTable {
    pub database: String,
    pub table: String,
    /// The table's columns in ordinal order (the binlog image's order).
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Update,
    Delete,
}

/// One row change of a watched table, values converted for binding.
#[derive(Debug, Clone)]
pub struct RowChange {
    /// Index into the streamer's watched tables.
    pub table: usize,
    pub kind: ChangeKind,
    pub before: Option<Vec<Value>>,
    pub after: Option<Vec<Value>>,
    /// Columns of `after` (by index) that only SQL can write exactly (MySQL JSON with opaque values); `after`
    /// holds NULL for them.
    pub after_sql: Vec<(usize, values::SqlValue)>,
}

impl RowChange {
    /// Roughly what this change holds in memory (its images and SQL values), for the byte budgets.
    pub fn weight(&self) -> usize {
        fn value(v: &Value) -> usize {
            std::mem::size_of::<Value>() + if let Value::Bytes(b) = v { b.capacity() + 16 } else { 0 }
        }
        let image = |r: &Option<Vec<Value>>| r.as_ref().map_or(0, |row| 24 + row.iter().map(value).sum::<usize>());
        let sql: usize = self.after_sql.iter().map(|(_, s)| 64 + s.sql.capacity() + s.params.iter().map(value).sum::<usize>()).sum();
        std::mem::size_of::<RowChange>() + image(&self.before) + image(&self.after) + sql
    }
}

impl Weigh for Vec<RowChange> {
    fn weight(&self) -> usize {
        self.iter().map(RowChange::weight).sum()
    }
}

/// A committed source transaction (or the last part of one handed out in parts).
#[derive(Debug, Clone)]
pub struct Transaction {
    pub gtid: Option<Gtid>,
    /// The position after this transaction.
    pub position: BinlogPosition,
    /// Row changes of watched tables (possibly none).
    pub changes: Vec<RowChange>,
    /// A statement logged as a query (DDL), if the transaction was one.
    pub statement: Option<String>,
    /// The statement's default database (unqualified names in it resolve there).
    pub schema: String,
}

/// What the streamer sends.
#[derive(Debug)]
pub enum StreamItem {
    Transaction(Transaction),
    /// Row changes of a source transaction still open, in order; its last part is its `Transaction`. No GTID and
    /// no position: whoever records positions records none for a part (see the assembler's module doc).
    Part(Vec<RowChange>),
    /// Transactions without watched rows were passed; the position moved on to here.
    Progress(BinlogPosition),
}

/// How to read the log.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub opts: mysql_async::Opts,
    pub mariadb: bool,
    /// Server id this client registers with (unique among the source's replicas).
    pub client_server_id: u32,
    pub start: BinlogPosition,
    pub watched: Vec<WatchedTable>,
    /// How long to keep reconnecting after errors before giving up.
    pub retry_for: Duration,
}

/// Live streamer facts for the status snapshot.
#[derive(Debug, Default, Clone)]
pub struct StreamerState {
    pub file: String,
    pub pos: u64,
    pub connected: bool,
    pub last_error: Option<String>,
}

/// Reads the current end of the binary log (file, pos, GTID set) with a query.
pub async fn current_position(conn: &mut mysql_async::Conn, mariadb: bool) -> Result<BinlogPosition> {
    let (file, pos) = binlog_file_pos(conn).await?;
    let gtid_set: String = if mariadb {
        conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await?.unwrap_or_default()
    } else {
        conn.query_first("SELECT @@GLOBAL.gtid_executed").await?.unwrap_or_default()
    };
    let set = GtidSet::parse(mariadb, &gtid_set)?;
    Ok(BinlogPosition { gtid_set: set.to_string(), file, pos })
}

/// `SHOW BINARY LOG STATUS` (MySQL 8.2+) or `SHOW MASTER STATUS`.
pub async fn binlog_file_pos(conn: &mut mysql_async::Conn) -> Result<(String, u64)> {
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW BINARY LOG STATUS").await {
        Ok(r) => r,
        Err(_) => conn.query_first("SHOW MASTER STATUS").await.wrap_err("SHOW MASTER STATUS")?,
    };
    let row = row.ok_or_else(|| eyre!("the server reports no binary log status: is log_bin ON?"))?;
    let file: String = row.get_opt(0).and_then(|r| r.ok()).unwrap_or_default();
    let pos: u64 = row.get_opt(1).and_then(|r| r.ok()).unwrap_or(0);
    Ok((file, pos))
}

/// How often the server is asked for a heartbeat while it has nothing to send.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);
/// No event and no heartbeat for this long: the connection is dead or stalled (half-open TCP); reconnect.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(5);
/// The same before a new stream's first event: the server may first scan large binlog files for the start GTID.
pub const FIRST_EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the streamer until cancelled, the receiver goes away, or retries run out. A [`Fatal`] error (see the
/// assembler) ends it at once: retrying would read the same events again.
pub async fn run(
    cfg: StreamConfig,
    out: QueueTx,
    state: std::sync::Arc<std::sync::Mutex<StreamerState>>,
    cancel: CancellationToken,
) -> Result<()> {
    let mut position = cfg.start.clone();
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let mut healthy = false;
        let result = stream_once(&cfg, &mut position, &out, &state, &cancel, &mut healthy).await;
        if let Ok(mut s) = state.lock() {
            s.connected = false;
        }
        let e = match result {
            Ok(StreamEnd::Cancelled) => return Ok(()),
            Ok(StreamEnd::ReceiverGone) => {
                // The applier stopped (an error, or a stop): its own result says why. Ending first would make the
                // pipeline report "the binlog streamer ended unexpectedly" instead; wait to be cancelled.
                cancel.cancelled().await;
                return Ok(());
            }
            Err(e) => e,
        };
        if is_fatal(&e) {
            return Err(e.wrap_err(format!("the binlog stream stopped at {} (the checkpoint keeps it; resume continues there once the cause is fixed)", position.gtid_set)));
        }
        let text = format!("{e:#}");
        // Purged or diverged positions cannot be fixed by retrying.
        if text.contains("1236") || text.contains("purged") {
            return Err(e.wrap_err(format!("the binlog position {} is no longer available", position.gtid_set)));
        }
        if healthy {
            // The stream worked before this error: a new failure, with a new retry window.
            failing_since = None;
            backoff = Duration::from_millis(100);
        }
        let since = *failing_since.get_or_insert_with(Instant::now);
        tracing::warn!("binlog stream error (reconnecting from {}): {text}", position.gtid_set);
        if let Ok(mut s) = state.lock() {
            s.last_error = Some(text.clone());
        }
        if since.elapsed() > cfg.retry_for {
            return Err(e.wrap_err(format!(
                "the binlog stream kept failing for {:?}; last position {}",
                cfg.retry_for, position.gtid_set
            )));
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

enum StreamEnd {
    Cancelled,
    ReceiverGone,
}

/// The file name of a ROTATE event. MariaDB's fake first ROTATE arrives before the format description, so the
/// decoder does not know the stream carries checksums and leaves the event's 4 CRC32 bytes on the name (they may
/// hold any byte, a '.' or digits too): strip exactly those when the server checksums its binlog.
fn clean_file_name(raw: &[u8], fake_with_checksum: bool) -> String {
    let name = if fake_with_checksum && raw.len() > 4 { &raw[..raw.len() - 4] } else { raw };
    String::from_utf8_lossy(name).chars().filter(|c| !c.is_control()).collect()
}

/// One open binlog connection and what is known about the server it reads.
struct Opened {
    stream: mysql_async::BinlogStream,
    checksummed: bool,
    case: NameCase,
}

/// Connects (TCP keepalive on, 1 GiB packets, heartbeats asked for) and requests the log from `position`.
async fn open_stream(cfg: &StreamConfig, position: &BinlogPosition) -> Result<Opened> {
    let opts = mysql_async::OptsBuilder::from_opts(cfg.opts.clone())
        .tcp_keepalive(Some(Duration::from_secs(10)))
        .max_allowed_packet(Some(1 << 30));
    let mut conn = crate::engine::connection::connect(opts).await.wrap_err("connecting the binlog client")?;
    // Nanoseconds. MySQL 8.4+ reads @source_heartbeat_period, older MySQL and MariaDB @master_heartbeat_period.
    let ns = HEARTBEAT_PERIOD.as_nanos() as u64;
    conn.exec_drop("SET @master_heartbeat_period = ?, @source_heartbeat_period = ?", (ns, ns)).await?;
    let checksum: Option<String> = conn.query_first("SELECT @@GLOBAL.binlog_checksum").await?;
    let lower: Option<u64> = conn.query_first("SELECT @@lower_case_table_names").await?;
    let request = BinlogStreamRequest::new(cfg.client_server_id);
    let stream = if cfg.mariadb {
        conn.query_drop("SET @mariadb_slave_capability = 4").await?;
        conn.exec_drop("SET @slave_connect_state = ?", (position.gtid_set.clone(),)).await?;
        conn.query_drop("SET @slave_gtid_strict_mode = 1, @slave_gtid_ignore_duplicates = 0").await?;
        conn.get_binlog_stream(request.with_filename(b"").with_pos(4u64)).await
    } else {
        let sids = GtidSet::parse(false, &position.gtid_set)?.to_sids()?;
        conn.get_binlog_stream(request.with_gtid().with_gtid_set(sids)).await
    };
    Ok(Opened {
        stream: stream.wrap_err("requesting the binlog stream")?,
        checksummed: checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE")),
        case: NameCase::from_setting(lower.unwrap_or(0)),
    })
}

/// Sends `Progress` past transactions without watched rows at most every 200 ms (and when the stream goes idle).
struct ProgressGate {
    pending: bool,
    last: Instant,
}

impl ProgressGate {
    fn due(&mut self, idle: bool) -> bool {
        if self.pending && (idle || self.last.elapsed() > Duration::from_millis(200)) {
            self.sent();
            return true;
        }
        false
    }
    fn sent(&mut self) {
        self.pending = false;
        self.last = Instant::now();
    }
}

/// One connection's worth of streaming: events -> assembler -> whole transactions out. Returns on cancel or a
/// closed receiver; every other end is an error (the caller reconnects from `position`, the last safe one).
async fn stream_once(
    cfg: &StreamConfig,
    position: &mut BinlogPosition,
    out: &QueueTx,
    state: &std::sync::Arc<std::sync::Mutex<StreamerState>>,
    cancel: &CancellationToken,
    healthy: &mut bool,
) -> Result<StreamEnd> {
    let Opened { mut stream, checksummed, case } = open_stream(cfg, position).await?;
    if let Ok(mut s) = state.lock() {
        s.connected = true;
    }
    tracing::debug!("binlog stream open at {}", position.gtid_set);
    let names: Vec<WatchedName> =
        cfg.watched.iter().map(|w| WatchedName { database: w.database.clone(), table: w.table.clone() }).collect();
    let mut asm = Assembler::new(GtidSet::parse(cfg.mariadb, &position.gtid_set)?, names.clone(), case);
    // Until the first FORMAT_DESCRIPTION event the decoder does not strip checksums (see clean_file_name).
    let mut seen_format_description = false;
    let mut progress = ProgressGate { pending: false, last: Instant::now() };
    let mut last_event = Instant::now();
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return Ok(StreamEnd::Cancelled),
            n = tokio::time::timeout(Duration::from_millis(250), stream.next()) => n,
        };
        let ev = match next {
            Err(_) => {
                let silence = if *healthy { SILENCE_TIMEOUT } else { FIRST_EVENT_TIMEOUT };
                if last_event.elapsed() > silence {
                    bail!("no binlog event and no heartbeat for {:?} (heartbeats every {HEARTBEAT_PERIOD:?}): the connection is dead or stalled", last_event.elapsed());
                }
                if !asm.in_transaction() && progress.due(true) && out.send(StreamItem::Progress(position.clone())).await.is_err() {
                    return Ok(StreamEnd::ReceiverGone);
                }
                continue;
            }
            Ok(None) => bail!("the server closed the binlog stream"),
            Ok(Some(Err(e))) => return Err(eyre!(e).wrap_err("reading the binlog stream")),
            Ok(Some(Ok(ev))) => ev,
        };
        *healthy = true;
        last_event = Instant::now();
        let log_pos = ev.header().log_pos() as u64;
        let mapped = events::map(&ev, |id| stream.get_tme(id), &names, case);
        if mapped.note == Note::FormatDescription {
            seen_format_description = true;
        }
        let fake_with_checksum = cfg.mariadb && !seen_format_description && checksummed;
        note_position(&mapped.note, log_pos, fake_with_checksum, position, state);
        let event = decode_rows(&ev, mapped, |id| stream.get_tme(id), &cfg.watched)?;
        let Some(output) = asm.feed(event)? else { continue };
        if log_pos > 0 && !matches!(output, Output::Part { .. }) {
            position.pos = log_pos;
        }
        let item = match output {
            // The position stays before the transaction until its last part.
            Output::Part { rows } => StreamItem::Part(rows.into_iter().flatten().collect()),
            Output::Progress { safe_set } => {
                position.gtid_set = safe_set;
                progress.pending = true;
                if !progress.due(false) {
                    continue;
                }
                StreamItem::Progress(position.clone())
            }
            Output::Transaction { gtid, safe_set, rows, statement } => {
                position.gtid_set = safe_set;
                progress.sent();
                let (schema, statement) = statement.map_or((String::new(), None), |(s, t)| (s, Some(t)));
                let changes = rows.into_iter().flatten().collect();
                StreamItem::Transaction(Transaction { gtid, position: position.clone(), changes, statement, schema })
            }
        };
        if out.send(item).await.is_err() {
            return Ok(StreamEnd::ReceiverGone);
        }
        last_event = Instant::now();
    }
}

/// Follows rotations (the file name) and event positions for the status snapshot.
fn note_position(
    note: &Note,
    log_pos: u64,
    fake_with_checksum: bool,
    position: &mut BinlogPosition,
    state: &std::sync::Mutex<StreamerState>,
) {
    let Ok(mut s) = state.lock() else { return };
    match note {
        Note::Rotate { name, pos } => {
            position.file = clean_file_name(name, fake_with_checksum);
            (s.file, s.pos) = (position.file.clone(), *pos);
        }
        _ if log_pos > 0 => s.pos = log_pos,
        _ => {}
    }
}

/// The assembler's input for one mapped event: a watched table's rows decoded into row changes (a failure is
/// [`Fatal`]: the same bytes fail again), other rows left empty.
fn decode_rows<'t>(
    ev: &mysql_common::binlog::events::Event,
    mapped: Mapped,
    tme: impl Fn(u64) -> Option<&'t mysql_common::binlog::events::TableMapEvent<'static>>,
    watched: &[WatchedTable],
) -> Result<AsmEvent<Vec<RowChange>>> {
    let (table, label) = match mapped.event {
        AsmEvent::Rows { table: Some(i), .. } => (i, mapped.table.unwrap_or_default()),
        AsmEvent::Rows { table: None, .. } => return Ok(AsmEvent::Rows { table: None, rows: Vec::new() }),
        AsmEvent::Gtid { gtid, standalone, xa } => return Ok(AsmEvent::Gtid { gtid, standalone, xa }),
        AsmEvent::Query { schema, text } => return Ok(AsmEvent::Query { schema, text }),
        AsmEvent::Xid => return Ok(AsmEvent::Xid),
        AsmEvent::XaPrepare { one_phase } => return Ok(AsmEvent::XaPrepare { one_phase }),
        AsmEvent::Payload => return Ok(AsmEvent::Payload),
        AsmEvent::Unreadable { what, watched } => return Ok(AsmEvent::Unreadable { what, watched }),
        AsmEvent::Other => return Ok(AsmEvent::Other),
    };
    let rows = rows_of(ev, &tme, &watched[table], table).map_err(|e| {
        let why = format!("{e:#}");
        eyre!(Fatal(format!("decoding a row event of {label}: {why}")))
    })?;
    Ok(AsmEvent::Rows { table: Some(table), rows })
}

fn rows_of<'t>(
    ev: &mysql_common::binlog::events::Event,
    tme: &impl Fn(u64) -> Option<&'t mysql_common::binlog::events::TableMapEvent<'static>>,
    watched: &WatchedTable,
    index: usize,
) -> Result<Vec<RowChange>> {
    let Ok(Some(EventData::RowsEvent(rows))) = ev.read_data() else { bail!("the rows event did not decode") };
    let tme = tme(rows.table_id()).ok_or_else(|| eyre!("its table map is missing"))?;
    let kind = match ev.header().event_type_raw() {
        23 | 30 => ChangeKind::Insert,
        24 | 31 | 39 => ChangeKind::Update,
        25 | 32 => ChangeKind::Delete,
        other => bail!("unexpected rows event type {other}"),
    };
    let mut changes = Vec::new();
    for row in rows.rows(tme) {
        let (before, after) = row?;
        let before = before.map(|r| convert_row(r, watched)).transpose()?.map(|(row, _)| row);
        let (after, after_sql) = match after.map(|r| convert_row(r, watched)).transpose()? {
            Some((row, sql)) => (Some(row), sql),
            None => (None, Vec::new()),
        };
        changes.push(RowChange { table: index, kind, before, after, after_sql });
    }
    Ok(changes)
}

/// A row image's values, and the SQL for those that need it (see [`RowChange::after_sql`]).
type ConvertedRow = (Vec<Value>, Vec<(usize, values::SqlValue)>);

fn convert_row(row: mysql_common::binlog::row::BinlogRow, table: &WatchedTable) -> Result<ConvertedRow> {
    let n = row.len();
    if n != table.columns.len() {
        bail!(
            "a row event of {}.{} has {n} columns but the table has {}: was the table altered during the migration?",
            table.database,
            table.table,
            table.columns.len()
        );
    }
    let mut row = row;
    let mut out = Vec::with_capacity(n);
    let mut sql = Vec::new();
    for (i, col) in table.columns.iter().enumerate() {
        let v = row.take(i).ok_or_else(|| {
            eyre!("a row event of {}.{} lacks column {}: is binlog_row_image FULL?", table.database, table.table, col.name)
        })?;
        let (value, rebuilt) = values::convert(v, col)?;
        out.push(value);
        if let Some(r) = rebuilt {
            sql.push((i, r));
        }
    }
    Ok((out, sql))
}

#[cfg(test)]
mod tests {
    use super::clean_file_name;

    #[test]
    fn fake_rotate_names_lose_exactly_their_checksum_bytes() {
        // The 4 CRC32 bytes may contain a '.' or digits: they are cut by count, not by shape.
        assert_eq!(clean_file_name(b"mysql-bin.000001\x8f.\xa12", true), "mysql-bin.000001");
        assert_eq!(clean_file_name(b"mysql-bin.0000011234", true), "mysql-bin.000001");
        assert_eq!(clean_file_name(b"mysql-bin.000002", false), "mysql-bin.000002");
    }
}
