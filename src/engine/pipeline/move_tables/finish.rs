//! move-tables' cut-over: the fence (the source tables renamed to `_<t>_del` in one statement, the drain GTID
//! read on the same connection), the recorded drain GTID, the announcement (success hook, then `done`), and
//! `--rollback`, which gives fenced tables back.

use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use crate::engine::checkpoint;
use crate::engine::cutover::blockers;
use crate::engine::failpoint;
use crate::engine::hooks::{Hook, Hooks};
use crate::engine::plan::preflight::refuse;
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;

use super::preflight::{gtid_executed, source_state};
use super::setup::{drop_changelog, set_summary};
use super::{run_hook, MoveOutcome, MoveTablesConfig, SourceState, CHECKPOINT_TABLE};

/// An error after the fence: the exact statement that gives the tables back to the source.
pub(super) fn after_fence(e: color_eyre::Report, cfg: &MoveTablesConfig) -> color_eyre::Report {
    let resume = cfg.run.resume_command.clone().unwrap_or_else(|| "the same command with --resume".into());
    e.suggestion(format!(
        "the source tables are fenced (renamed); {resume} finishes the drain; to give the tables back to the source \
         instead, run `revenant move-tables ... --rollback` or: {};",
        cfg.rollback_statement()
    ))
}

/// T5: the success hook, then `done` in the checkpoint. A crash between the two runs the hook again on resume.
pub(super) async fn announce(cfg: &MoveTablesConfig, hooks: &Hooks, tgt: &mut mysql_async::Conn, shared: &Arc<Shared>, drain: &str) -> Result<MoveOutcome> {
    shared.with(|i| {
        i.status.cutover.drain_gtid = Some(drain.to_string());
        i.status.cutover.step = "success-hook".into();
    });
    run_hook(cfg, hooks, Hook::OnSuccess, shared, Some(drain)).await.wrap_err("the success hook failed (the target is complete)")?;
    failpoint::hit("move-after-hook")?;
    set_summary(tgt, cfg, "phase = 'done'").await?;
    shared.with(|i| i.status.cutover.step = "done".into());
    tracing::info!("move complete: the target holds everything up to {drain}");
    Ok(MoveOutcome::Done { drain_gtid: drain.to_string() })
}

pub(super) async fn persist_drain(tgt: &mut mysql_async::Conn, cfg: &MoveTablesConfig, drain: &str) -> Result<()> {
    tgt.exec_drop(
        format!(
            "UPDATE {} SET cutover_started = COALESCE(cutover_started, CURRENT_TIMESTAMP(6)), drain_gtid = ?, phase = 'drain' WHERE id = ?",
            qualified(&cfg.target_database, CHECKPOINT_TABLE)
        ),
        (drain, checkpoint::SUMMARY),
    )
    .await
    .wrap_err("recording the drain GTID on the target")
}

/// T1 and T2: renames every source table to `_<t>_del` in one statement, then reads the executed GTID set on the
/// same connection. Every write to the tables committed before the rename (it waits for them), so the set covers
/// them all. A lock wait timeout leaves everything as it was and is retried.
pub(super) async fn fence(cfg: &MoveTablesConfig, opts: &mysql_async::Opts, mariadb: bool, shared: &Shared, cancel: &CancellationToken) -> Result<String> {
    let mut conn = crate::engine::connection::connect(opts.clone()).await.wrap_err("connecting to fence the source")?;
    conn.query_drop(format!("SET SESSION lock_wait_timeout = {}", cfg.run.cut_over_lock_timeout.as_secs().max(1))).await?;
    let stmt = cfg.fence_statement();
    let wait = blockers::BlockerWait {
        mariadb,
        database: &cfg.database,
        tables: &cfg.tables,
        what: "fence",
        bound: cfg.run.cut_over_lock_timeout * cfg.run.default_retries.max(1),
        cancel,
    };
    let mut waited = Duration::ZERO;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // As migrate's cut-over: a session holding a source table's lock is waited for, not queued behind.
        waited += blockers::wait_until_clear(&mut conn, &wait, shared, waited).await?;
        shared.with(|i| {
            i.status.cutover.attempts = attempt;
            i.status.cutover.step = "fence".into();
            i.status.cutover.blocked_reason = None;
        });
        match conn.query_drop(&stmt).await {
            Ok(()) => break,
            Err(mysql_async::Error::Server(e)) if e.code == 1205 && attempt < cfg.run.default_retries.max(1) => {
                tracing::warn!("fence attempt {attempt}: {}; the source tables keep serving; retrying", e.message);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(eyre!(e).wrap_err(format!("fencing the source tables ({stmt}); they keep serving"))),
        }
    }
    gtid_executed(&mut conn, mariadb).await
}

/// `--rollback`: gives the fenced tables back to the source (renames `_<t>_del` to `t`) and marks the target's
/// checkpoint rolled back, so a later `--resume` refuses; drops the heartbeat table when it is ours. Refuses unless
/// every table is fenced. Without `execute`
/// only checks and returns the statement it would run.
pub async fn rollback(cfg: &MoveTablesConfig) -> Result<String> {
    let mut src = crate::engine::connection::connect(cfg.source.opts()).await.wrap_err("connecting to the source")?;
    if source_state(&mut src, cfg).await? != SourceState::Fenced {
        return Err(refuse("the source tables are not fenced: there is nothing to roll back", "check the source tables by hand"));
    }
    let stmt = cfg.rollback_statement();
    if !cfg.run.execute {
        return Ok(stmt);
    }
    src.query_drop(&stmt).await.wrap_err_with(|| format!("running {stmt}"))?;
    drop_changelog(&mut src, cfg).await;
    if let Ok(mut tgt) = crate::engine::connection::connect(cfg.target.opts()).await {
        let _ = set_summary(&mut tgt, cfg, "phase = 'rolled-back'").await;
    }
    Ok(stmt)
}
