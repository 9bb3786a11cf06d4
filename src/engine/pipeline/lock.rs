//! One run per table (or per set of moved tables): a named server lock (`GET_LOCK`) held for the whole run and
//! kept alive. The lock lives on a connection of its own; a keeper task checks every second that this connection
//! still holds it. When the connection is gone (a proxy's idle timeout, a `KILL`, a restart) the keeper takes the
//! lock again at once on a new connection; if another run took it meanwhile, this run stops resumably, so two runs
//! never write the same ghost table.

use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::pipeline::tasks::StopReason;
use crate::engine::plan::preflight::refuse;

/// How often the keeper checks the lock.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The held lock; released when dropped (the keeper's connection closes).
pub(crate) struct RunLock {
    keeper: JoinHandle<()>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Whom a lock refusal names, and what to do about it.
pub(crate) struct LockPurpose {
    pub(crate) name: String,
    /// "migration of shop.orders", "move of shop.[a,b]".
    pub(crate) what: String,
    /// Seconds to wait for the lock before refusing (see [`wait_for`]).
    pub(crate) wait: u64,
}

/// How long a run waits for its lock: not at all, except right after a failover was adopted, when the attempt
/// before may have released it on the same server (a move whose target moved) only a moment ago.
pub(crate) fn wait_for(shared: &crate::engine::shared::Shared) -> u64 {
    if shared.with(|i| i.status.failover.count) > 0 {
        10
    } else {
        0
    }
}

impl RunLock {
    /// Takes the lock (refusing when another run holds it) and starts its keeper. A lost lock records why in
    /// `stop` and cancels `cancel`.
    pub(crate) async fn acquire(opts: &mysql_async::Opts, purpose: LockPurpose, stop: StopReason, cancel: CancellationToken) -> Result<RunLock> {
        let conn = take(opts, &purpose.name, purpose.wait).await?.ok_or_else(|| {
            refuse(
                format!("another {} is running (lock {} is held)", purpose.what, purpose.name),
                "wait for it to finish, or attach to it with `revenant attach`",
            )
        })?;
        let keeper = tokio::spawn(keep(opts.clone(), purpose, conn, stop, cancel));
        Ok(RunLock { keeper })
    }
}

/// `GET_LOCK(name, wait)` on a new connection: the connection when it got the lock, None when another holds it.
async fn take(opts: &mysql_async::Opts, name: &str, wait: u64) -> Result<Option<mysql_async::Conn>> {
    let mut conn = crate::engine::connection::connect(opts.clone()).await.wrap_err("connecting for the single-run lock")?;
    let got: Option<i64> = conn.exec_first("SELECT GET_LOCK(?, ?)", (name, wait)).await.wrap_err("taking the single-run lock")?;
    Ok((got == Some(1)).then_some(conn))
}

/// Does `conn` still hold the lock? An error means the connection is gone (and with it the lock).
async fn still_held(conn: &mut mysql_async::Conn, name: &str) -> Result<bool> {
    let holder: Option<Option<u64>> = conn.exec_first("SELECT IS_USED_LOCK(?)", (name,)).await?;
    Ok(holder.flatten() == Some(u64::from(conn.id())))
}

async fn keep(opts: mysql_async::Opts, purpose: LockPurpose, mut conn: mysql_async::Conn, stop: StopReason, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        if matches!(still_held(&mut conn, &purpose.name).await, Ok(true)) {
            continue;
        }
        tracing::warn!("the single-run lock {} was lost (its connection ended); taking it again", purpose.name);
        match take(&opts, &purpose.name, 0).await {
            Ok(Some(c)) => {
                conn = c;
                tracing::info!("the single-run lock {} is held again", purpose.name);
            }
            Ok(None) => {
                tracing::error!("another {} took the lock {}: stopping this one (resumable)", purpose.what, purpose.name);
                stop.set(&format!("the single-run lock {} was taken by another run", purpose.name));
                cancel.cancel();
                return;
            }
            // The server is unreachable: try again at the next check (the run's own tasks retry or fail meanwhile).
            Err(e) => tracing::warn!("cannot take the single-run lock {} again yet: {e:#}", purpose.name),
        }
    }
}
