//! The fail-point trace (`REVENANT_TRACE_FILE`) read back as runs, and the resume bound checked over them: at
//! most one chunk copied again per interruption and no committed batch applied again (tests/crash_resume.rs across
//! processes, tests/failover.rs across the attempts of one process).

use std::collections::HashMap;
use std::path::Path;

use color_eyre::eyre::{bail, Result};
use revenant::engine::stream::gtid::GtidSet;

/// One run's trace: what it started from, which chunks it began and committed (each with its copy slice, 1 for a
/// copy of one slice), which batches it committed. A failover starts a new run in the same process: each
/// `run-start` line begins one. A parallel copy adds `slice-start <slice> <watermark>` lines and tags its chunk
/// lines `chunk-begin#<slice>` (the first slice's lines carry no tag).
#[derive(Debug, Default)]
pub struct RunTrace {
    pub start_watermark: String,
    pub start_gtid: String,
    /// Each slice's starting watermark (`start`, a key, or `complete`); only slice 1 for a copy of one slice.
    pub slice_starts: std::collections::BTreeMap<usize, String>,
    pub begun: Vec<(String, String)>,
    pub committed: Vec<(String, String)>,
    /// The slice of each entry of `begun` and `committed`.
    pub begun_slice: Vec<usize>,
    pub committed_slice: Vec<usize>,
    pub batches: Vec<String>,
    /// The positions of the batches it began writing (a parallel apply's parts may commit one by one).
    pub batches_begun: Vec<String>,
}

impl RunTrace {
    fn chunks(&self, slice: usize, committed: bool) -> Vec<&(String, String)> {
        let (list, slices) = if committed { (&self.committed, &self.committed_slice) } else { (&self.begun, &self.begun_slice) };
        list.iter().zip(slices).filter(|(_, s)| **s == slice).map(|(c, _)| c).collect()
    }
}

/// `chunk-begin` -> (kind, slice 1); `chunk-begin#3` -> (kind, slice 3).
fn kind_and_slice(kind: &str) -> (&str, usize) {
    match kind.split_once('#') {
        Some((k, n)) => (k, n.parse().unwrap_or(0)),
        None => (kind, 1),
    }
}

pub fn read_trace(path: &Path) -> Vec<RunTrace> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut runs: Vec<RunTrace> = Vec::new();
    let mut current: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ' ');
        let (Some(pid), Some(kind), rest) = (it.next(), it.next(), it.next().unwrap_or("")) else { continue };
        let mut parts = rest.splitn(2, ' ');
        let (a, b) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        if kind == "run-start" {
            let mut run = RunTrace { start_watermark: a.clone(), start_gtid: b, ..Default::default() };
            run.slice_starts.insert(1, a);
            runs.push(run);
            current.insert(pid.to_string(), runs.len() - 1);
            continue;
        }
        let Some(run) = current.get(pid).map(|&i| &mut runs[i]) else { continue };
        let (kind, slice) = kind_and_slice(kind);
        match kind {
            "slice-start" => {
                run.slice_starts.insert(a.parse().unwrap_or(0), b);
            }
            "chunk-begin" => {
                run.begun.push((a, b));
                run.begun_slice.push(slice);
            }
            "chunk-commit" => {
                run.committed.push((a, b));
                run.committed_slice.push(slice);
            }
            "batch-commit" => run.batches.push(rest.to_string()),
            "batch-begin" => run.batches_begun.push(rest.to_string()),
            _ => {}
        }
    }
    runs
}

/// The bound: after a kill or a failover, each copy slice of the resumed run starts from its last committed chunk
/// (or the one chunk in flight, when the kill came between its commit and its trace line), so at most one chunk
/// per slice is copied again; and it streams from at least the last batch every writer committed, and from at
/// most the batch begun after it (a parallel apply killed between its parts' commits), so at most one batch is
/// applied again. Returns (resumes, chunks copied again over all slices).
pub fn check_bound(runs: &[RunTrace], mariadb: bool) -> Result<(usize, usize)> {
    let mut redone_chunks = 0;
    let mut resumes = 0;
    for w in runs.windows(2) {
        let (prev, next) = (&w[0], &w[1]);
        for (slice, start) in &prev.slice_starts {
            redone_chunks += check_slice(prev, next, *slice, start)?;
        }
        if let Some(last_batch) = prev.batches.last() {
            let stored = GtidSet::parse(mariadb, &next.start_gtid)?;
            let committed = GtidSet::parse(mariadb, last_batch)?;
            if !stored.contains(&committed) {
                bail!("the resumed run streams from {} which is before the committed batch {last_batch}", next.start_gtid);
            }
        }
        if let Some(begun) = prev.batches_begun.last() {
            let stored = GtidSet::parse(mariadb, &next.start_gtid)?;
            if !GtidSet::parse(mariadb, begun)?.contains(&stored) {
                bail!("the resumed run streams from {} which is past the last batch begun, {begun}", next.start_gtid);
            }
        }
        resumes += 1;
    }
    Ok((resumes, redone_chunks))
}

/// One slice's part of [`check_bound`]: its chunks in flight at the end of `prev` (at most one) and where `next`
/// starts it. Returns 1 when the chunk in flight is copied again.
fn check_slice(prev: &RunTrace, next: &RunTrace, slice: usize, start: &str) -> Result<usize> {
    let (begun, committed) = (prev.chunks(slice, false), prev.chunks(slice, true));
    // A chunk rolled back by a deadlock is retried from the same lower bound (maybe to another end): only a
    // chunk whose lower bound never committed was in flight at the kill.
    let mut in_flight: Vec<&(String, String)> = begun.iter().copied().filter(|b| !committed.iter().any(|c| c.0 == b.0)).collect();
    in_flight.dedup_by(|a, b| a.0 == b.0);
    let distinct: std::collections::HashSet<&String> = in_flight.iter().map(|c| &c.0).collect();
    if distinct.len() > 1 {
        let around: Vec<String> =
            begun.iter().map(|b| format!("{}{}->{}", if committed.contains(b) { "C " } else { "- " }, b.0, b.1)).collect();
        bail!("slice {slice} had {} chunks in flight at once: {in_flight:?}; its chunks: {around:?}", distinct.len());
    }
    let last_committed = committed.last().map(|c| c.1.clone()).unwrap_or_else(|| start.to_string());
    let Some(next_start) = next.slice_starts.get(&slice).filter(|s| !s.is_empty()) else { return Ok(0) };
    if next_start == "complete" {
        return Ok(0);
    }
    let allowed: Vec<String> = std::iter::once(last_committed.clone()).chain(in_flight.iter().map(|c| c.1.clone())).collect();
    if !allowed.contains(next_start) {
        bail!("the resumed run started copying slice {slice} at {next_start} but its last committed chunk ended at {last_committed}");
    }
    Ok(usize::from(*next_start == last_committed && !in_flight.is_empty()))
}

/// The most copy slices any run traced (1 for a copy of one slice): the redo bound is one chunk per slice.
pub fn slice_count(runs: &[RunTrace]) -> usize {
    runs.iter().map(|r| r.slice_starts.len()).max().unwrap_or(1).max(1)
}
