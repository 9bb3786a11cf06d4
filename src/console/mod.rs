//! The operator console (ratatui).
//!
//! Events (keys, snapshots, command replies) become [`Action`]s through the pure [`ConsoleState::handle_key`];
//! every frame is drawn by [`render`] from an owned [`Status`] snapshot. One keymap ([`keymap::KEYMAP`]) drives
//! dispatch, the footer hints and the `?` overlay.

pub mod keymap;
mod log;
pub mod render;
pub mod state;
pub mod theme;

use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::engine::{Command, CommandReply, EngineHandle, Phase, Status};

pub use render::{render, MIN_HEIGHT, MIN_WIDTH};
pub use state::{Action, ConfirmKind, ConsoleState, Focus, Notice, Popup};
pub use theme::Theme;

/// How the console runs.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    pub theme: Theme,
    /// `attach --read-only`: every command-sending key is disabled.
    pub read_only: bool,
    /// Redraws per second for snapshot changes (0.5, 1, 2 or 4; keys redraw at once).
    pub refresh_hz: f64,
    /// What the operator types to confirm a cut-over or an abort (the table name).
    pub table_name_for_confirm: String,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self { theme: Theme::default(), read_only: false, refresh_hz: 2.0, table_name_for_confirm: String::new() }
    }
}

/// Why the console returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleExit {
    /// The operator detached (or the terminal went away): the migration keeps running headless.
    Detached,
    /// The operator asked for a stop and the engine accepted it: wait for the engine to finish.
    Stopped,
    /// The migration had ended (this phase) when the operator quit.
    Finished(Phase),
}

/// Runs the console on the current terminal until the operator quits or the terminal goes away.
pub async fn run_console(handle: EngineHandle, opts: ConsoleOptions) -> color_eyre::Result<ConsoleExit> {
    // Raw mode + alternate screen; the installed panic hook restores the terminal before printing a panic.
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, handle, opts).await;
    let _ = ratatui::try_restore();
    result
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    handle: EngineHandle,
    opts: ConsoleOptions,
) -> color_eyre::Result<ConsoleExit> {
    let theme = opts.theme;
    let mut state = ConsoleState::new(opts.table_name_for_confirm, opts.read_only, opts.refresh_hz);
    let mut events = EventStream::new();
    let mut status_rx = handle.status.clone();
    let mut live: Status = status_rx.borrow_and_update().clone();
    let mut shown = live.clone();
    let mut status_open = true;
    let (reply_tx, mut reply_rx) = mpsc::unbounded_channel::<(Command, CommandReply)>();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();

    let mut force = true;
    let mut dirty = false;
    let mut last_draw = Instant::now();
    loop {
        let interval = state.frame_interval();
        if force || (dirty && last_draw.elapsed() >= interval) {
            if terminal.draw(|f| render(f, f.area(), &state, &shown, &theme)).is_err() {
                // The terminal went away; keep the migration running.
                return Ok(ConsoleExit::Detached);
            }
            last_draw = Instant::now();
            force = false;
            dirty = false;
        }
        let deadline = last_draw + interval;
        tokio::select! {
            ev = events.next() => match ev {
                None | Some(Err(_)) => return Ok(ConsoleExit::Detached),
                Some(Ok(Event::Key(key))) => {
                    let was_frozen = state.frozen;
                    let action = state.handle_key(key, &live);
                    if was_frozen && !state.frozen {
                        shown = live.clone();
                    }
                    force = true;
                    match action {
                        None => {}
                        Some(Action::Quit(exit)) => return Ok(exit),
                        Some(Action::Send(cmd)) => {
                            let handle = handle.clone();
                            let tx = reply_tx.clone();
                            tokio::spawn(async move {
                                let reply = handle.send(cmd.clone()).await;
                                let _ = tx.send((cmd, reply));
                            });
                        }
                        Some(Action::SendThenQuit(cmd, exit)) => {
                            let _ = terminal.draw(|f| render(f, f.area(), &state, &shown, &theme));
                            match tokio::time::timeout(Duration::from_secs(60), handle.send(cmd.clone())).await {
                                Ok(reply) if reply.ok => return Ok(exit),
                                Ok(reply) => state.on_reply(&cmd, &reply),
                                Err(_) => state.on_reply(&cmd, &CommandReply::refused("no answer within 60s")),
                            }
                        }
                    }
                }
                Some(Ok(Event::Resize(_, _))) => force = true,
                Some(Ok(_)) => {}
            },
            changed = status_rx.changed(), if status_open => match changed {
                Ok(()) => {
                    live = status_rx.borrow_and_update().clone();
                    if !state.frozen {
                        shown = live.clone();
                        dirty = true;
                    }
                }
                Err(_) => {
                    status_open = false;
                    state.disconnected = !live.phase.is_some_and(Phase::is_terminal);
                    force = true;
                }
            },
            Some((cmd, reply)) = reply_rx.recv() => {
                state.on_reply(&cmd, &reply);
                force = true;
            }
            _ = async {
                match hangup.as_mut() {
                    Some(h) => { h.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => return Ok(ConsoleExit::Detached),
            _ = tokio::time::sleep_until(deadline.into()), if dirty => {}
        }
    }
}
