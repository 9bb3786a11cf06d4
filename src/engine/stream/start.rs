//! Where a new run starts reading the binary log, made to agree with the copy range read right after it.
//!
//! The position (`@@gtid_binlog_pos` on MariaDB, `@@gtid_executed` on MySQL) moves when a transaction is written
//! to the binary log, which happens before the storage engine commits it. Read alone, the position can cover a
//! transaction T whose rows a read view taken a moment later does not see yet: T is never streamed (the stream
//! starts after it) and never copied (the copy's read view missed it). A row T inserted above the copy range's end
//! is lost; rows T changed in the first chunk are copied stale.
//!
//! Why the fence below makes the two agree exactly: after reading the position P we commit a write W of our own
//! (autocommit, on the changelog table) and only then read the copy range. W is written to the binary log after
//! every transaction in P. Both servers make commits visible in the engine in binary-log order (MariaDB's group
//! commit runs `commit_ordered` in binlog order; MySQL commits in order with `binlog_order_commits`, on by
//! default), and W's commit returns to us only once W is visible, so every transaction of P is visible by then.
//! The range is read by a new statement after that, so its read view holds all of P. A transaction after P is
//! streamed (it may also be copied: INSERT IGNORE and the applier's REPLACE/DELETE converge either way).

//!
//! A prepared XA transaction is the same hazard, held open for as long as its owner likes: `XA PREPARE` writes its
//! rows to the binary log (inside the position), while they stay invisible until `XA COMMIT`. So a new run does
//! not start while `XA RECOVER` lists a prepared transaction: it waits for them to be resolved (up to
//! [`XA_WAIT`]), then refuses, naming them.

use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::plan::preflight::refuse;

use crate::engine::sql::qualified;
use crate::engine::stream::binlog::{current_position, BinlogPosition};

/// The start position of a new run, with every transaction it covers committed and visible when it returns.
/// `changelog` is the run's heartbeat table (database, table) on the same server.
///
/// `binlog`: the server whose binary log is streamed when it is not `conn`'s (a replica in replica mode). Its
/// position is read first, once it holds everything `conn` (the primary) executed, the run's own setup included
/// (else the stream would meet the ghost's CREATE after its start); every transaction in it was committed on
/// `conn` before it reached the replica, so the fence below, committed on `conn` after that read, orders them
/// before the copy's read view there.
pub async fn start_position(conn: &mut mysql_async::Conn, mut binlog: Option<&mut mysql_async::Conn>, mariadb: bool, changelog: (&str, &str)) -> Result<BinlogPosition> {
    let deadline = Instant::now() + XA_WAIT;
    let position = loop {
        let position = match binlog.as_deref_mut() {
            Some(b) => {
                let primary = current_position(conn, mariadb).await?;
                wait_replicated(b, mariadb, &primary.gtid_set).await?;
                current_position(b, mariadb).await?
            }
            None => current_position(conn, mariadb).await?,
        };
        let prepared = prepared_xa(conn).await?;
        if prepared.is_empty() {
            break position;
        }
        if Instant::now() > deadline {
            return Err(refuse(
                format!("prepared XA transactions are pending on the server ({}): their rows are in the binary log but not yet visible", prepared.join(", ")),
                "commit or roll them back (XA COMMIT / XA ROLLBACK), then start the migration again; nothing was copied",
            ));
        }
        tracing::warn!("waiting for prepared XA transactions to be resolved before the copy starts: {}", prepared.join(", "));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    conn.exec_drop(
        format!(
            "INSERT INTO {} (hint, value) VALUES ('start-fence', ?) ON DUPLICATE KEY UPDATE value = VALUES(value)",
            qualified(changelog.0, changelog.1)
        ),
        (format!("{}:{}", position.file, position.pos),),
    )
    .await
    .wrap_err("committing the start fence (a write that makes the start position and the copy range agree)")?;
    Ok(position)
}

/// How long the replica of replica mode may take to execute what the primary executed before the copy starts.
const REPLICA_WAIT: Duration = Duration::from_secs(600);

/// Waits until the replica executed `gtid_set` (the primary's, read just before), up to [`REPLICA_WAIT`].
async fn wait_replicated(replica: &mut mysql_async::Conn, mariadb: bool, gtid_set: &str) -> Result<()> {
    if gtid_set.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    loop {
        let waited: Option<i64> = match mariadb {
            true => replica.exec_first("SELECT MASTER_GTID_WAIT(?, 1)", (gtid_set,)).await,
            false => replica.exec_first("SELECT WAIT_FOR_EXECUTED_GTID_SET(?, 1)", (gtid_set,)).await,
        }
        .wrap_err("waiting for the replica to execute the primary's transactions")?;
        if waited == Some(0) {
            return Ok(());
        }
        if started.elapsed() > REPLICA_WAIT {
            return Err(refuse(
                format!("the replica has not executed the primary's transactions {gtid_set} after {} s", REPLICA_WAIT.as_secs()),
                "check that the replica replicates (SHOW REPLICA STATUS) and is not far behind, then resume with --resume",
            ));
        }
        tracing::info!("waiting for the replica to catch up with the primary before the copy starts ({} s)", started.elapsed().as_secs());
    }
}

/// Waits (up to [`XA_WAIT`]) until no prepared XA transaction is pending, then returns; refuses naming them
/// otherwise. A new run calls it before its setup, so a refusal leaves nothing behind.
pub async fn no_prepared_xa(conn: &mut mysql_async::Conn) -> Result<()> {
    let deadline = Instant::now() + XA_WAIT;
    loop {
        let prepared = prepared_xa(conn).await?;
        if prepared.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(refuse(
                format!("prepared XA transactions are pending on the server ({}): their rows are in the binary log but not yet visible", prepared.join(", ")),
                "commit or roll them back (XA COMMIT / XA ROLLBACK), then start again; nothing was changed",
            ));
        }
        tracing::warn!("waiting for prepared XA transactions to be resolved before the setup: {}", prepared.join(", "));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long a new run waits for prepared XA transactions before it refuses.
pub const XA_WAIT: Duration = Duration::from_secs(60);

/// The prepared XA transactions `XA RECOVER` lists (their xids as text). A user who may not run it (MySQL's
/// XA_RECOVER_ADMIN) is warned once per call and treated as seeing none.
async fn prepared_xa(conn: &mut mysql_async::Conn) -> Result<Vec<String>> {
    let rows: Vec<mysql_async::Row> = match conn.query("XA RECOVER").await {
        Ok(rows) => rows,
        Err(mysql_async::Error::Server(e)) => {
            tracing::warn!("cannot list prepared XA transactions ({}): a pending one could be missed by the copy", e.message);
            return Ok(Vec::new());
        }
        Err(e) => return Err(e).wrap_err("XA RECOVER"),
    };
    Ok(rows
        .iter()
        .map(|r| r.get::<Option<Vec<u8>>, _>(3).flatten().map(|d| String::from_utf8_lossy(&d).into_owned()).unwrap_or_else(|| "?".into()))
        .collect())
}
