//! The verification step of migrate and move-tables (engine/verify does the SQL): after catch-up, and again on
//! `verify` while the cut-over waits; table after table for a move. A round holds the original's writers
//! (`LOCK TABLES .. READ`) until the applier has committed a changelog marker written under the lock (so everything
//! before the lock is applied), opens the snapshots, lets go, and compares the chunks; differing chunks are copied
//! again and compared in the next round. Differences left after [`ROUNDS`] rounds fail the run before any cut-over
//! (the original serves; the ghost, or a move's target table, is kept for inspection). A first pass continues from
//! the table's checkpoint row on a resume.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use color_eyre::eyre::{eyre, Result, WrapErr};
use mysql_async::Value;

use crate::engine::checkpoint;
use crate::engine::config::MigrationConfig;
use crate::engine::cutover::swap;
use crate::engine::pipeline::gate::{self, Interrupted};
use crate::engine::pipeline::runtime::RunContext;
use crate::engine::pipeline::tasks::Running;
use crate::engine::verify::checksum::KeyRange;
use crate::engine::verify::{self, Difference, Snapshot, Verifier};

/// Rounds of compare and repair before differences fail the run.
pub(super) const ROUNDS: u32 = 3;
/// Snapshots held (chunks compared in parallel).
pub(crate) const POOL: usize = 4;
/// Attempts at the verification lock (each waits at most the cut-over's lock timeout).
const LOCK_ATTEMPTS: u32 = 5;

/// What a round returns: the chunks it compared and the differences, or the wait that ended early.
type Round = Result<std::result::Result<(u64, Vec<Difference>), Interrupted>>;

/// Verifies every table of `tables` (original against ghost), one after the other; `fresh`: from the start (a
/// re-verification), else from each table's checkpoint row. `cfg` names the changelog the markers go to and
/// the lock's timeout.
/// An error stops the run's tasks (the caller fails the run with the original serving).
pub(crate) async fn run(cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, tables: &[Verifier], fresh: bool) -> gate::WaitResult {
    announce(ctx, tables);
    let (mut repaired, mut chunks) = (0, 0);
    for v in tables {
        match run_table(cfg, ctx, running, v, fresh).await {
            Ok(Ok(Checked { repaired: r, chunks: c })) => (repaired, chunks) = (repaired + r, chunks + c),
            Ok(Err(i)) => return Ok(Err(i)),
            Err(e) => {
                ctx.shared.with(|i| i.status.verify.running = false);
                running.stop().await;
                return Err(e);
            }
        }
    }
    finished(ctx, repaired, chunks, tables.len());
    Ok(Ok(()))
}

/// What one table's rounds did: chunks repaired, chunks compared in the first round.
struct Checked {
    repaired: usize,
    chunks: u64,
}

/// One table's rounds.
async fn run_table(cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, v: &Verifier, fresh: bool) -> Result<std::result::Result<Checked, Interrupted>> {
    let table = v.job.source_table.clone();
    ctx.shared.with(|i| i.status.verify.table = Some(table.clone()));
    let Some(from) = start_key(v, fresh).await? else {
        tracing::info!("verification of {table}: a full pass agreed before the interruption; not repeated");
        return Ok(Ok(Checked { repaired: 0, chunks: 0 }));
    };
    let mut given: Option<Vec<KeyRange>> = None;
    let (mut repaired, mut chunks) = (0usize, 0u64);
    for round in 1..=ROUNDS {
        ctx.shared.with(|i| i.status.verify.round = round);
        let diffs = match one_round(cfg, ctx, running, v, from.clone(), given.take()).await? {
            Ok((compared, d)) => {
                if round == 1 {
                    chunks = compared;
                }
                d
            }
            Err(i) => return Ok(Err(i)),
        };
        if diffs.is_empty() {
            return agreed(v).await.map(|_| Ok(Checked { repaired, chunks }));
        }
        for d in &diffs {
            tracing::warn!("verification round {round}: {}", d.describe());
        }
        if round == ROUNDS {
            return Err(failed(ctx, v, &diffs));
        }
        for d in &diffs {
            let rows = v.repair(&d.range).await.wrap_err_with(|| format!("repairing the ghost's key range {}", d.range.describe()))?;
            tracing::info!("verification: key range {} copied again ({rows} rows)", d.range.describe());
        }
        repaired += diffs.len();
        given = Some(diffs.into_iter().map(|d| d.range).collect());
    }
    Ok(Ok(Checked { repaired, chunks }))
}

/// Logs the columns left out and resets the status for a new pass.
fn announce(ctx: &RunContext, tables: &[Verifier]) {
    let skipped: Vec<String> = tables
        .iter()
        .flat_map(|v| v.forms.skipped.iter().map(move |c| if tables.len() > 1 { format!("{}: {c}", v.job.source_table) } else { c.clone() }))
        .collect();
    if !skipped.is_empty() {
        tracing::warn!("verification: left out of the checksum (their conversion cannot be compared exactly): {}", skipped.join(", "));
    }
    ctx.shared.with(|i| {
        let s = &mut i.status.verify;
        s.running = true;
        s.chunks_done = 0;
        s.chunks_total = 0;
        s.rows_verified = 0;
        s.skipped_columns = skipped;
    });
}

/// Where the first round starts: `Some(None)` from the start, `Some(Some(key))` after a key, None when a full pass
/// already agreed (a resume after it).
async fn start_key(v: &Verifier, fresh: bool) -> Result<Option<Option<Vec<Value>>>> {
    if fresh {
        return Ok(Some(None));
    }
    let mut conn = v.checkpoint_conn().await.wrap_err("reading the verification's progress")?;
    let recorded = v.recorded(&mut conn).await?;
    let _ = conn.disconnect().await;
    match recorded.as_deref() {
        None => Ok(Some(None)),
        Some(verify::COMPLETE) => Ok(None),
        Some(key) => {
            tracing::info!("verification of {} continues after key {key} (checkpoint)", v.job.source_table);
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
    let from_start = from.is_none();
    let started = std::time::Instant::now();
    let ranges = match given {
        Some(r) => r,
        None => v.chunks(pool[0].original(), from).await?,
    };
    let found = started.elapsed();
    let diffs = v.compare_all(&mut pool, &ranges, &ctx.shared, record, &ctx.cancel).await;
    let cut = match (&v.boundaries, record) {
        (Some(b), true) if from_start => format!(" ({} cut where the copy's chunks ended)", b.len()),
        _ => String::new(),
    };
    tracing::info!("verification of {}: {} chunk(s){cut} found in {} ms, compared in {} ms", v.job.source_table, ranges.len(), found.as_millis(), (started.elapsed() - found).as_millis());
    verify::end_snapshots(pool).await;
    Ok(diffs?.map(|d| (ranges.len() as u64, d)).ok_or(Interrupted::Stopped))
}

/// Opens the snapshots on `pool` under the lock once the applier has committed a changelog marker written after the
/// lock was granted (so every change made to the original before the lock is in the ghost: the cut-over's own
/// argument); returns how long the writers were held. The applier gets the cut-over's lock timeout to get there,
/// else the lock is released and taken again later (a paused applier is waited for before the lock: it would hold
/// the writers).
async fn snapshots(cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, v: &Verifier, pool: &mut [Snapshot]) -> Result<std::result::Result<Duration, Interrupted>> {
    let limit = cfg.run.cut_over_lock_timeout.max(Duration::from_secs(1));
    for attempt in 1..=LOCK_ATTEMPTS {
        while ctx.shared.paused.load(Ordering::Relaxed) && !ctx.cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let frozen = freeze(v, cfg.run.cut_over_lock_timeout).await?;
        let reached = match swap::write_marker(pool[0].original(), cfg).await {
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

/// A table's pass agreed: recorded in its checkpoint row.
async fn agreed(v: &Verifier) -> Result<()> {
    let mut conn = v.checkpoint_conn().await.wrap_err("recording the verification")?;
    v.record(&mut conn, verify::COMPLETE).await?;
    let _ = conn.disconnect().await;
    Ok(())
}

/// Every table agreed: the status says so.
fn finished(ctx: &RunContext, repaired: usize, chunks: u64, tables: usize) {
    let text = ctx.shared.with(|i| {
        let s = &mut i.status.verify;
        let of = if tables > 1 { format!(" of {tables} tables") } else { String::new() };
        let text = match repaired {
            0 if chunks == 0 => "identical: a full pass agreed before the interruption".to_string(),
            0 => format!("identical: {} rows in {chunks} chunks{of}", s.rows_verified),
            n => format!("identical after repairing {n} chunk(s){of}"),
        };
        s.running = false;
        s.table = None;
        s.last_ended_unix = Some(now_unix());
        s.last_result = Some(text.clone());
        text
    });
    tracing::info!("verification: {text}");
}

/// Differences that stayed: the run fails before any cut-over, naming the ranges and keys.
fn failed(ctx: &RunContext, v: &Verifier, diffs: &[Difference]) -> color_eyre::Report {
    let list: Vec<String> = diffs.iter().take(5).map(Difference::describe).collect();
    let text = format!(
        "the ghost {} still differs from the original {} after {ROUNDS} rounds of repair in {} chunk(s): {}",
        v.forms.ghost.table,
        v.forms.original.table,
        diffs.len(),
        list.join(" | ")
    );
    ctx.shared.with(|i| {
        let s = &mut i.status.verify;
        s.running = false;
        s.table = None;
        s.last_ended_unix = Some(now_unix());
        s.last_result = Some(text.clone());
    });
    eyre!("{text}; no cut-over was attempted: the original table serves and the ghost is kept for inspection")
}
