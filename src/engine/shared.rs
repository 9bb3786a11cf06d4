//! State shared by the engine's tasks: counters, the operator's switches, live-tunable settings, and the assembly
//! of the status snapshot from them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::engine::pipeline::phase::Phase;
use crate::engine::status::{Eta, Status, ThrottleSignal};

/// Rolling rate over the last few seconds.
#[derive(Debug, Default)]
pub struct Rate {
    samples: Vec<(Instant, u64)>,
}

impl Rate {
    pub fn record(&mut self, total: u64) {
        let now = Instant::now();
        self.samples.push((now, total));
        self.samples.retain(|(t, _)| now.duration_since(*t).as_secs_f64() <= 10.0);
    }
    pub fn per_second(&self) -> f64 {
        match (self.samples.first(), self.samples.last()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                (n1.saturating_sub(*n0)) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// Everything the tasks update and the status task reads.
#[derive(Debug)]
pub struct Shared {
    pub started: Instant,
    pub rows_copied: AtomicU64,
    pub rows_estimate: AtomicU64,
    pub copy_complete: AtomicBool,
    pub events_applied: AtomicU64,
    pub backlog: AtomicU64,
    pub chunk_size: AtomicU64,
    /// How many times the operator set the chunk size (`chunk-size=`): each copy worker takes it up then.
    pub chunk_size_set: AtomicU64,
    pub dml_batch_size: AtomicU64,
    pub max_lag_millis: AtomicU64,
    /// Nice ratio as f64 bits.
    pub nice_ratio_bits: AtomicU64,
    pub manual_throttle: AtomicBool,
    pub paused: AtomicBool,
    pub cutover_approved: AtomicBool,
    /// Set by the `verify` command while the cut-over waits; the ready gate hands the run back to verify.
    pub verify_requested: AtomicBool,
    /// The run verifies (migrate with `--checksum`): `verify` is accepted.
    pub verify_available: AtomicBool,
    /// gh-ost-on-begin-postponed fired already (once per run, though the gate is re-entered after a verify).
    pub begin_postponed_fired: AtomicBool,
    /// Heartbeat lag in microseconds (u64::MAX: unknown).
    pub heartbeat_lag_us: AtomicU64,
    /// When the last applied heartbeat was written, microseconds since the epoch (0: none yet). Lag is measured
    /// from it continuously, so an applier that stalls shows growing lag instead of its last value.
    pub last_heartbeat_us: AtomicU64,
    /// When a checkpoint (chunk watermark or applied position) last committed, microseconds since the epoch (0: none).
    pub last_checkpoint_us: AtomicU64,
    /// Copy chunks retried after an error (gh-ost-on-batch-copy-retry fires on each).
    pub copy_retries: AtomicU64,
    /// Set once the throttle loop has read the manual switch and the flag files: the copy does not start before.
    pub throttle_checked: AtomicBool,
    /// Throttle thresholds the operator may change live.
    pub throttle_settings: Mutex<crate::engine::throttle::throttlers::ThrottleSettings>,
    pub inner: Mutex<SharedInner>,
}

/// The parts that are not single numbers.
#[derive(Debug, Default)]
pub struct SharedInner {
    pub status: Status,
    pub phase_entered: Option<Instant>,
    pub copy_started: Option<Instant>,
    pub copy_rate: Rate,
    pub apply_rate: Rate,
    pub throttle_reason: Option<String>,
    pub signals: Vec<ThrottleSignal>,
    pub ready_since: Option<Instant>,
    /// The error of the last retried copy chunk.
    pub last_copy_error: Option<String>,
    /// The server that holds the checkpoint table now, once a failover moved the run (None: where it started).
    pub checkpoint_server: Option<mysql_async::Opts>,
    /// Where the copy's chunks ended, for the verification's chunks.
    pub copy_boundaries: crate::engine::copy::boundaries::CopyBoundaries,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            started: Instant::now(),
            rows_copied: AtomicU64::new(0),
            rows_estimate: AtomicU64::new(0),
            copy_complete: AtomicBool::new(false),
            events_applied: AtomicU64::new(0),
            backlog: AtomicU64::new(0),
            chunk_size: AtomicU64::new(1000),
            chunk_size_set: AtomicU64::new(0),
            dml_batch_size: AtomicU64::new(1000),
            max_lag_millis: AtomicU64::new(1500),
            nice_ratio_bits: AtomicU64::new(0f64.to_bits()),
            manual_throttle: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            cutover_approved: AtomicBool::new(false),
            verify_requested: AtomicBool::new(false),
            verify_available: AtomicBool::new(false),
            begin_postponed_fired: AtomicBool::new(false),
            heartbeat_lag_us: AtomicU64::new(u64::MAX),
            last_heartbeat_us: AtomicU64::new(0),
            last_checkpoint_us: AtomicU64::new(0),
            copy_retries: AtomicU64::new(0),
            throttle_checked: AtomicBool::new(false),
            throttle_settings: Mutex::new(Default::default()),
            inner: Mutex::new(SharedInner::default()),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut SharedInner) -> R) -> R {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    pub fn phase(&self) -> Option<Phase> {
        self.with(|i| i.status.phase)
    }

    /// Enters a phase: records time spent in the previous one and logs the step.
    pub fn enter(&self, phase: Phase) {
        self.with(|i| {
            let now = Instant::now();
            if let (Some(prev), Some(t)) = (i.status.phase, i.phase_entered) {
                let secs = now.duration_since(t).as_secs_f64();
                if let Some(e) = i.status.phase_seconds.iter_mut().find(|(p, _)| *p == prev) {
                    e.1 += secs;
                } else {
                    i.status.phase_seconds.push((prev, secs));
                }
            }
            if i.status.phase != Some(phase) {
                tracing::info!("phase: {}", phase.label());
            }
            i.status.phase = Some(phase);
            i.phase_entered = Some(now);
            if phase == Phase::Copy && i.copy_started.is_none() {
                i.copy_started = Some(now);
            }
            if phase == Phase::ReadyToCutOver {
                i.ready_since = Some(now);
            }
        });
    }

    /// Enters a terminal phase with the message and the resume command the front ends show.
    pub fn end(&self, phase: Phase, message: String, resume_command: Option<String>) {
        self.enter(phase);
        self.with(|i| {
            i.status.message = Some(message);
            i.status.resume_command = resume_command;
        });
    }

    /// Records that a checkpoint committed: the applied position (a batch) and/or the copy watermark (a chunk).
    pub fn checkpoint_committed(&self, gtid_set: Option<&str>, watermark: Option<String>) {
        self.mark_checkpoint();
        self.with(|i| {
            if let Some(g) = gtid_set {
                i.status.checkpoint.gtid_set = g.to_string();
            }
            if let Some(w) = watermark {
                i.status.checkpoint.watermark = w;
            }
        });
    }

    pub fn heartbeat_lag_seconds(&self) -> Option<f64> {
        let hb = self.last_heartbeat_us.load(Ordering::Relaxed);
        if hb != 0 {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
            return Some(now.saturating_sub(hb) as f64 / 1e6);
        }
        let v = self.heartbeat_lag_us.load(Ordering::Relaxed);
        (v != u64::MAX).then(|| v as f64 / 1e6)
    }

    /// Records that a checkpoint just committed (for the checkpoint age).
    pub fn mark_checkpoint(&self) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        self.last_checkpoint_us.store(now, Ordering::Relaxed);
    }

    /// A copy of the live throttle thresholds.
    pub fn throttle_settings(&self) -> crate::engine::throttle::throttlers::ThrottleSettings {
        match self.throttle_settings.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Changes the live throttle thresholds.
    pub fn update_throttle_settings<R>(&self, f: impl FnOnce(&mut crate::engine::throttle::throttlers::ThrottleSettings) -> R) -> R {
        match self.throttle_settings.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    pub fn nice_ratio(&self) -> f64 {
        f64::from_bits(self.nice_ratio_bits.load(Ordering::Relaxed))
    }

    /// Builds the snapshot to publish.
    pub fn snapshot(&self, sequence: u64) -> Status {
        let rows_copied = self.rows_copied.load(Ordering::Relaxed);
        let events = self.events_applied.load(Ordering::Relaxed);
        let lag = self.heartbeat_lag_seconds();
        let max_lag = self.max_lag_millis.load(Ordering::Relaxed) as f64 / 1000.0;
        self.with(|i| {
            i.copy_rate.record(rows_copied);
            i.apply_rate.record(events);
            let now = Instant::now();
            let mut s = i.status.clone();
            // Time in the current phase counts too.
            if let (Some(p), Some(t)) = (s.phase, i.phase_entered) {
                let secs = now.duration_since(t).as_secs_f64();
                if let Some(e) = s.phase_seconds.iter_mut().find(|(q, _)| *q == p) {
                    e.1 += secs;
                } else {
                    s.phase_seconds.push((p, secs));
                }
            }
            s.sequence = sequence;
            s.elapsed_seconds = now.duration_since(self.started).as_secs_f64();
            s.elapsed_copy_seconds = i.copy_started.map(|t| now.duration_since(t).as_secs_f64()).unwrap_or(0.0);
            s.copy.rows_copied = rows_copied;
            s.copy.rows_estimate = self.rows_estimate.load(Ordering::Relaxed).max(rows_copied);
            s.copy.complete = self.copy_complete.load(Ordering::Relaxed);
            s.copy.rows_per_second = i.copy_rate.per_second();
            s.copy.chunk_size = self.chunk_size.load(Ordering::Relaxed);
            s.binlog.events_applied = events;
            s.binlog.events_per_second = i.apply_rate.per_second();
            s.binlog.backlog = self.backlog.load(Ordering::Relaxed);
            s.heartbeat_lag_seconds = lag;
            s.max_lag_seconds = max_lag;
            if let Some(l) = lag {
                // Sampled by the status task a few times a second; keep about a minute.
                s.lag_history.push(l);
                if s.lag_history.len() > 120 {
                    let drop = s.lag_history.len() - 120;
                    s.lag_history.drain(0..drop);
                }
                i.status.lag_history = s.lag_history.clone();
            }
            s.paused = self.paused.load(Ordering::Relaxed);
            s.throttle.throttled = i.throttle_reason.is_some();
            s.throttle.reason = i.throttle_reason.clone().unwrap_or_default();
            s.throttle.signals = i.signals.clone();
            s.eta = if s.copy.complete {
                Eta::Due
            } else if s.copy.rows_per_second > 0.0 && s.elapsed_copy_seconds > 3.0 {
                let left = s.copy.rows_estimate.saturating_sub(rows_copied) as f64;
                Eta::Time(left / s.copy.rows_per_second)
            } else {
                Eta::Measuring
            };
            let last_ck = self.last_checkpoint_us.load(Ordering::Relaxed);
            if last_ck != 0 {
                let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
                s.checkpoint.age_seconds = Some(now_us.saturating_sub(last_ck) as f64 / 1e6);
            }
            if s.phase == Some(Phase::ReadyToCutOver) {
                s.cutover.waiting_seconds = i.ready_since.map(|t| now.duration_since(t).as_secs_f64()).unwrap_or(0.0);
            }
            s
        })
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}
