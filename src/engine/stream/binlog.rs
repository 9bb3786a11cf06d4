//! The binlog streamer: reads the source server's binary log from a GTID position, keeps the row events of the
//! watched tables, and hands whole transactions (with the position after each) to the applier.
//! Works on MySQL (COM_BINLOG_DUMP_GTID) and MariaDB (`@slave_connect_state`, raw GTID events). Reconnects from the
//! last complete transaction after a network error.

use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, eyre, Result, WrapErr};
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Value};
use mysql_common::binlog::events::EventData;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::stream::gtid::{Gtid, GtidSet};
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

/// A committed source transaction.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub gtid: Option<Gtid>,
    /// The position after this transaction.
    pub position: BinlogPosition,
    /// Row changes of watched tables (possibly none).
    pub changes: Vec<RowChange>,
    /// A statement logged as a query (DDL), if the transaction was one.
    pub statement: Option<String>,
}

/// What the streamer sends.
#[derive(Debug)]
pub enum StreamItem {
    Transaction(Transaction),
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

/// Runs the streamer until cancelled, the receiver goes away, or retries run out.
pub async fn run(
    cfg: StreamConfig,
    out: mpsc::Sender<StreamItem>,
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
        let result = stream_once(&cfg, &mut position, &out, &state, &cancel).await;
        if let Ok(mut s) = state.lock() {
            s.connected = false;
        }
        match result {
            Ok(StreamEnd::Cancelled) | Ok(StreamEnd::ReceiverGone) => return Ok(()),
            Err(e) => {
                let fatal = format!("{e:#}");
                // Decoding errors are deterministic: retrying reads the same event again.
                if fatal.contains("decoding") || fatal.contains("was the table altered") {
                    return Err(e);
                }
                // Purged or diverged positions cannot be fixed by retrying.
                if fatal.contains("1236") || fatal.contains("purged") {
                    return Err(e.wrap_err(format!("the binlog position {} is no longer available", position.gtid_set)));
                }
                let since = *failing_since.get_or_insert_with(Instant::now);
                tracing::warn!("binlog stream error (reconnecting from {}): {fatal}", position.gtid_set);
                if let Ok(mut s) = state.lock() {
                    s.last_error = Some(fatal.clone());
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
            Ok(StreamEnd::Healthy) => {
                failing_since = None;
                backoff = Duration::from_millis(100);
            }
        }
    }
}

enum StreamEnd {
    Cancelled,
    ReceiverGone,
    #[allow(dead_code)]
    Healthy,
}

/// The file name of a ROTATE event. MariaDB's fake first ROTATE arrives before the format description, so the
/// decoder does not know the stream carries checksums and leaves the event's 4 CRC32 bytes on the name (they may
/// hold any byte, a '.' or digits too): strip exactly those when the server checksums its binlog.
fn clean_file_name(raw: &[u8], fake_with_checksum: bool) -> String {
    let name = if fake_with_checksum && raw.len() > 4 { &raw[..raw.len() - 4] } else { raw };
    String::from_utf8_lossy(name).chars().filter(|c| !c.is_control()).collect()
}

async fn stream_once(
    cfg: &StreamConfig,
    position: &mut BinlogPosition,
    out: &mpsc::Sender<StreamItem>,
    state: &std::sync::Arc<std::sync::Mutex<StreamerState>>,
    cancel: &CancellationToken,
) -> Result<StreamEnd> {
    let mut conn = mysql_async::Conn::new(cfg.opts.clone()).await.wrap_err("connecting the binlog client")?;
    // Rows up to 1 GiB; the default limit follows max_allowed_packet and ends the stream on big rows.
    conn.query_drop("SET @master_heartbeat_period = 1000000000").await?;
    let checksum: Option<String> = conn.query_first("SELECT @@GLOBAL.binlog_checksum").await?;
    let checksummed = checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
    let mut gtids = GtidSet::parse(cfg.mariadb, &position.gtid_set)?;
    let mut stream = if cfg.mariadb {
        conn.query_drop("SET @mariadb_slave_capability = 4").await?;
        conn.exec_drop("SET @slave_connect_state = ?", (position.gtid_set.clone(),)).await?;
        conn.query_drop("SET @slave_gtid_strict_mode = 1").await?;
        conn.query_drop("SET @slave_gtid_ignore_duplicates = 0").await?;
        conn.get_binlog_stream(BinlogStreamRequest::new(cfg.client_server_id).with_filename(b"").with_pos(4u64))
            .await
            .wrap_err("requesting the binlog stream")?
    } else {
        let sids = gtids.to_sids()?;
        conn.get_binlog_stream(BinlogStreamRequest::new(cfg.client_server_id).with_gtid().with_gtid_set(sids))
            .await
            .wrap_err("requesting the binlog stream")?
    };
    if let Ok(mut s) = state.lock() {
        s.connected = true;
    }
    tracing::debug!("binlog stream open at {}", position.gtid_set);

    let mut file = position.file.clone();
    // Until the first FORMAT_DESCRIPTION event the decoder does not strip checksums (see clean_file_name).
    let mut seen_format_description = false;
    let mut in_txn = false;
    let mut txn_gtid: Option<Gtid> = None;
    let mut standalone = false;
    let mut changes: Vec<RowChange> = Vec::new();
    let mut last_progress = Instant::now();
    let mut progress_pending = false;

    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return Ok(StreamEnd::Cancelled),
            n = tokio::time::timeout(Duration::from_millis(250), stream.next()) => n,
        };
        let event = match next {
            Err(_) => {
                // Idle: report progress past transactions without watched rows.
                if progress_pending && !in_txn {
                    if out.send(StreamItem::Progress(position.clone())).await.is_err() {
                        return Ok(StreamEnd::ReceiverGone);
                    }
                    progress_pending = false;
                    last_progress = Instant::now();
                }
                continue;
            }
            Ok(None) => bail!("the server closed the binlog stream"),
            Ok(Some(Err(e))) => return Err(eyre!(e).wrap_err("reading the binlog stream")),
            Ok(Some(Ok(ev))) => ev,
        };
        let header = event.header();
        let type_raw = header.event_type_raw();
        let log_pos = header.log_pos() as u64;
        if type_raw == 15 {
            seen_format_description = true;
        }
        match type_raw {
            // ROTATE
            4 => {
                if let Ok(Some(EventData::RotateEvent(r))) = event.read_data() {
                    file = clean_file_name(r.name_raw(), cfg.mariadb && !seen_format_description && checksummed);
                    if let Ok(mut s) = state.lock() {
                        s.file = file.clone();
                        s.pos = r.position();
                    }
                }
                continue;
            }
            // MariaDB GTID
            162 => {
                let data = event.data();
                if data.len() >= 13 {
                    let seq = u64::from_le_bytes(data[0..8].try_into().unwrap_or([0; 8]));
                    let domain = u32::from_le_bytes(data[8..12].try_into().unwrap_or([0; 4]));
                    let flags = data[12];
                    txn_gtid = Some(Gtid::MariaDb { domain, server: header.server_id(), seq });
                    standalone = flags & 1 != 0;
                    in_txn = true;
                    changes.clear();
                }
                continue;
            }
            // MySQL GTID / GTID_TAGGED
            33 | 42 => {
                if let Ok(Some(EventData::GtidEvent(g))) = event.read_data() {
                    let sid = format_uuid(&g.sid());
                    let sid = match g.tag() {
                        Some(tag) => format!("{sid}:{}", String::from_utf8_lossy(tag.as_bytes()).to_ascii_lowercase()),
                        None => sid,
                    };
                    txn_gtid = Some(Gtid::MySql { sid, gno: g.gno() });
                }
                standalone = false;
                in_txn = true;
                changes.clear();
                continue;
            }
            // ANONYMOUS_GTID
            34 => {
                txn_gtid = None;
                in_txn = true;
                changes.clear();
                continue;
            }
            _ => {}
        }
        if log_pos > 0 {
            if let Ok(mut s) = state.lock() {
                s.pos = log_pos;
            }
        }
        let mut ends_txn = false;
        let mut statement = None;
        match event.read_data() {
            Ok(Some(EventData::XidEvent(_))) => ends_txn = true,
            Ok(Some(EventData::QueryEvent(q))) => {
                let text = q.query().to_string();
                let upper = text.trim().to_ascii_uppercase();
                if upper == "BEGIN" {
                } else if upper == "COMMIT" {
                    ends_txn = true;
                } else {
                    statement = Some(text);
                    ends_txn = standalone || !cfg.mariadb || !in_txn;
                }
            }
            Ok(Some(EventData::RowsEvent(rows))) => {
                let Some(tme) = stream.get_tme(rows.table_id()) else { continue };
                let db = tme.database_name();
                let tbl = tme.table_name();
                let Some(idx) = cfg.watched.iter().position(|w| w.database == db && w.table == tbl) else {
                    continue;
                };
                let watched = &cfg.watched[idx];
                let kind = match type_raw {
                    23 | 30 => ChangeKind::Insert,
                    24 | 31 | 39 => ChangeKind::Update,
                    25 | 32 => ChangeKind::Delete,
                    other => bail!("unexpected rows event type {other}"),
                };
                for row in rows.rows(tme) {
                    let (before, after) = row.wrap_err_with(|| format!("decoding a row event of {db}.{tbl}"))?;
                    let before = before.map(|r| convert_row(r, watched)).transpose()?.map(|(row, _)| row);
                    let (after, after_sql) = match after.map(|r| convert_row(r, watched)).transpose()? {
                        Some((row, sql)) => (Some(row), sql),
                        None => (None, Vec::new()),
                    };
                    changes.push(RowChange { table: idx, kind, before, after, after_sql });
                }
            }
            _ => {}
        }
        if ends_txn {
            if let Some(g) = &txn_gtid {
                gtids.add(g);
            }
            position.gtid_set = gtids.to_string();
            position.file = file.clone();
            if log_pos > 0 {
                position.pos = log_pos;
            }
            in_txn = false;
            let gtid = txn_gtid.take();
            if changes.is_empty() && statement.is_none() {
                progress_pending = true;
                if last_progress.elapsed() > Duration::from_millis(200) {
                    if out.send(StreamItem::Progress(position.clone())).await.is_err() {
                        return Ok(StreamEnd::ReceiverGone);
                    }
                    progress_pending = false;
                    last_progress = Instant::now();
                }
            } else {
                let txn = Transaction {
                    gtid,
                    position: position.clone(),
                    changes: std::mem::take(&mut changes),
                    statement,
                };
                if out.send(StreamItem::Transaction(txn)).await.is_err() {
                    return Ok(StreamEnd::ReceiverGone);
                }
                progress_pending = false;
                last_progress = Instant::now();
            }
        }
    }
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

fn format_uuid(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
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
