//! migrate's last steps: the cut-over (the before-cut-over hook, then atomic or two-step attempts with backoff),
//! finishing a two-step cut-over that a crash interrupted between its renames, and the clean-up.

use std::time::Duration;

use color_eyre::eyre::Result;
use mysql_async::prelude::Queryable;

use crate::engine::checkpoint::{self, CheckpointState};
use crate::engine::config::{CutOverMode, MigrationConfig, OnReplica};
use crate::engine::cutover::{blockers, definition, on_replica};
use crate::engine::cutover::swap::{self, SwapReport};
use crate::engine::failpoint;
use crate::engine::hooks::Hook;
use crate::engine::pipeline::migrate::Outcome;
use crate::engine::pipeline::phase::Phase;
use crate::engine::pipeline::report::WithResume;
use crate::engine::pipeline::runtime::RunContext;
use crate::engine::pipeline::gate;
use crate::engine::pipeline::migrate::setup;
use crate::engine::pipeline::tasks::{start_tasks, Running};
use crate::engine::plan::preflight;
use crate::engine::stream::binlog::{self, BinlogPosition};
use crate::engine::stream::gtid::GtidSet;
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;

/// The end of the ready step, once the cut-over is approved: `--analyze-ghost-table-before-cutover` and the
/// before-cut-over hook. A failure or a refusal stops here: nothing was locked or renamed, the checkpoint resumes
/// at ready.
pub(super) async fn before_cut_over(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running) -> Result<()> {
    let not_started = "the cut-over did not start: the original table is serving, and --resume continues the migration";
    if cfg.analyze_ghost_before_cutover {
        if let Err(e) = analyze_ghost(conn, cfg).await {
            running.stop().await;
            return Err(e.wrap_err(not_started).with_resume(cfg));
        }
    }
    if let Err(e) = ctx.hooks.fire(Hook::OnBeforeCutOver, &[], &ctx.shared.snapshot(0)).await {
        running.stop().await;
        return Err(e.wrap_err(not_started).with_resume(cfg));
    }
    Ok(())
}

/// `--test-on-replica`: replication stopped before the cut-over (see `cutover/on_replica.rs`); true when this
/// run tests (a failed cut-over then starts replication again). A failure stops here, nothing renamed.
pub(super) async fn stop_replication_for_test(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, mariadb: bool) -> Result<bool> {
    let Some(OnReplica::Test { stop_replication }) = cfg.on_replica else { return Ok(false) };
    if let Err(e) = on_replica::stop_replication(conn, cfg, mariadb, stop_replication, &ctx.hooks, &ctx.shared).await {
        running.stop().await;
        return Err(e.wrap_err("the test's cut-over did not start: the original table is serving, and --resume continues").with_resume(cfg));
    }
    Ok(true)
}

/// The cut-over recorded as started (a resume from here on looks at what the swap left).
pub(super) async fn begin(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, running: &mut Running) -> Result<()> {
    checkpoint::set_phase(conn, &cfg.database, &cfg.checkpoint_table(), "cut-over").await?;
    conn.exec_drop(
        format!("UPDATE {} SET cutover_started = CURRENT_TIMESTAMP(6) WHERE id = ?", qualified(&cfg.database, &cfg.checkpoint_table())),
        (checkpoint::SUMMARY,),
    )
    .await?;
    let _ = running.ddl_allowed.send(true);
    Ok(())
}

/// `ANALYZE TABLE` on the ghost; an error (or a result row of type error) fails: no swap onto stale statistics.
async fn analyze_ghost(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<()> {
    let ghost = qualified(&cfg.database, &cfg.ghost_table());
    let rows: Vec<(String, String, String, String)> =
        conn.query(format!("ANALYZE TABLE {ghost}")).await.map_err(|e| color_eyre::eyre::eyre!("ANALYZE TABLE {ghost} failed: {e}"))?;
    if let Some((_, _, _, text)) = rows.iter().find(|r| r.2.eq_ignore_ascii_case("error")) {
        color_eyre::eyre::bail!("ANALYZE TABLE {ghost} failed: {text}");
    }
    tracing::info!("ANALYZE TABLE {ghost}: {}", rows.last().map(|r| r.3.as_str()).unwrap_or("done"));
    Ok(())
}

/// Cut-over attempts until one swaps, with backoff, up to `--default-retries`. Every failed attempt leaves the
/// original serving, except a two-step cut-over stopped between its renames, which is never retried.
pub(super) async fn cut_over(cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, plan: &preflight::Plan) -> Result<SwapReport> {
    let mariadb = plan.mariadb;
    let swap_plan = swap::SwapPlan {
        definition: &plan.original.create_statement,
        triggers: &plan.triggers,
        naming: cfg.triggers.as_ref(),
        applier_paused: &ctx.shared.paused,
    };
    let opts = cfg.source.opts();
    let mut marker_conn = crate::engine::connection::connect(opts.clone()).await?;
    let mut blockers_waited = Duration::ZERO;
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        blockers_waited += wait_for_blockers(&mut marker_conn, cfg, ctx, mariadb, blockers_waited).await?;
        ctx.shared.with(|i| {
            i.status.cutover.attempts = attempt;
            i.status.cutover.step = "lock and rename".into();
        });
        let r = match cfg.cut_over {
            CutOverMode::Atomic => swap::atomic_attempt(&opts, cfg, &swap_plan, &mut marker_conn, &mut running.applied_rx).await,
            CutOverMode::TwoStep => swap::two_step(&opts, cfg, &swap_plan, &mut marker_conn, &mut running.applied_rx).await,
        };
        let e = match r {
            Ok(report) => return Ok(report),
            Err(e) => e,
        };
        if definition::is_definition_changed(&e) {
            running.tasks_cancel.cancel();
            return Err(e.wrap_err(format!(
                "the cut-over stopped: {} is serving with its new definition, nothing was swapped; start the migration over \
                 for the table as it is now (drop {} first)",
                cfg.table,
                cfg.ghost_table()
            )));
        }
        if swap::is_half_swapped(&e) {
            running.tasks_cancel.cancel();
            return Err(e.wrap_err("the two-step cut-over stopped between its renames; --resume renames the ghost into place").with_resume(cfg));
        }
        tracing::warn!("cut-over attempt {attempt} failed: {e:#}; the original table keeps serving");
        if attempt >= cfg.run.default_retries.max(1) || ctx.cancel.is_cancelled() {
            let _ = running.ddl_allowed.send(false);
            running.tasks_cancel.cancel();
            return Err(e.wrap_err(format!("the cut-over failed {attempt} times; the original table is serving")).with_resume(cfg));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Waits (bounded) while sessions hold locks on the original: see [`blockers::wait_until_clear`].
async fn wait_for_blockers(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, ctx: &RunContext, mariadb: bool, waited_before: Duration) -> Result<Duration> {
    let tables = [cfg.table.clone()];
    let wait = blockers::BlockerWait {
        mariadb,
        database: &cfg.database,
        tables: &tables,
        what: "cut-over",
        bound: cfg.run.cut_over_lock_timeout * cfg.run.default_retries.max(1),
        cancel: &ctx.cancel,
    };
    blockers::wait_until_clear(conn, &wait, &ctx.shared, waited_before).await
}

/// After the swap: the tasks end, the status says so, the clean-up runs.
pub(super) async fn swapped(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, shared: &Shared, running: &mut Running, report: SwapReport) -> Result<Outcome> {
    tracing::info!("cut-over complete: writes stalled for {} ms", report.stall_ms);
    shared.with(|i| {
        i.status.cutover.last_stall_ms = Some(report.stall_ms);
        i.status.cutover.step = "swapped".into();
    });
    failpoint::hit("after-swap")?;
    running.stop().await;
    if cfg.triggers.is_some() {
        // The cut-over held the applier while the ghost had triggers; the swap is done.
        shared.paused.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    cleanup(cfg, conn, shared, report.stall_ms).await
}

/// A resume of a two-step cut-over that a crash interrupted between its renames: the original is `_<t>_del`. No
/// write can reach a renamed table, so once the applier holds what the server has executed now, the ghost holds
/// every write of the original; then the ghost takes the original's name and the clean-up runs.
pub(super) async fn finish_rename(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, ctx: &RunContext, st: &CheckpointState) -> Result<Outcome> {
    ctx.shared.enter(Phase::CutOver);
    ctx.shared.with(|i| i.status.cutover.step = "finish the rename".into());
    tracing::info!("the two-step cut-over stopped between its renames: applying the rest of the binary log, then renaming {} to {}", cfg.ghost_table(), cfg.table);
    // The stream names the original `t` (its events came before the rename); its definition is read from `_t_del`.
    let plan = preflight::run_on(conn, cfg, &cfg.old_table()).await?;
    let (mapping, changelog, _job, delete_log) = setup::prepare(conn, cfg, &plan).await?;
    delete_log.deactivate();
    if let Some(naming) = &cfg.triggers {
        // The applier replays from the checkpoint: the ghost must not fire triggers an interrupted attempt left.
        crate::engine::cutover::triggers::drop_from(conn, &cfg.database, &cfg.ghost_table(), &plan.triggers, naming).await?;
    }
    let start = BinlogPosition { gtid_set: st.applied_gtid_set.clone(), file: st.applied_file.clone(), pos: st.applied_pos };
    let mut plan_of_tasks = super::task_plan(cfg, &plan, &mapping, &changelog, start, delete_log);
    plan_of_tasks.ddl_allowed = true;
    let mut running = start_tasks(plan_of_tasks, &ctx.shared, &ctx.cancel, &ctx.stop)?;
    let goal = GtidSet::parse(plan.mariadb, &binlog::current_position(conn, plan.mariadb).await?.gtid_set)?;
    if let Err(i) = gate::wait_applied(ctx, &mut running, &goal, plan.mariadb, false).await? {
        return super::interrupted(cfg, ctx, &mut running, i).await;
    }
    failpoint::hit("before-finish-rename")?;
    if let Some(naming) = &cfg.triggers {
        // Nothing writes the ghost now (applied up to what the server executed, the original renamed away): its
        // triggers go on before it takes the name.
        crate::engine::cutover::triggers::recreate_on(conn, &cfg.database, &cfg.ghost_table(), &plan.triggers, naming).await?;
    }
    swap::finish_two_step(conn, cfg).await.map_err(|e| e.with_resume(cfg))?;
    ctx.shared.with(|i| i.status.cutover.step = "swapped".into());
    running.stop().await;
    cleanup(cfg, conn, &ctx.shared, 0).await
}

/// Drops the changelog and checkpoint tables (ours) and, when asked, the old table; a test on a replica swaps
/// back first and keeps the ghost.
pub(super) async fn cleanup(cfg: &MigrationConfig, conn: &mut mysql_async::Conn, shared: &Shared, stall_ms: u64) -> Result<Outcome> {
    shared.enter(Phase::Cleanup);
    let ck = qualified(&cfg.database, &cfg.checkpoint_table());
    let _ = conn
        .exec_drop(format!("UPDATE {ck} SET phase = 'cleanup', cutover_complete = 1 WHERE id = ?"), (checkpoint::SUMMARY,))
        .await;
    conn.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&cfg.database, &cfg.changelog_table()))).await?;
    if let Some(OnReplica::Test { stop_replication }) = cfg.on_replica {
        on_replica::swap_back(conn, cfg).await?;
        conn.query_drop(format!("DROP TABLE IF EXISTS {ck}")).await?;
        return Ok(Outcome::TestedOnReplica { ghost_table: cfg.ghost_table(), stall_ms, replication_stopped: stop_replication });
    }
    let mut dropped = false;
    if cfg.ok_to_drop_table {
        conn.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&cfg.database, &cfg.old_table()))).await?;
        dropped = true;
    } else {
        tracing::info!("the original table is kept as {}.{} (drop it when you are sure)", cfg.database, cfg.old_table());
    }
    let kept: Option<u8> = conn.exec_first(format!("SELECT 1 FROM {ck} WHERE id = ?"), (checkpoint::KEEP,)).await.unwrap_or(None);
    if (cfg.keep_checkpoint || kept.is_some()) && !dropped {
        // --checkpoint: kept for --revert, at the position the swap was made at.
        let _ = conn.exec_drop(format!("UPDATE {ck} SET phase = 'done' WHERE id = ?"), (checkpoint::SUMMARY,)).await;
        tracing::info!("--checkpoint: {}.{} is kept; --revert --old-table {} can swap the original back (drop it when you are sure)", cfg.database, cfg.checkpoint_table(), cfg.old_table());
        return Ok(Outcome::Done { old_table: cfg.old_table(), stall_ms, old_table_dropped: dropped });
    }
    conn.query_drop(format!("DROP TABLE IF EXISTS {ck}")).await?;
    Ok(Outcome::Done { old_table: cfg.old_table(), stall_ms, old_table_dropped: dropped })
}
