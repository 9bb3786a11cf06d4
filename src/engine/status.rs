//! The engine's two seams: the status snapshot it publishes on a `watch` channel, and the commands it takes on an
//! `mpsc` channel. The console, the control socket, `attach` and the headless printer all speak only these types
//! (serialised as JSON lines over the socket).

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::pipeline::phase::Phase;

/// One complete, owned picture of a migration at an instant. Renderers keep a copy and never reach into the engine.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Status {
    /// Which migration: server, table, ALTER.
    pub target: TargetInfo,
    /// Current phase (None before the engine started).
    pub phase: Option<Phase>,
    /// Seconds spent in each phase reached so far, in order.
    pub phase_seconds: Vec<(Phase, f64)>,
    /// Seconds since the migration (this process) started.
    pub elapsed_seconds: f64,
    /// Seconds since the row copy started (0 before).
    pub elapsed_copy_seconds: f64,
    pub copy: CopyStatus,
    pub binlog: BinlogStatus,
    pub throttle: ThrottleStatus,
    pub eta: Eta,
    /// Heartbeat lag measured on the changelog table, seconds.
    pub heartbeat_lag_seconds: Option<f64>,
    /// Recent heartbeat/replica lag samples (oldest first), seconds; at most 120.
    pub lag_history: Vec<f64>,
    /// The lag threshold (`--max-lag-millis`) in seconds, for the sparkline.
    pub max_lag_seconds: f64,
    pub checkpoint: CheckpointStatus,
    pub cutover: CutOverStatus,
    /// The verification before the cut-over (and any re-verification while it waits).
    pub verify: VerifyStatus,
    /// The secondary indexes added to the ghost after the copy (`--defer-secondary-indexes`).
    pub indexes: IndexStatus,
    /// Per-table progress (move-tables); empty for a single-table migration.
    pub tables: Vec<TableProgress>,
    /// Following a promoted primary (docs/failover.md): waiting for one, or where the run was adopted.
    pub failover: FailoverStatus,
    /// True while copy and apply are paused by the operator.
    pub paused: bool,
    /// Set when the phase is Failed or Stopped: what happened and what to do.
    pub message: Option<String>,
    /// The exact command that resumes this migration, once one would.
    pub resume_command: Option<String>,
    /// Increments with every publication, so watchers can tell a new snapshot from an old one.
    pub sequence: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TargetInfo {
    /// host:port of the server the table lives on (never the password).
    pub host: String,
    pub database: String,
    pub table: String,
    /// The ALTER clause, as given (without `ALTER TABLE x`).
    pub alter: String,
    /// "mariadb" or "mysql".
    pub flavor: String,
    pub version: String,
    pub ghost_table: String,
    pub old_table: String,
    /// Where writes go, when that is another server (move-tables); empty otherwise.
    pub applier_host: String,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CopyStatus {
    pub rows_copied: u64,
    /// Estimated (or, with `--exact-rowcount`, counted) rows of the original table.
    pub rows_estimate: u64,
    pub rows_estimate_exact: bool,
    /// Rows per second over the last few seconds.
    pub rows_per_second: f64,
    pub chunk_size: u64,
    /// True once every chunk was copied.
    pub complete: bool,
    /// Slices of the key range copied at once, one worker each (`--copy-threads`; 0 or 1: one copier).
    pub slices: u64,
}

impl CopyStatus {
    /// Percentage copied, 0..=100.
    pub fn percent(&self) -> f64 {
        if self.complete {
            return 100.0;
        }
        if self.rows_estimate == 0 {
            return 0.0;
        }
        (self.rows_copied as f64 * 100.0 / self.rows_estimate as f64).min(99.9)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct BinlogStatus {
    /// Position of the last event read, file:pos.
    pub read_file: String,
    pub read_pos: u64,
    /// GTID set applied to the ghost table (and recorded with it).
    pub applied_gtid_set: String,
    /// file:pos of the last applied transaction, for people.
    pub applied_file: String,
    pub applied_pos: u64,
    /// Row events applied to the ghost table.
    pub events_applied: u64,
    pub events_per_second: f64,
    /// Events read but not yet applied, and the queue's capacity.
    pub backlog: u64,
    pub backlog_capacity: u64,
    /// Whether the stream is connected right now.
    pub streaming: bool,
    /// The applier's writer connections (`--apply-threads`): each batch is split by key over them.
    pub apply_writers: u64,
}

impl BinlogStatus {
    /// The position read so far, file and offset; the applied one until the stream's is known.
    pub fn read_position(&self) -> (&str, u64) {
        match self.read_file.is_empty() {
            true => (&self.applied_file, self.applied_pos),
            false => (&self.read_file, self.read_pos),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ThrottleStatus {
    pub throttled: bool,
    /// gh-ost's wording: `lag=1.2s`, `commanded by user`, `flag-file`, ...
    pub reason: String,
    /// Every signal with its current value and threshold.
    pub signals: Vec<ThrottleSignal>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ThrottleSignal {
    pub name: String,
    pub value: String,
    pub threshold: String,
    pub throttling: bool,
}

/// Time to completion of the copy, as gh-ost shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "state", content = "seconds")]
pub enum Eta {
    /// Not enough data yet.
    #[default]
    Measuring,
    /// Expected seconds left.
    Time(f64),
    /// The copy is complete; the cut-over is due.
    Due,
}

impl std::fmt::Display for Eta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Eta::Measuring => f.write_str("measuring"),
            Eta::Due => f.write_str("due"),
            Eta::Time(s) => f.write_str(&format_duration(*s)),
        }
    }
}

/// `1h02m03s`, `4m05s`, `6s`.
pub fn format_duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Where the run stands with a lost or demoted primary.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct FailoverStatus {
    /// True from the moment the primary was found gone or demoted until a new one is adopted (or the wait ends).
    pub waiting: bool,
    /// Which of the run's servers failed over last: empty for migrate (its one primary), `source` or `target` for a
    /// move.
    pub side: String,
    /// Why the primary was given up (unreachable past --retry-seconds, read-only, replicating).
    pub reason: String,
    /// host:port of the primary given up.
    pub old_primary: String,
    /// Seconds waited for a new primary so far (while waiting) or in all (once adopted).
    pub waited_seconds: f64,
    /// The candidates tried, each with what was found there ("127.0.0.1:3307: read-only").
    pub candidates_tried: Vec<String>,
    /// host:port of the primary the run was adopted on last, and the checkpoint's GTID set it resumed at.
    pub adopted_on: String,
    pub adopted_gtid_set: String,
    /// Failovers followed in this run.
    pub count: u32,
}

impl FailoverStatus {
    /// " of the source" / " of the target" for a move, "" for migrate.
    fn of_side(&self) -> String {
        if self.side.is_empty() {
            String::new()
        } else {
            format!(" of the {}", self.side)
        }
    }

    /// A status line's state with the failover in it: while waiting, the wait replaces it; after an adoption, the
    /// adoption follows it.
    pub fn in_state(&self, state: String) -> String {
        match self.text() {
            f if self.waiting => f,
            f if f.is_empty() => state,
            f => format!("{state}; {f}"),
        }
    }

    /// The line the status line, the console and the log show ("" when there was no failover).
    pub fn text(&self) -> String {
        if self.waiting {
            let tried = if self.candidates_tried.is_empty() { "none yet".to_string() } else { self.candidates_tried.join("; ") };
            format!("waiting for a new primary{} ({} so far; {}; tried: {tried})", self.of_side(), format_duration(self.waited_seconds), self.reason)
        } else if !self.adopted_on.is_empty() {
            let side = if self.side.is_empty() { String::new() } else { format!("{} ", self.side) };
            format!("{side}adopted on {} at GTID {} (failover {} of this run)", self.adopted_on, self.adopted_gtid_set, self.count)
        } else {
            String::new()
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CheckpointStatus {
    /// Seconds since the last checkpoint write (None before the first).
    pub age_seconds: Option<f64>,
    /// The applied GTID set recorded by the last checkpoint.
    pub gtid_set: String,
    /// The copy watermark (last key copied) recorded by the last checkpoint, as text.
    pub watermark: String,
    /// Set on a resume: what the resume redid.
    pub resumed_from: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CutOverStatus {
    /// True while the cut-over waits for approval (flag file, console `C`, socket `unpostpone`).
    pub postponed: bool,
    /// Seconds waited in the ready phase.
    pub waiting_seconds: f64,
    /// Why the cut-over does not start yet, if it would otherwise (e.g. `lag 3.1s > 1.5s`).
    pub blocked_reason: Option<String>,
    /// Current sub-step (atomic: lock, wait-applied, rename; move-tables: gate, before-hook, fence, drain, ...).
    pub step: String,
    pub attempts: u32,
    /// The last write stall the cut-over caused, milliseconds.
    pub last_stall_ms: Option<u64>,
    /// move-tables: the GTID set to drain to, and the events left to drain.
    pub drain_gtid: Option<String>,
    pub events_left_to_drain: Option<u64>,
}

/// The deferred secondary indexes: which ones the ghost was created without, and their build after the copy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct IndexStatus {
    /// The indexes added (or to add) after the copy, by name.
    pub deferred: Vec<String>,
    /// True while the ALTER that adds them runs.
    pub building: bool,
    /// How long the build took (or has taken so far), seconds.
    pub build_seconds: Option<f64>,
}

/// The verification: progress of the pass running, and what the last one found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct VerifyStatus {
    /// False with `--checksum=false`.
    pub enabled: bool,
    /// True while a pass runs.
    pub running: bool,
    /// The table being verified (a move verifies its tables one after the other); None between passes.
    pub table: Option<String>,
    /// The round of the pass running (1: every chunk; later: the chunks repaired).
    pub round: u32,
    pub chunks_done: u64,
    pub chunks_total: u64,
    pub rows_verified: u64,
    /// The last key of the agreeing prefix recorded in the checkpoint.
    pub verified_to: Option<String>,
    /// How long the last verification lock held the original's writers, milliseconds.
    pub last_lock_ms: Option<u64>,
    /// When the last pass ended, seconds since the epoch.
    pub last_ended_unix: Option<u64>,
    /// What the last pass found (`identical ...`, `repaired ...`, or the differences).
    pub last_result: Option<String>,
    /// Column pairs left out of the checksum (their conversion cannot be compared exactly).
    pub skipped_columns: Vec<String>,
}

impl VerifyStatus {
    /// Share of the chunks compared in the pass running (0..=1).
    pub fn fraction(&self) -> f64 {
        if self.chunks_total == 0 { 0.0 } else { (self.chunks_done as f64 / self.chunks_total as f64).min(1.0) }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TableProgress {
    pub table: String,
    pub rows_copied: u64,
    pub rows_estimate: u64,
    pub complete: bool,
}

/// What the operator (console, socket, attach) can ask of a running migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "command")]
pub enum Command {
    /// Throttle by hand (`throttle`): the copy stops; the applier keeps applying.
    Throttle,
    /// Lift the manual throttle (`no-throttle`).
    NoThrottle,
    /// Pause copy and apply.
    Pause,
    /// Continue after a pause.
    Resume,
    /// Write a checkpoint now and report the position recorded.
    Checkpoint,
    /// Approve the cut-over (`unpostpone`); refused unless the phase is ready.
    CutOver,
    /// Verify original and ghost again (`verify`) while the cut-over waits; refused unless the phase is ready and
    /// the run verifies (migrate without `--checksum=false`).
    Verify,
    /// Stop at a safe point, write a checkpoint, leave a resumable state.
    Stop,
    /// Abort now (`panic`): leave a resumable state; nothing is dropped.
    Abort,
    /// Change a setting live (`chunk-size=1000`, `max-lag-millis=1500`, ...).
    Set { name: String, value: String },
    /// Read a setting (`chunk-size=?`).
    Get { name: String },
}

/// The engine's answer to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandReply {
    pub ok: bool,
    pub message: String,
}

impl CommandReply {
    pub fn ok(message: impl Into<String>) -> Self {
        Self { ok: true, message: message.into() }
    }
    pub fn refused(message: impl Into<String>) -> Self {
        Self { ok: false, message: message.into() }
    }
}

/// A command with the channel its reply goes back on.
#[derive(Debug)]
pub struct CommandRequest {
    pub command: Command,
    pub reply: oneshot::Sender<CommandReply>,
}

/// What a front end holds: commands in, snapshots out.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    pub commands: mpsc::Sender<CommandRequest>,
    pub status: watch::Receiver<Status>,
}

impl EngineHandle {
    /// Sends a command and waits for the engine's answer.
    pub async fn send(&self, command: Command) -> CommandReply {
        let (reply, rx) = oneshot::channel();
        if self.commands.send(CommandRequest { command, reply }).await.is_err() {
            return CommandReply::refused("the migration is no longer running");
        }
        rx.await.unwrap_or_else(|_| CommandReply::refused("the migration ended before it answered"))
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Status {
        self.status.borrow().clone()
    }
}
