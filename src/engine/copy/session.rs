//! The copy's row-writer session: the applier's strict-mode session with short row-lock waits, for the copy's
//! chunks and the verification's repairs.

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::config::RowWrites;

/// The longest a chunk waits for a row lock (seconds) before it is rolled back and copied again.
const COPY_LOCK_WAIT_SECS: u32 = 2;

/// A row writer's session for the copy: the applier's (`writer_conn`), with lock waits of at most
/// [`COPY_LOCK_WAIT_SECS`]. A chunk's `INSERT ... SELECT` holds the ghost's AUTO-INC table lock to its end
/// (`innodb_autoinc_lock_mode=1`, MariaDB's default); when it waits for a row lock that an applier transaction
/// holds and that transaction then waits for the AUTO-INC lock, the server does not see the cycle: seen on MariaDB
/// 10.11 under scripts/bench's writer, both waited the whole `innodb_lock_wait_timeout` (50 s) and a 10 s
/// migration took 118 s. The chunk gives up early instead: its rollback frees the lock, the applier goes on, and
/// the chunk is copied again (a lock wait timeout is retried like a deadlock). The applier's own waits are not
/// shortened: it waits for a chunk's rows by design (its writes land on top of the copy).
pub(crate) async fn copier_conn(opts: &mysql_async::Opts, writes: RowWrites) -> Result<mysql_async::Conn> {
    let mut c = crate::engine::apply::applier::writer_conn(opts, writes).await?;
    c.query_drop(format!("SET SESSION innodb_lock_wait_timeout = {COPY_LOCK_WAIT_SECS}")).await.wrap_err("setting the copy's lock wait")?;
    Ok(c)
}
