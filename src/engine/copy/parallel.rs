//! The parallel copy (`--copy-threads`): the key range is split into slices when the copy starts, and one worker
//! copies each slice in chunks, as a lone copier would. Each slice has its own checkpoint row (`copy` for the first,
//! `copy#2`, `copy#3`, ... for the others) holding its range end and watermark, moved in the same transaction as
//! the slice's chunk: a kill -9 redoes at most one chunk per slice. The slices are fixed at the start and kept in
//! the checkpoint, so a resume continues them whatever `--copy-threads` says then.
//!
//! Why the slices are disjoint and cover the range: slice k copies `p(k-1) < key <= p(k)`, with no lower bound for
//! the first and the range's end as the last one's upper bound; the split points are strictly increasing keys
//! compared by the server itself (in the chunk's WHERE), so each key of the range falls in exactly one slice.
//! The throttler, the pause and the nice ratio hold every worker (each checks them before its next chunk); the
//! delete log keeps one cursor per worker (see `delete_log`).

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::engine::checkpoint;
use crate::engine::copy::copier::{CopyControl, CopyJob, CopyRange, Slot};
use crate::engine::shared::Shared;

/// A slice gets at least this many chunks of the starting chunk size: a smaller table is copied by fewer workers.
const MIN_CHUNKS_PER_SLICE: u64 = 10;

/// At most this many workers by default, however many cores this machine has (each is a connection copying).
const DEFAULT_MAX_THREADS: usize = 4;

/// One slice of the copy: its checkpoint row and where it stands.
#[derive(Debug, Clone, Default)]
pub struct Slice {
    pub row: String,
    pub range: CopyRange,
    pub complete: bool,
}

/// The checkpoint row of slice `index` (0-based): `copy`, then `copy#2`, `copy#3`, ...
pub fn slice_row(index: usize) -> String {
    match index {
        0 => checkpoint::COPY.to_string(),
        n => format!("{}#{}", checkpoint::COPY, n + 1),
    }
}

/// The workers a copy may use: `--copy-threads` when given (at least 1), else this machine's cores, at most
/// [`DEFAULT_MAX_THREADS`].
pub fn threads(requested: Option<usize>) -> usize {
    match requested {
        Some(n) => n.max(1),
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, DEFAULT_MAX_THREADS),
    }
}

/// The rows a table needs for `threads` slices of at least [`MIN_CHUNKS_PER_SLICE`] chunks each.
pub fn rows_for(threads: usize, chunk_size: u64) -> u64 {
    threads as u64 * MIN_CHUNKS_PER_SLICE * chunk_size.max(1)
}

/// How many slices a new copy gets: `threads`, fewer when the table is small (each slice at least
/// [`MIN_CHUNKS_PER_SLICE`] chunks of `chunk_size` rows by the estimate).
pub fn slice_count(threads: usize, estimate: u64, chunk_size: u64) -> usize {
    let by_size = estimate / (MIN_CHUNKS_PER_SLICE * chunk_size.max(1));
    (threads as u64).min(by_size).max(1) as usize
}

/// `n - 1` split points strictly between `first` and `last`, evenly spaced (fewer when the range is narrow).
pub fn integer_splits(first: i128, last: i128, n: usize) -> Vec<i128> {
    let width = last - first;
    let mut points: Vec<i128> = (1..n as i128).map(|k| first + width * k / n as i128).filter(|p| *p > first && *p < last).collect();
    points.dedup();
    points
}

/// A single integer key's value as a number, keeping whether it was unsigned.
fn integer(v: &Value) -> Option<(i128, bool)> {
    match v {
        Value::Int(i) => Some((*i as i128, false)),
        Value::UInt(u) => Some((*u as i128, true)),
        _ => None,
    }
}

/// The split points of a new copy's range `first..=last` into `n` slices: arithmetic on a single integer key,
/// else the keys at evenly spaced row offsets by the estimate (read in key order, as the chunks are).
pub async fn split_points(job: &CopyJob, conn: &mut mysql_async::Conn, bounds: &(Vec<Value>, Vec<Value>), estimate: u64, n: usize) -> Result<Vec<Vec<Value>>> {
    if n < 2 {
        return Ok(Vec::new());
    }
    let (first, last) = bounds;
    if let ([a], [b]) = (first.as_slice(), last.as_slice()) {
        if let (Some((a, _)), Some((b, unsigned))) = (integer(a), integer(b)) {
            let value = |p: i128| if unsigned { Value::UInt(p as u64) } else { Value::Int(p as i64) };
            return Ok(integer_splits(a, b, n).into_iter().map(|p| vec![value(p)]).collect());
        }
    }
    let mut points: Vec<Vec<Value>> = Vec::new();
    for k in 1..n as u64 {
        // The key `offset` rows in, read as a chunk's end is.
        let offset = estimate * k / n as u64;
        let Some(p) = job.chunk_end(conn, None, last, offset + 1).await.wrap_err("finding where a copy slice begins")? else { break };
        if &p == last || points.last() == Some(&p) {
            break;
        }
        points.push(p);
    }
    Ok(points)
}

/// The slices of a new copy: the first from the start to the first split point, the others from one point to
/// the next, the last to `last`.
pub fn slices(points: Vec<Vec<Value>>, last: Vec<Value>) -> Vec<Slice> {
    let lowers = std::iter::once(None).chain(points.iter().cloned().map(Some));
    let uppers = points.iter().cloned().chain(std::iter::once(last));
    lowers
        .zip(uppers)
        .enumerate()
        .map(|(i, (lower, upper))| Slice { row: slice_row(i), range: CopyRange { range_end: Some(upper), watermark: lower }, complete: false })
        .collect()
}

/// Copies every incomplete slice at once, one worker each, until all are done (true), the run is cancelled
/// (false), or a worker fails (its error; the others stop at their next chunk, each slice's watermark committed).
/// The copy is complete (and the delete log stops recording) only once every slice is.
pub async fn run(job: &CopyJob, opts: &mysql_async::Opts, slices: &mut [Slice], shared: Arc<Shared>, control: &CopyControl) -> Result<bool> {
    let count = slices.len();
    let stop_all = control.cancel.child_token();
    let each = CopyControl { cancel: stop_all.clone(), ..control.clone() };
    let workers = slices.iter_mut().enumerate().filter(|(_, s)| !s.complete).map(|(index, slice)| {
        let mut worker_job = job.clone();
        worker_job.checkpoint_row = slice.row.clone();
        let (shared, stop_all, each) = (shared.clone(), stop_all.clone(), &each);
        async move {
            let slot = Slot { index, count };
            let done = worker_job.run_slice(opts, slot, &mut slice.range, shared, each).await;
            match &done {
                Ok(true) => slice.complete = true,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!("copy slice {} stopped: {e:#}", index + 1);
                    stop_all.cancel();
                }
            }
            done
        }
    });
    let results = futures_util::future::join_all(workers).await;
    let mut all_done = true;
    for r in results {
        all_done &= r?;
    }
    if all_done && slices.iter().all(|s| s.complete) {
        shared.copy_complete.store(true, Ordering::Relaxed);
        if let Some(log) = &job.deletes {
            log.deactivate();
        }
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_rows_keep_the_single_copy_row_first() {
        assert_eq!((slice_row(0).as_str(), slice_row(1).as_str(), slice_row(3).as_str()), ("copy", "copy#2", "copy#4"));
    }

    #[test]
    fn a_small_table_gets_fewer_slices() {
        assert_eq!(slice_count(3, rows_for(3, 200), 200), 3, "rows_for is what slice_count needs");
        assert_eq!(slice_count(3, rows_for(3, 200) - 1, 200), 2);
        assert_eq!(slice_count(4, 1_000_000, 1000), 4);
        assert_eq!(slice_count(4, 25_000, 1000), 2, "10 chunks per slice at least");
        assert_eq!(slice_count(4, 9_999, 1000), 1);
        assert_eq!(slice_count(1, 1_000_000, 1000), 1);
        assert_eq!(slice_count(3, 0, 1000), 1, "an empty estimate still copies, with one worker");
    }

    #[test]
    fn integer_splits_are_strictly_inside_the_range() {
        assert_eq!(integer_splits(1, 100, 4), vec![25, 50, 75]);
        assert_eq!(integer_splits(1, 3, 4), vec![2], "a narrow range gets fewer points, none repeated");
        assert_eq!(integer_splits(5, 5, 2), Vec::<i128>::new());
        assert_eq!(integer_splits(-10, 10, 2), vec![0]);
        let big = integer_splits(0, u64::MAX as i128, 2);
        assert_eq!(big, vec![(u64::MAX / 2) as i128], "unsigned keys near the top do not overflow");
    }

    #[test]
    fn slices_cover_the_range_without_overlap() {
        let v = |i: i64| vec![Value::Int(i)];
        let s = slices(vec![v(10), v(20)], v(30));
        type Shape = (Option<Vec<Value>>, Option<Vec<Value>>, String);
        let shape: Vec<Shape> = s.into_iter().map(|s| (s.range.watermark, s.range.range_end, s.row)).collect();
        assert_eq!(
            shape,
            vec![(None, Some(v(10)), "copy".into()), (Some(v(10)), Some(v(20)), "copy#2".into()), (Some(v(20)), Some(v(30)), "copy#3".into())]
        );
        assert_eq!(slices(Vec::new(), v(5)).len(), 1, "no split point: one slice, the whole range");
    }

    #[test]
    fn the_default_uses_this_machines_cores_within_bounds() {
        let n = threads(None);
        assert!((1..=DEFAULT_MAX_THREADS).contains(&n));
        assert_eq!(threads(Some(0)), 1);
        assert_eq!(threads(Some(6)), 6);
    }
}
