//! gh-ost's `--test-on-replica` and `--migrate-on-replica`: the whole migration runs on the replica `--host`
//! names (its binary log, its tables; the primary is not touched). For a test, replication is stopped right
//! before the cut-over, once the replica has applied everything it had received, so the tables stop changing;
//! the cut-over swaps as usual and the clean-up swaps straight back (`RENAME TABLE t TO _t_gho, _t_del TO t`, one
//! atomic statement): the original serves again and the migrated copy stays as `_t_gho`, to be compared while
//! replication stays stopped. A test whose cut-over fails starts replication again, as gh-ost does.

use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::config::MigrationConfig;
use crate::engine::hooks::{Hook, Hooks};
use crate::engine::plan::schema;
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;
use crate::engine::stream::gtid::GtidSet;

/// How long the replica may take to apply what it had received once its I/O thread is stopped.
const DRAIN_WAIT: Duration = Duration::from_secs(300);

/// Where the replica's threads stand (SHOW REPLICA STATUS, both flavours' column names).
struct ReplicaThreads {
    io_running: bool,
    /// The transactions received and those applied (MySQL: Retrieved_Gtid_Set and Executed_Gtid_Set; MariaDB:
    /// Gtid_IO_Pos and @@gtid_slave_pos).
    received: String,
    applied: String,
    /// The SQL thread runs; else its last error.
    sql_running: bool,
    sql_error: String,
    sql_state: String,
}

impl ReplicaThreads {
    /// Everything received is applied.
    fn drained(&self, mariadb: bool) -> bool {
        match (GtidSet::parse(mariadb, &self.applied), GtidSet::parse(mariadb, &self.received)) {
            (Ok(applied), Ok(received)) => applied.contains(&received),
            _ => false,
        }
    }
}

async fn threads(conn: &mut mysql_async::Conn, mariadb: bool) -> Result<ReplicaThreads> {
    let q = if mariadb { "SHOW SLAVE STATUS" } else { "SHOW REPLICA STATUS" };
    let rows: Vec<mysql_async::Row> = conn.query(q).await.wrap_err(q)?;
    let Some(row) = rows.first() else { bail!("the server does not replicate from anyone any more ({q} is empty)") };
    let text = |name: &str| row.get_opt::<String, _>(name).and_then(|r| r.ok()).unwrap_or_default().replace('\n', "");
    let io_running = text(if mariadb { "Slave_IO_Running" } else { "Replica_IO_Running" }).eq_ignore_ascii_case("yes");
    let (received, applied) = match mariadb {
        true => (text("Gtid_IO_Pos"), conn.query_first::<String, _>("SELECT @@gtid_slave_pos").await?.unwrap_or_default()),
        false => (text("Retrieved_Gtid_Set"), text("Executed_Gtid_Set")),
    };
    let sql_running = text(if mariadb { "Slave_SQL_Running" } else { "Replica_SQL_Running" }).eq_ignore_ascii_case("yes");
    let sql_state = text(if mariadb { "Slave_SQL_Running_State" } else { "Replica_SQL_Running_State" });
    Ok(ReplicaThreads { io_running, received, applied, sql_running, sql_error: text("Last_SQL_Error"), sql_state })
}

/// Before a test's cut-over: the on-stop-replication hook, then (unless skipped) the I/O thread stopped, the
/// received transactions applied, the SQL thread stopped.
pub async fn stop_replication(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, mariadb: bool, stop: bool, hooks: &Hooks, shared: &Shared) -> Result<()> {
    hooks.fire(Hook::OnStopReplication, &[], &shared.snapshot(0)).await?;
    if !stop {
        tracing::warn!("--test-on-replica-skip-replica-stop: replication on {} keeps running; the tables compared afterwards may differ by what it applies", cfg.source.display());
        return Ok(());
    }
    shared.with(|i| i.status.cutover.step = "stopping replication".into());
    conn.query_drop("STOP REPLICA IO_THREAD").await.wrap_err("stopping the replica's I/O thread (--test-on-replica)")?;
    let deadline = Instant::now() + DRAIN_WAIT;
    loop {
        let t = threads(conn, mariadb).await?;
        if !t.io_running && t.drained(mariadb) {
            break;
        }
        if Instant::now() > deadline || !t.sql_running {
            let _ = conn.query_drop("START REPLICA IO_THREAD").await;
            let why = match t.sql_running {
                true => format!("within {DRAIN_WAIT:?} (its SQL thread: {})", t.sql_state),
                false => format!("(its SQL thread stopped: {})", t.sql_error),
            };
            bail!(
                "the replica did not apply what it had received {why}; received {}, applied {}; the I/O thread was started \
                 again and nothing was swapped",
                t.received,
                t.applied
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.query_drop("STOP REPLICA SQL_THREAD").await.wrap_err("stopping the replica's SQL thread (--test-on-replica)")?;
    tracing::info!("replication on {} is stopped for the test's cut-over", cfg.source.display());
    Ok(())
}

/// After a test's cut-over failed: replication runs again (the on-start-replication hook first).
pub async fn start_replication(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, hooks: &Hooks, shared: &Shared) {
    hooks.fire_logged(Hook::OnStartReplication, &[], &shared.snapshot(0)).await;
    match conn.query_drop("START REPLICA").await {
        Ok(()) => tracing::info!("the test's cut-over failed: replication on {} was started again", cfg.source.display()),
        Err(e) => tracing::error!("the test's cut-over failed and START REPLICA on {} failed too: {e}; start it by hand", cfg.source.display()),
    }
}

/// A test's swap back after its cut-over: the original under its name again, the migrated copy as the ghost.
/// Nothing to do when it is done already (a resumed clean-up).
pub async fn swap_back(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<()> {
    let db = &cfg.database;
    let old_is_there = schema::read_table(conn, db, &cfg.old_table()).await?.is_some();
    let ghost_is_there = schema::read_table(conn, db, &cfg.ghost_table()).await?.is_some();
    if !old_is_there && ghost_is_there {
        return Ok(());
    }
    let (orig, old, ghost) = (qualified(db, &cfg.table), qualified(db, &cfg.old_table()), qualified(db, &cfg.ghost_table()));
    conn.query_drop(format!("RENAME TABLE {orig} TO {ghost}, {old} TO {orig}"))
        .await
        .wrap_err_with(|| format!("swapping back after the test's cut-over (the migrated table is {orig}, the original {old}: RENAME TABLE {orig} TO {ghost}, {old} TO {orig} by hand)"))?;
    tracing::info!("tested on the replica: {orig} is the original again, {ghost} the migrated copy");
    Ok(())
}
