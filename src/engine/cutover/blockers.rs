//! Who would block the cut-over's RENAME: sessions that have held a metadata lock on a table for a while (a
//! transaction left open after touching it, a long query). A cut-over attempt queues an exclusive metadata lock
//! that blocks every later reader and writer of the table until it is granted or times out, so revenant looks
//! first and waits instead of queueing, showing who blocks.
//!
//! MySQL: `performance_schema.metadata_locks` (on by default) names the holders exactly. MariaDB:
//! `information_schema.METADATA_LOCK_INFO` when the metadata_lock_info plugin is loaded; without it only the
//! transactions open longer than the threshold can be named, as sessions that may block (not waited for).

use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use crate::engine::shared::Shared;

/// What [`wait_until_clear`] looks at and how long it may wait.
pub struct BlockerWait<'a> {
    pub mariadb: bool,
    pub database: &'a str,
    pub tables: &'a [String],
    /// What waits, for the log and the status ("cut-over", "fence").
    pub what: &'a str,
    /// The wait's bound over all attempts; past it, the attempt goes ahead anyway.
    pub bound: Duration,
    pub cancel: &'a CancellationToken,
}

/// Waits while a session other than this connection holds a lock on one of the tables (never queueing a RENAME
/// behind it: that would block every writer), showing who in the status; returns how long it waited.
/// `waited_before` counts the earlier attempts' waits against the bound.
pub async fn wait_until_clear(conn: &mut mysql_async::Conn, w: &BlockerWait<'_>, shared: &Shared, waited_before: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut logged = false;
    let ours = [conn.id()];
    loop {
        let mut certain = Vec::new();
        let mut maybe = Vec::new();
        for table in w.tables {
            for b in find(conn, w.mariadb, w.database, table, 1, &ours).await? {
                if b.certain { certain.push(b.describe(table)) } else { maybe.push(b.describe(table)) }
            }
        }
        if certain.is_empty() {
            if !maybe.is_empty() {
                tracing::warn!("{}: long transactions that may block it: {}", w.what, maybe.join("; "));
            }
            return Ok(started.elapsed());
        }
        let why = format!("waiting for {}", certain.join("; "));
        shared.with(|i| {
            i.status.cutover.step = "waiting for blockers".into();
            i.status.cutover.blocked_reason = Some(why.clone());
        });
        if !logged {
            tracing::warn!("{} {why} (not queueing a RENAME behind it: that would block every writer)", w.what);
            logged = true;
        }
        if waited_before + started.elapsed() > w.bound || w.cancel.is_cancelled() {
            tracing::warn!("{}: still blocked after {:?}; attempting anyway", w.what, waited_before + started.elapsed());
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A session that holds (or may hold) a lock the RENAME needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocker {
    pub connection_id: u64,
    pub user: String,
    /// How long its transaction (or statement) has been open, in seconds.
    pub seconds: u64,
    /// What it runs now (`idle in transaction` when nothing).
    pub doing: String,
    /// Known to hold a lock on the table (false: only a long transaction, on MariaDB without the plugin).
    pub certain: bool,
}

impl Blocker {
    pub fn describe(&self, table: &str) -> String {
        format!(
            "connection {} ({}) {} {table} for {} s ({})",
            self.connection_id,
            self.user,
            if self.certain { "has held a lock on" } else { "has had a transaction open (it may lock)" },
            self.seconds,
            self.doing
        )
    }
}

/// Sessions other than `ours` that have held a lock on `db.table` (or, see the module doc, a transaction) for at
/// least `min_seconds`.
pub async fn find(conn: &mut mysql_async::Conn, mariadb: bool, db: &str, table: &str, min_seconds: u64, ours: &[u32]) -> Result<Vec<Blocker>> {
    let found = if !mariadb {
        mysql_holders(conn, db, table, min_seconds).await?
    } else if has_lock_info(conn).await? {
        mariadb_holders(conn, db, table, min_seconds).await?
    } else {
        long_transactions(conn, min_seconds).await?
    };
    Ok(found.into_iter().filter(|b| !ours.iter().any(|o| u64::from(*o) == b.connection_id)).collect())
}

type Row = (u64, Option<String>, Option<u64>, Option<String>);

fn blockers(rows: Vec<Row>, certain: bool) -> Vec<Blocker> {
    let mut out: Vec<Blocker> = Vec::new();
    for (id, user, seconds, info) in rows {
        if out.iter().any(|b| b.connection_id == id) {
            continue;
        }
        let doing = info.filter(|q| !q.trim().is_empty()).map(|q| q.chars().take(80).collect()).unwrap_or_else(|| "idle in transaction".into());
        out.push(Blocker { connection_id: id, user: user.unwrap_or_default(), seconds: seconds.unwrap_or(0), doing, certain });
    }
    out
}

async fn mysql_holders(conn: &mut mysql_async::Conn, db: &str, table: &str, min_seconds: u64) -> Result<Vec<Blocker>> {
    let sql = "SELECT t.PROCESSLIST_ID, CONCAT(t.PROCESSLIST_USER, '@', t.PROCESSLIST_HOST), \
         GREATEST(COALESCE(TIMESTAMPDIFF(SECOND, x.trx_started, NOW()), 0), COALESCE(t.PROCESSLIST_TIME, 0)), t.PROCESSLIST_INFO \
         FROM performance_schema.metadata_locks ml \
         JOIN performance_schema.threads t ON t.THREAD_ID = ml.OWNER_THREAD_ID \
         LEFT JOIN information_schema.INNODB_TRX x ON x.trx_mysql_thread_id = t.PROCESSLIST_ID \
         WHERE ml.OBJECT_TYPE = 'TABLE' AND ml.OBJECT_SCHEMA = ? AND ml.OBJECT_NAME = ? AND ml.LOCK_STATUS = 'GRANTED' \
         AND t.PROCESSLIST_ID IS NOT NULL AND t.PROCESSLIST_ID <> CONNECTION_ID()";
    lock_holders(conn, sql, db, table, min_seconds, "performance_schema.metadata_locks").await
}

/// Runs a query of lock holders (id, user, seconds, statement) on `db.table`; keeps those held `min_seconds`.
async fn lock_holders(conn: &mut mysql_async::Conn, sql: &str, db: &str, table: &str, min_seconds: u64, source: &str) -> Result<Vec<Blocker>> {
    let rows: Vec<Row> = conn.exec(sql, (db, table)).await.wrap_err_with(|| format!("reading {source}"))?;
    Ok(blockers(rows.into_iter().filter(|r| r.2.unwrap_or(0) >= min_seconds).collect(), true))
}

async fn has_lock_info(conn: &mut mysql_async::Conn) -> Result<bool> {
    let n: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'information_schema' AND TABLE_NAME = 'METADATA_LOCK_INFO'")
        .await
        .wrap_err("looking for METADATA_LOCK_INFO")?;
    Ok(n.unwrap_or(0) > 0)
}

async fn mariadb_holders(conn: &mut mysql_async::Conn, db: &str, table: &str, min_seconds: u64) -> Result<Vec<Blocker>> {
    let sql = "SELECT m.THREAD_ID, CONCAT(p.USER, '@', p.HOST), \
         GREATEST(COALESCE(TIMESTAMPDIFF(SECOND, x.trx_started, NOW()), 0), COALESCE(p.TIME, 0)), p.INFO \
         FROM information_schema.METADATA_LOCK_INFO m \
         JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID \
         LEFT JOIN information_schema.INNODB_TRX x ON x.trx_mysql_thread_id = m.THREAD_ID \
         WHERE m.TABLE_SCHEMA = ? AND m.TABLE_NAME = ? AND m.THREAD_ID <> CONNECTION_ID()";
    lock_holders(conn, sql, db, table, min_seconds, "information_schema.METADATA_LOCK_INFO").await
}

async fn long_transactions(conn: &mut mysql_async::Conn, min_seconds: u64) -> Result<Vec<Blocker>> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT x.trx_mysql_thread_id, CONCAT(p.USER, '@', p.HOST), TIMESTAMPDIFF(SECOND, x.trx_started, NOW()), p.INFO \
             FROM information_schema.INNODB_TRX x JOIN information_schema.PROCESSLIST p ON p.ID = x.trx_mysql_thread_id \
             WHERE x.trx_mysql_thread_id <> CONNECTION_ID() AND x.trx_started <= NOW() - INTERVAL ? SECOND",
            (min_seconds,),
        )
        .await
        .wrap_err("reading information_schema.INNODB_TRX")?;
    Ok(blockers(rows, false))
}
