//! The frame every run shares, migrate or move-tables: the channels of its [`EngineHandle`], the status publisher
//! (4 snapshots a second), the command handler, the status hook, the run's steps under one cancellation token, and
//! the terminal phase with the closing hooks once the steps end.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::Result;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::config::RunSettings;
use crate::engine::hooks::{self, Hook, Hooks};
use crate::engine::pipeline::commands::{CheckpointLocation, Commands};
use crate::engine::pipeline::phase::Phase;
use crate::engine::pipeline::report::plain_report;
use crate::engine::pipeline::tasks::StopReason;
use crate::engine::shared::Shared;
use crate::engine::status::{EngineHandle, Status};

/// How often the status snapshot is published.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// What a run's steps are given.
#[derive(Clone)]
pub(crate) struct RunContext {
    pub(crate) shared: Arc<Shared>,
    /// Cancelled by a stop, an abort, a signal, critical load or the panic flag file (after `stop` says why).
    pub(crate) cancel: CancellationToken,
    pub(crate) stop: StopReason,
    pub(crate) hooks: Arc<Hooks>,
}

/// How a run's outcome reads for the terminal phase.
pub(crate) enum Ending {
    /// Done, or a dry run that validated.
    Done,
    /// Stopped on request with a checkpoint: why, and the resume command.
    Stopped { reason: String, resume_command: Option<String> },
}

/// An outcome of a run (migrate's or a move's).
pub(crate) trait RunOutcome {
    fn ending(&self) -> Ending;
}

/// What the frame needs besides the steps.
pub(crate) struct Frame {
    pub(crate) shared: Arc<Shared>,
    /// The run's hooks; an error here refuses the run before anything is changed.
    pub(crate) hooks: Result<Hooks>,
    pub(crate) checkpoint: CheckpointLocation,
    pub(crate) waits_for: &'static str,
    pub(crate) status_hook_interval: Duration,
    pub(crate) resume_command: Option<String>,
    /// Fire gh-ost-on-success / gh-ost-on-failure when the steps end (a move fires its success hook as a step).
    pub(crate) closing_hooks: bool,
}

impl Frame {
    /// A run's frame; the status hook's interval and the resume command come from its settings.
    pub(crate) fn new(shared: Arc<Shared>, hooks: Result<Hooks>, checkpoint: CheckpointLocation, run: &RunSettings, waits_for: &'static str, closing_hooks: bool) -> Frame {
        Frame { shared, hooks, checkpoint, waits_for, status_hook_interval: run.hooks_status_interval, resume_command: run.resume_command.clone(), closing_hooks }
    }
}

/// Starts a run in the background: `steps` get the context and return the outcome.
pub(crate) fn spawn<O, F, Fut>(frame: Frame, steps: F) -> (EngineHandle, JoinHandle<Result<O>>)
where
    O: RunOutcome + Send + 'static,
    F: FnOnce(RunContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<O>> + Send + 'static,
{
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (status_tx, status_rx) = watch::channel(Status::default());
    let handle = EngineHandle { commands: cmd_tx, status: status_rx };
    let join = tokio::spawn(run(frame, cmd_rx, status_tx, steps));
    (handle, join)
}

async fn run<O, F, Fut>(frame: Frame, cmd_rx: mpsc::Receiver<crate::engine::status::CommandRequest>, status_tx: watch::Sender<Status>, steps: F) -> Result<O>
where
    O: RunOutcome,
    F: FnOnce(RunContext) -> Fut,
    Fut: Future<Output = Result<O>>,
{
    let shared = frame.shared.clone();
    let cancel = CancellationToken::new();
    let stop = StopReason::default();
    let publisher = tokio::spawn(publish(shared.clone(), status_tx.clone(), cancel.child_token()));
    let (hooks, hooks_error) = match frame.hooks {
        Ok(h) => (Arc::new(h), None),
        Err(e) => (Arc::new(Hooks::disabled()), Some(e)),
    };
    let commands = Commands {
        shared: shared.clone(),
        stop: stop.clone(),
        cancel: cancel.clone(),
        hooks: hooks.clone(),
        checkpoint: frame.checkpoint,
        waits_for: frame.waits_for,
    };
    let cmd_task = tokio::spawn(commands.serve(cmd_rx));
    let hooks_task = tokio::spawn(hooks::background_hooks(hooks.clone(), shared.clone(), frame.status_hook_interval, cancel.child_token()));
    let result = match hooks_error {
        None => steps(RunContext { shared: shared.clone(), cancel: cancel.clone(), stop, hooks: hooks.clone() }).await,
        Some(e) => Err(crate::engine::plan::preflight::refuse(format!("{e}"), "check --hooks-path; nothing was changed")),
    };
    let ending = result.as_ref().map(|o| o.ending()).map_err(plain_report);
    end(&shared, &ending, frame.resume_command);
    if frame.closing_hooks {
        closing_hooks(&hooks, &shared, &ending).await;
    }
    cancel.cancel();
    let _ = hooks_task.await;
    let _ = publisher.await;
    status_tx.send_replace(shared.snapshot(u64::MAX / 2));
    cmd_task.abort();
    result
}

/// Publishes a snapshot every [`PUBLISH_EVERY`] until `done`.
async fn publish(shared: Arc<Shared>, status_tx: watch::Sender<Status>, done: CancellationToken) {
    let mut seq = 0u64;
    loop {
        seq += 1;
        status_tx.send_replace(shared.snapshot(seq));
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tokio::time::sleep(PUBLISH_EVERY) => {}
        }
    }
}

/// The terminal phase, from the outcome.
fn end(shared: &Shared, ending: &std::result::Result<Ending, String>, resume_command: Option<String>) {
    match ending {
        Ok(Ending::Done) => shared.enter(Phase::Done),
        Ok(Ending::Stopped { reason, resume_command }) => shared.end(Phase::Stopped, format!("stopped: {reason}"), resume_command.clone()),
        Err(report) => shared.end(Phase::Failed, report.clone(), resume_command),
    }
}

/// The closing hooks see the final status; their failures only log (gh-ost's on-failure; on-success runs after the
/// swap, when nothing is left to undo).
async fn closing_hooks(hooks: &Hooks, shared: &Shared, ending: &std::result::Result<Ending, String>) {
    let final_snapshot = shared.snapshot(0);
    match ending {
        Ok(Ending::Done) => hooks.fire_logged(Hook::OnSuccess, &[], &final_snapshot).await,
        Err(_) => hooks.fire_logged(Hook::OnFailure, &[], &final_snapshot).await,
        Ok(Ending::Stopped { .. }) => {}
    }
}

/// The shared state of a new run, with the live-tunable settings taken from the flags.
pub(crate) fn shared_for(run: &crate::engine::config::RunSettings) -> Arc<Shared> {
    use std::sync::atomic::Ordering;
    let shared = Arc::new(Shared::new());
    shared.chunk_size.store(run.chunk_size.max(1), Ordering::Relaxed);
    shared.dml_batch_size.store(run.dml_batch_size.max(1), Ordering::Relaxed);
    shared.max_lag_millis.store(run.throttle.max_lag_millis, Ordering::Relaxed);
    shared.nice_ratio_bits.store(run.throttle.nice_ratio.to_bits(), Ordering::Relaxed);
    shared.update_throttle_settings(|t| *t = crate::engine::throttle::throttlers::ThrottleSettings::from_config(run));
    shared.with(|i| i.status.cutover.postponed = run.postpone_cut_over || run.postpone_cut_over_flag_file.is_some());
    shared
}
