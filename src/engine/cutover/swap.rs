//! The cut-over: swap the ghost table in for the original.
//!
//! Atomic (default): a sentry table takes the old table's name; connection A locks the original and the sentry;
//! connection B queues `RENAME original TO old, ghost TO original` (blocked by the lock, ahead of the writers);
//! a marker written to the changelog is awaited through the applier, so every write made before the lock is in the
//! ghost; A drops the sentry and unlocks, and the rename happens before any blocked write. If A fails or dies, the
//! lock is released while the sentry still exists, so B's rename fails and the original table keeps serving.
//! Two-step: rename the original away, await a marker, rename the ghost in (a short moment with no table).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use color_eyre::eyre::{bail, eyre, Result, WrapErr};
use mysql_async::prelude::Queryable;
use tokio::sync::watch;

use crate::engine::apply::applier::Applied;
use crate::engine::config::MigrationConfig;
use crate::engine::cutover::definition;
use crate::engine::cutover::triggers::{self, TriggerDef, TriggerNaming};
use crate::engine::failpoint;
use crate::engine::sql::qualified;

pub const SENTRY_COMMENT: &str = "revenant cut-over sentry";

/// The outcome of one successful swap.
#[derive(Debug, Clone)]
pub struct SwapReport {
    /// How long writers to the table were blocked, in milliseconds.
    pub stall_ms: u64,
}

/// Writes a cut-over marker to the changelog and returns its token.
pub async fn write_marker(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<String> {
    let token = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    conn.exec_drop(
        format!(
            "INSERT INTO {} (hint, value) VALUES ('cut-over-marker', ?) ON DUPLICATE KEY UPDATE value = VALUES(value)",
            qualified(&cfg.database, &cfg.changelog_table())
        ),
        (token.clone(),),
    )
    .await
    .wrap_err("writing the cut-over marker")?;
    Ok(token)
}

/// Waits until the applier has committed the marker `token`.
pub async fn await_marker(applied: &mut watch::Receiver<Applied>, token: &str, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if applied.borrow().marker.as_deref() == Some(token) {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => bail!("the applier stopped before the cut-over marker was applied"),
            Err(_) => bail!("the applier did not reach the cut-over marker within {timeout:?}"),
        }
    }
}

/// Waits, before any lock is taken, until the applier has applied a marker written now: the backlog left to apply
/// while writers are blocked is then only what arrives between this marker and the lock, which keeps the stall short.
async fn catch_up(cfg: &MigrationConfig, marker_conn: &mut mysql_async::Conn, applied: &mut watch::Receiver<Applied>) -> Result<()> {
    let token = write_marker(marker_conn, cfg).await?;
    await_marker(applied, &token, Duration::from_secs(60))
        .await
        .wrap_err("catching up before the cut-over lock (nothing was locked)")
}

/// Is `name` our sentry (and not a real table)?
pub async fn is_sentry(conn: &mut mysql_async::Conn, db: &str, name: &str) -> Result<bool> {
    let comment: Option<String> = conn
        .exec_first(
            "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME=?",
            (db, name),
        )
        .await?;
    Ok(comment.as_deref() == Some(SENTRY_COMMENT))
}

async fn drop_sentry_if_ours(opts: &mysql_async::Opts, cfg: &MigrationConfig) {
    if let Ok(mut c) = crate::engine::connection::connect(opts.clone()).await {
        if let Ok(true) = is_sentry(&mut c, &cfg.database, &cfg.old_table()).await {
            let _ = c.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&cfg.database, &cfg.old_table()))).await;
        }
        let _ = c.disconnect().await;
    }
}

/// Kills B's RENAME while it is still queued and waits until connection `b_id` runs no RENAME any more.
async fn stop_queued_rename(opts: &mysql_async::Opts, b_id: u32) -> Result<()> {
    let mut c = crate::engine::connection::connect(opts.clone()).await.wrap_err("connecting to stop the queued RENAME")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: Option<Option<String>> =
            c.exec_first("SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = ?", (b_id,)).await.wrap_err("looking for the queued RENAME")?;
        let renaming = info.flatten().is_some_and(|q| q.trim_start().to_ascii_uppercase().starts_with("RENAME"));
        if !renaming {
            let _ = c.disconnect().await;
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the cut-over's RENAME (connection {b_id}) is still queued after 10 s");
        }
        let _ = c.query_drop(format!("KILL QUERY {b_id}")).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After the sentry is dropped and before the unlock: waits until the queued RENAME asks for the original's
/// exclusive lock. The RENAME takes its locks in name order (`_t_del`, `_t_gho`, then `t`): while it waited on
/// the sentry it had not asked for `t` yet, and if the unlock came before it did, a writer waiting on `t` would
/// get it first and write into the table that is about to become `_t_del`, after the marker (seen on MySQL under
/// a writer: one insert in the old table only). Once the RENAME's request on `t` is pending, it is served before
/// any writer's. Read from performance_schema.metadata_locks where its instrument shows our own lock on `t`;
/// elsewhere (MariaDB without it) a pause of [`RENAME_SETTLE`] gives the RENAME its turn. A RENAME that never asks
/// within [`RENAME_ASK_WAIT`] fails the attempt (the caller stops it while `t` is still locked: nothing swaps).
async fn rename_waits_on_original(watcher: &mut mysql_async::Conn, cfg: &MigrationConfig, b_id: u32) -> Result<()> {
    let locks_on_t = |status: &str| {
        format!(
            "SELECT COUNT(*) FROM performance_schema.metadata_locks m JOIN performance_schema.threads th ON th.THREAD_ID = \
             m.OWNER_THREAD_ID WHERE m.OBJECT_TYPE = 'TABLE' AND m.OBJECT_SCHEMA = ? AND m.OBJECT_NAME = ? AND \
             m.LOCK_STATUS = '{status}' AND (th.PROCESSLIST_ID = ? OR '{status}' = 'GRANTED')"
        )
    };
    let params = (cfg.database.as_str(), cfg.table.as_str(), b_id);
    let instrumented = matches!(watcher.exec_first::<u64, _, _>(locks_on_t("GRANTED"), params).await, Ok(Some(n)) if n > 0);
    if !instrumented {
        tokio::time::sleep(RENAME_SETTLE).await;
        return Ok(());
    }
    let (started, deadline) = (Instant::now(), Instant::now() + RENAME_ASK_WAIT);
    for polls in 1u32.. {
        let pending: Option<u64> = watcher.exec_first(locks_on_t("PENDING"), params).await.wrap_err("reading the RENAME's metadata locks")?;
        if pending.unwrap_or(0) > 0 {
            tracing::debug!("the RENAME asks for the lock on {} ({polls} looks, {:?})", cfg.table, started.elapsed());
            failpoint::trace(&format!("rename-pending-after {polls}"));
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the RENAME did not ask for the lock on {} within {RENAME_ASK_WAIT:?} after the sentry was dropped", cfg.table);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Without a metadata-lock instrument: how long the RENAME is given to ask for the original's lock.
const RENAME_SETTLE: Duration = Duration::from_millis(20);
/// With one: how long it may take before the attempt is given up.
const RENAME_ASK_WAIT: Duration = Duration::from_secs(2);

/// The original, old and ghost tables, qualified.
fn swap_names(cfg: &MigrationConfig) -> (String, String, String) {
    (qualified(&cfg.database, &cfg.table), qualified(&cfg.database, &cfg.old_table()), qualified(&cfg.database, &cfg.ghost_table()))
}

/// Every RENAME a swap of `orig` with `old` and `ghost` (qualified names) sends, in the text the binary log then
/// holds: the atomic swap; the two-step cut-over's rename away, its roll-back and the ghost's rename in.
pub struct Renames {
    pub atomic: String,
    pub away: String,
    pub back: String,
    pub ghost_in: String,
}

pub fn renames(orig: &str, old: &str, ghost: &str) -> Renames {
    Renames {
        atomic: format!("RENAME TABLE {orig} TO {old}, {ghost} TO {orig}"),
        away: format!("RENAME TABLE {orig} TO {old}"),
        back: format!("RENAME TABLE {old} TO {orig}"),
        ghost_in: format!("RENAME TABLE {ghost} TO {orig}"),
    }
}

/// The two renames of a two-step cut-over and its roll-back (`RENAME original TO old`, `RENAME old TO original`),
/// exactly as this module sends them. The binary log holds them with this text; a resumed run that reads them
/// again from its stream knows them as its own (the step machine resumed a run whose original table exists, so
/// a rename away was followed by the rename back) rather than as a change to the original.
pub fn own_renames(cfg: &MigrationConfig) -> [String; 2] {
    let (orig, old, ghost) = swap_names(cfg);
    let r = renames(&orig, &old, &ghost);
    [r.away, r.back]
}

/// What a swap checks and carries over besides the tables: the original's definition as preflight read it, and
/// the triggers to create on the ghost (`--include-triggers`).
pub struct SwapPlan<'a> {
    pub definition: &'a str,
    pub triggers: &'a [TriggerDef],
    pub naming: Option<&'a TriggerNaming>,
    /// The applier's pause switch: held while the ghost has triggers and is not yet the table (see [`with_triggers`]).
    pub applier_paused: &'a std::sync::atomic::AtomicBool,
}

/// The ghost gets the original's triggers (when asked) once everything before the lock is applied; the applier is
/// paused from then on, so that a failed attempt can take them off again before it writes to the ghost (the
/// copy's and the applier's rows must never fire them). Returns whether triggers were created.
async fn with_triggers(opts: &mysql_async::Opts, cfg: &MigrationConfig, plan: &SwapPlan<'_>, marker_conn: &mut mysql_async::Conn, applied: &mut watch::Receiver<Applied>, wait: Duration) -> Result<bool> {
    let Some(naming) = plan.naming.filter(|_| !plan.triggers.is_empty()) else { return Ok(false) };
    let token = write_marker(marker_conn, cfg).await?;
    await_marker(applied, &token, wait).await?;
    plan.applier_paused.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut t = crate::engine::connection::connect(opts.clone()).await.wrap_err("connecting to create the ghost's triggers")?;
    triggers::create_on(&mut t, &cfg.database, &cfg.ghost_table(), plan.triggers, naming).await?;
    let _ = t.disconnect().await;
    failpoint::hit("cutover-after-triggers")?;
    Ok(true)
}

/// After a failed attempt that created triggers: off the ghost again, then the applier goes on.
async fn undo_triggers(opts: &mysql_async::Opts, cfg: &MigrationConfig, plan: &SwapPlan<'_>) {
    let Some(naming) = plan.naming.filter(|_| !plan.triggers.is_empty()) else { return };
    let dropped = match crate::engine::connection::connect(opts.clone()).await {
        Ok(mut c) => triggers::drop_from(&mut c, &cfg.database, &cfg.ghost_table(), plan.triggers, naming).await,
        Err(e) => Err(e.into()),
    };
    match dropped {
        Ok(()) => plan.applier_paused.store(false, std::sync::atomic::Ordering::Relaxed),
        // The applier stays paused: writing to a ghost with triggers would fire them; --resume drops them.
        Err(e) => tracing::error!("dropping the triggers from {} failed: {e:#}; the applier stays paused (stop and --resume)", cfg.ghost_table()),
    }
}

/// One atomic attempt. On error, the original table is still in place and serving.
pub async fn atomic_attempt(
    opts: &mysql_async::Opts,
    cfg: &MigrationConfig,
    plan: &SwapPlan<'_>,
    marker_conn: &mut mysql_async::Conn,
    applied: &mut watch::Receiver<Applied>,
) -> Result<SwapReport> {
    let (orig, old, ghost) = swap_names(cfg);
    let lock_secs = cfg.run.cut_over_lock_timeout.as_secs().max(1);
    let mut a = crate::engine::connection::connect(opts.clone()).await.wrap_err("connecting the cut-over lock holder")?;
    let mut b = crate::engine::connection::connect(opts.clone()).await.wrap_err("connecting the cut-over renamer")?;
    a.query_drop(format!("SET SESSION lock_wait_timeout = {lock_secs}")).await?;
    b.query_drop(format!("SET SESSION lock_wait_timeout = {}", lock_secs * 2)).await?;
    let b_id = b.id();
    catch_up(cfg, marker_conn, applied).await?;
    a.query_drop(format!(
        "CREATE TABLE {old} (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB COMMENT='{SENTRY_COMMENT}'"
    ))
    .await
    .wrap_err("creating the sentry table")?;
    failpoint::hit("cutover-after-sentry")?;
    let result = async {
        a.query_drop(format!("LOCK TABLES {orig} WRITE, {old} WRITE"))
            .await
            .wrap_err("locking the original table (lock wait timeout: the table is busy)")?;
        let locked_at = Instant::now();
        failpoint::hit("cutover-after-lock")?;
        // Under the lock no DDL reaches the original before the rename: this check is exact.
        definition::check_unchanged(&mut a, &orig, plan.definition).await?;
        let triggered = with_triggers(opts, cfg, plan, marker_conn, applied, Duration::from_secs(lock_secs * 2)).await?;
        let rename = renames(&orig, &old, &ghost).atomic;
        let renamer = tokio::spawn(async move {
            let r = b.query_drop(rename).await;
            (b, r)
        });
        // Wait until the RENAME is queued behind our lock.
        let watcher = marker_conn;
        let deadline = Instant::now() + Duration::from_secs(lock_secs * 2);
        loop {
            let state: Option<Option<String>> = watcher
                .exec_first("SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ?", (b_id,))
                .await?;
            let state = state.flatten().unwrap_or_default().to_ascii_lowercase();
            if state.contains("metadata lock") || state.contains("table lock") {
                break;
            }
            if renamer.is_finished() || Instant::now() > deadline {
                bail!("the RENAME did not queue behind the lock (state: '{state}')");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        failpoint::hit("cutover-after-rename-queued")?;
        if !triggered {
            // (With triggers, everything before the lock was applied before they were created.)
            let token = write_marker(watcher, cfg).await?;
            await_marker(applied, &token, Duration::from_secs(lock_secs * 2)).await?;
        }
        failpoint::hit("cutover-before-unlock")?;
        a.query_drop(format!("DROP TABLE {old}")).await.wrap_err("dropping the sentry")?;
        if let Err(e) = rename_waits_on_original(watcher, cfg, b_id).await {
            // The sentry is gone: the RENAME must go before the lock does (it cannot run while `t` is locked).
            stop_queued_rename(opts, b_id).await?;
            return Err(e);
        }
        a.query_drop("UNLOCK TABLES").await.wrap_err("unlocking")?;
        let (b, r) = renamer.await.map_err(|e| eyre!("renamer task: {e}"))?;
        let stall_ms = locked_at.elapsed().as_millis() as u64;
        r.wrap_err("the RENAME failed after the unlock")?;
        let _ = b.disconnect().await;
        Ok::<_, color_eyre::Report>(SwapReport { stall_ms })
    }
    .await;
    match result {
        Ok(r) => {
            let _ = a.disconnect().await;
            Ok(r)
        }
        Err(e) => {
            // Dropping A releases the lock; the sentry makes the queued RENAME fail. The sentry goes only once B's
            // RENAME is no longer queued (a late RENAME would swap without the marker).
            drop(a);
            match stop_queued_rename(opts, b_id).await {
                Ok(()) => {
                    drop_sentry_if_ours(opts, cfg).await;
                    undo_triggers(opts, cfg, plan).await;
                }
                Err(why) => tracing::error!("{why:#}; the sentry {} stays (drop it once no RENAME is queued)", cfg.old_table()),
            }
            Err(e)
        }
    }
}

/// A two-step cut-over that stopped between its renames: the original is `_<t>_del`, the ghost still `_<t>_gho`,
/// and no table has the original's name. Never retried as if the original were serving; `--resume` finishes it.
#[derive(Debug)]
pub struct HalfSwapped {
    pub old: String,
    pub ghost: String,
}

impl std::fmt::Display for HalfSwapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the original table is now {} and the ghost is still {}: no table has the original's name", self.old, self.ghost)
    }
}

impl std::error::Error for HalfSwapped {}

/// Two-step: rename the original away, drain to a marker, rename the ghost in. A failure before the first rename,
/// or one after it that could put the original back, leaves the original serving; otherwise the error carries
/// [`HalfSwapped`].
pub async fn two_step(
    opts: &mysql_async::Opts,
    cfg: &MigrationConfig,
    plan: &SwapPlan<'_>,
    marker_conn: &mut mysql_async::Conn,
    applied: &mut watch::Receiver<Applied>,
) -> Result<SwapReport> {
    let (orig, old, ghost) = swap_names(cfg);
    let [away, back] = own_renames(cfg);
    let mut a = crate::engine::connection::connect(opts.clone()).await?;
    a.query_drop(format!("SET SESSION lock_wait_timeout = {}", cfg.run.cut_over_lock_timeout.as_secs().max(1))).await?;
    catch_up(cfg, marker_conn, applied).await?;
    // Without a lock, a DDL could still come between this check and the rename (the atomic cut-over has none).
    definition::check_unchanged(&mut a, &orig, plan.definition).await?;
    a.query_drop(away).await.wrap_err("renaming the original away")?;
    let started = Instant::now();
    let second = async {
        failpoint::hit("cutover-two-step-after-first-rename")?;
        let token = write_marker(marker_conn, cfg).await?;
        await_marker(applied, &token, Duration::from_secs(30)).await?;
        with_triggers(opts, cfg, plan, marker_conn, applied, Duration::from_secs(30)).await?;
        failpoint::hit("cutover-two-step-second-rename")?;
        a.query_drop(renames(&orig, &old, &ghost).ghost_in).await.wrap_err("renaming the ghost in")
    }
    .await;
    if let Err(e) = second {
        // Put the original back; only if that fails too is the table missing (and --resume finishes the swap).
        return match a.query_drop(back).await {
            Ok(()) => {
                undo_triggers(opts, cfg, plan).await;
                failpoint::hit("cutover-two-step-after-rollback")?;
                Err(e.wrap_err("the two-step cut-over did not complete; the original table was renamed back and serves"))
            }
            Err(why) => Err(eyre!(HalfSwapped { old: old.clone(), ghost: ghost.clone() })
                .wrap_err(format!("renaming the ghost in failed ({e:#}), and so did renaming the original back ({why})"))),
        };
    }
    Ok(SwapReport { stall_ms: started.elapsed().as_millis() as u64 })
}

/// Finishes a two-step cut-over interrupted between its renames: the ghost takes the original's name.
pub async fn finish_two_step(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<()> {
    let (orig, old, ghost) = swap_names(cfg);
    conn.query_drop(renames(&orig, &old, &ghost).ghost_in).await.wrap_err_with(|| format!("renaming {ghost} to {orig}"))
}

/// Is this error a two-step cut-over stopped between its renames?
pub fn is_half_swapped(e: &color_eyre::Report) -> bool {
    e.chain().any(|c| c.downcast_ref::<HalfSwapped>().is_some())
}
