//! migrate's verification step (engine/verify does the SQL): after catch-up, and again on `verify` while the
//! cut-over waits. A round holds the original's writers (`LOCK TABLES .. READ`) until the applier has committed a
//! changelog marker written under the lock (so everything before the lock is applied), opens the snapshots, lets go, and compares the chunks; differing chunks are copied
//! again and compared in the next round. Differences left after [`ROUNDS`] rounds fail the run before any cut-over
//! (the original serves; the ghost is kept for inspection). A first pass continues from the checkpoint's `verify`
//! row on a resume.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use color_eyre::eyre::{eyre, Result, WrapErr};
use mysql_async::Value;

use crate::engine::checkpoint;
use crate::engine::config::MigrationConfig;
use crate::engine::copy::copier::CopyJob;
use crate::engine::pipeline::gate::{self, Interrupted};
use crate::engine::pipeline::runtime::RunContext;
use crate::engine::pipeline::tasks::Running;
use crate::engine::plan::preflight::Plan;
use crate::engine::cutover::swap;
use crate::engine::verify::checksum::KeyRange;
use crate::engine::verify::{self, Difference, Verifier};

/// Rounds of compare and repair before differences fail the run.
pub(super) const ROUNDS: u32 = 3;
/// Connections holding the snapshots (chunks compared in parallel).
const POOL: usize = 4;
/// Attempts at the verification lock (each waits at most the cut-over's lock timeout).
const LOCK_ATTEMPTS: u32 = 5;

/// What a round returns: the differences, or the wait that ended early.
type Round = Result<std::result::Result<Vec<Difference>, Interrupted>>;

/// The verifier of this migration: the copy job's column pairs against the ghost's structure.
pub(super) fn verifier(cfg: &MigrationConfig, plan: &Plan, job: &CopyJob) -> Verifier {
    let rows = (cfg.run.chunk_size * 50).clamp(1_000, 100_000);
    Verifier::new(cfg.source.opts(), job.clone(), &plan.new_structure, POOL, rows)
}

/// Verifies original and ghost; `fresh`: from the start (a re-verification), else from the checkpoint's row.
pub(super) async fn run(cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, plan: &Plan, job: &CopyJob, fresh: bool) -> gate::WaitResult {
    let v = verifier(cfg, plan, job);
    announce(ctx, &v);
    let Some(from) = start_key(&v, fresh).await? else {
        tracing::info!("verification: a full pass agreed before the interruption; not repeated");
        return Ok(Ok(()));
    };
    let mut given: Option<Vec<KeyRange>> = None;
    let mut repaired = 0usize;
    for round in 1..=ROUNDS {
        ctx.shared.with(|i| i.status.verify.round = round);
        let diffs = match one_round(cfg, ctx, running, &v, from.clone(), given.take()).await? {
            Ok(d) => d,
            Err(i) => return Ok(Err(i)),
        };
        if diffs.is_empty() {
            return finished(ctx, &v, repaired).await.map(Ok);
        }
        for d in &diffs {
            tracing::warn!("verification round {round}: {}", d.describe());
        }
        if round == ROUNDS {
            return Err(failed(ctx, &diffs));
        }
        for d in &diffs {
            let rows = v.repair(&d.range).await.wrap_err_with(|| format!("repairing the ghost's key range {}", d.range.describe()))?;
            tracing::info!("verification: key range {} copied again ({rows} rows)", d.range.describe());
        }
        repaired += diffs.len();
        given = Some(diffs.into_iter().map(|d| d.range).collect());
    }
    Ok(Ok(()))
}

/// Logs the columns left out and resets the status for a new pass.
fn announce(ctx: &RunContext, v: &Verifier) {
    if !v.forms.skipped.is_empty() {
        tracing::warn!("verification: left out of the checksum (their conversion cannot be compared exactly): {}", v.forms.skipped.join(", "));
    }
    ctx.shared.with(|i| {
        let s = &mut i.status.verify;
        s.running = true;
        s.chunks_done = 0;
        s.chunks_total = 0;
        s.rows_verified = 0;
        s.skipped_columns = v.forms.skipped.clone();
    });
}

/// Where the first round starts: `Some(None)` from the start, `Some(Some(key))` after a key, None when a full pass
/// already agreed (a resume after it).
async fn start_key(v: &Verifier, fresh: bool) -> Result<Option<Option<Vec<Value>>>> {
    if fresh {
        return Ok(Some(None));
    }
    let mut conn = crate::engine::connection::connect(v.opts.clone()).await.wrap_err("connecting to read the verification's progress")?;
    let recorded = v.recorded(&mut conn).await?;
    let _ = conn.disconnect().await;
    match recorded.as_deref() {
        None => Ok(Some(None)),
        Some(verify::COMPLETE) => Ok(None),
        Some(key) => {
            tracing::info!("verification continues after key {key} (checkpoint)");
            Ok(Some(Some(checkpoint::decode_key(key)?)))
        }
    }
}

/// One round: the lock, the wait for the applier, the snapshots, then the chunks compared.
async fn one_round(cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, v: &Verifier, from: Option<Vec<Value>>, given: Option<Vec<KeyRange>>) -> Round {
    let mut pool = v.connect_pool().await?;
    let held = match snapshots(cfg, ctx, running, v, &mut pool).await? {
        Ok(held) => held,
        Err(i) => return Ok(Err(i)),
    };
    let ms = held.as_millis() as u64;
    tracing::info!("verification lock: the original's writers were held {ms} ms");
    ctx.shared.with(|i| i.status.verify.last_lock_ms = Some(ms));
    let record = given.is_none();
    let started = std::time::Instant::now();
    let ranges = match given {
        Some(r) => r,
        None => v.chunks(&mut pool[0], from).await?,
    };
    let found = started.elapsed();
    let diffs = v.compare_all(&mut pool, &ranges, &ctx.shared, record, &ctx.cancel).await;
    tracing::info!("verification: {} chunk(s) found in {} ms, compared in {} ms", ranges.len(), found.as_millis(), (started.elapsed() - found).as_millis());
    verify::end_snapshots(pool).await;
    Ok(diffs?.ok_or(Interrupted::Stopped))
}

/// Opens the snapshots on `pool` under the lock once the applier has committed a changelog marker written after the
/// lock was granted (so every change made to the original before the lock is in the ghost: the cut-over's own
/// argument); returns how long the writers were held. The applier gets the cut-over's lock timeout to get there,
/// else the lock is released and taken again later (a paused applier is waited for before the lock: it would hold
/// the writers).
async fn snapshots(cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, v: &Verifier, pool: &mut [mysql_async::Conn]) -> Result<std::result::Result<Duration, Interrupted>> {
    let limit = cfg.run.cut_over_lock_timeout.max(Duration::from_secs(1));
    for attempt in 1..=LOCK_ATTEMPTS {
        while ctx.shared.paused.load(Ordering::Relaxed) && !ctx.cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let frozen = freeze(v, cfg.run.cut_over_lock_timeout).await?;
        let reached = match swap::write_marker(&mut pool[0], cfg).await {
            Ok(token) => swap::await_marker(&mut running.applied_rx, &token, limit).await,
            Err(e) => Err(e),
        };
        let Err(e) = reached else {
            return Ok(Ok(Verifier::snapshot_and_release(pool, frozen).await?));
        };
        Verifier::release(frozen).await?;
        if let Some((what, r)) = running.finished().await {
            return Ok(Err(Interrupted::TaskEnded(what, r)));
        }
        if ctx.cancel.is_cancelled() {
            return Ok(Err(Interrupted::Stopped));
        }
        tracing::warn!("verification: {e:#} under the lock (attempt {attempt}); released");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(eyre!("the applier did not reach the verification's marker under the lock in {LOCK_ATTEMPTS} attempts of {}s", limit.as_secs()))
}

/// The verification lock, tried again when the lock wait times out (a long transaction on the original).
async fn freeze(v: &Verifier, timeout: Duration) -> Result<verify::Frozen> {
    let mut attempt = 1;
    loop {
        match v.freeze(timeout).await {
            Ok(f) => return Ok(f),
            Err(e) if attempt < LOCK_ATTEMPTS => {
                tracing::warn!("verification lock attempt {attempt} failed: {e:#}");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.wrap_err(format!("the verification lock failed {LOCK_ATTEMPTS} times"))),
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A pass agreed: recorded in the checkpoint and the status.
async fn finished(ctx: &RunContext, v: &Verifier, repaired: usize) -> Result<()> {
    let mut conn = crate::engine::connection::connect(v.opts.clone()).await.wrap_err("connecting to record the verification")?;
    v.record(&mut conn, verify::COMPLETE).await?;
    let _ = conn.disconnect().await;
    let text = ctx.shared.with(|i| {
        let s = &mut i.status.verify;
        let text = match repaired {
            0 => format!("identical: {} rows in {} chunks", s.rows_verified, s.chunks_total),
            n => format!("identical after repairing {n} chunk(s)"),
        };
        s.running = false;
        s.last_ended_unix = Some(now_unix());
        s.last_result = Some(text.clone());
        text
    });
    tracing::info!("verification: {text}");
    Ok(())
}

/// Differences that stayed: the run fails before any cut-over, naming the ranges and keys.
fn failed(ctx: &RunContext, diffs: &[Difference]) -> color_eyre::Report {
    let list: Vec<String> = diffs.iter().take(5).map(Difference::describe).collect();
    let text = format!(
        "the ghost still differs from the original after {ROUNDS} rounds of repair in {} chunk(s): {}",
        diffs.len(),
        list.join(" | ")
    );
    ctx.shared.with(|i| {
        let s = &mut i.status.verify;
        s.running = false;
        s.last_ended_unix = Some(now_unix());
        s.last_result = Some(text.clone());
    });
    eyre!("{text}; no cut-over was attempted: the original table serves and the ghost is kept for inspection")
}
