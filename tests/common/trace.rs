//! The fail-point trace (`REVENANT_TRACE_FILE`) read back as runs, and the resume bound checked over them: at
//! most one chunk copied again per interruption and no committed batch applied again (tests/crash_resume.rs across
//! processes, tests/failover.rs across the attempts of one process).

use std::collections::HashMap;
use std::path::Path;

use color_eyre::eyre::{bail, Result};
use revenant::engine::stream::gtid::GtidSet;

/// One run's trace: what it started from, which chunks it began and committed, which batches it committed. A
/// failover starts a new run in the same process: each `run-start` line begins one.
#[derive(Debug, Default)]
pub struct RunTrace {
    pub start_watermark: String,
    pub start_gtid: String,
    pub begun: Vec<(String, String)>,
    pub committed: Vec<(String, String)>,
    pub batches: Vec<String>,
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
            runs.push(RunTrace { start_watermark: a, start_gtid: b, ..Default::default() });
            current.insert(pid.to_string(), runs.len() - 1);
            continue;
        }
        let Some(run) = current.get(pid).map(|&i| &mut runs[i]) else { continue };
        match kind {
            "chunk-begin" => run.begun.push((a, b)),
            "chunk-commit" => run.committed.push((a, b)),
            "batch-commit" => run.batches.push(rest.to_string()),
            _ => {}
        }
    }
    runs
}

/// The bound: after a kill or a failover, a resumed run starts from the last committed chunk (or the one chunk in flight, when the
/// kill came between its commit and its trace line), so at most one chunk is copied again; and it streams from at
/// least the last committed batch's position, so no committed batch is applied again.
pub fn check_bound(runs: &[RunTrace], mariadb: bool) -> Result<(usize, usize)> {
    let mut redone_chunks = 0;
    let mut resumes = 0;
    for w in runs.windows(2) {
        let (prev, next) = (&w[0], &w[1]);
        // A chunk rolled back by a deadlock is retried from the same lower bound (maybe to another end): only a
        // chunk whose lower bound never committed was in flight at the kill.
        let mut in_flight: Vec<&(String, String)> =
            prev.begun.iter().filter(|b| !prev.committed.iter().any(|c| c.0 == b.0)).collect();
        in_flight.dedup_by(|a, b| a.0 == b.0);
        let distinct: std::collections::HashSet<&String> = in_flight.iter().map(|c| &c.0).collect();
        if distinct.len() > 1 {
            let around: Vec<String> = prev
                .begun
                .iter()
                .map(|b| format!("{}{}->{}", if prev.committed.contains(b) { "C " } else { "- " }, b.0, b.1))
                .collect();
            bail!("a run had {} chunks in flight at once: {in_flight:?}; its chunks: {around:?}", distinct.len());
        }
        let last_committed = prev.committed.last().map(|c| c.1.clone()).unwrap_or_else(|| prev.start_watermark.clone());
        let allowed: Vec<String> = std::iter::once(last_committed.clone()).chain(in_flight.iter().map(|c| c.1.clone())).collect();
        if !next.start_watermark.is_empty() && !allowed.contains(&next.start_watermark) {
            bail!("the resumed run started copying at {} but the last committed chunk ended at {last_committed}", next.start_watermark);
        }
        if next.start_watermark == last_committed && !in_flight.is_empty() {
            redone_chunks += 1;
        }
        if let Some(last_batch) = prev.batches.last() {
            let stored = GtidSet::parse(mariadb, &next.start_gtid)?;
            let committed = GtidSet::parse(mariadb, last_batch)?;
            if !stored.contains(&committed) {
                bail!("the resumed run streams from {} which is before the committed batch {last_batch}", next.start_gtid);
            }
        }
        resumes += 1;
    }
    Ok((resumes, redone_chunks))
}
