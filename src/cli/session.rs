//! What an engine run serves while it works, for `migrate` and `move-tables` alike: the console or
//! the headless status printer, the control socket, the metrics endpoint, StatsD and the signal handler, all ended in
//! order once the engine task returns.

use std::path::PathBuf;
use std::time::Duration;

use color_eyre::eyre::{eyre, Result};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::headless;
use crate::console::{self, ConsoleExit, ConsoleOptions, Theme};
use crate::control::{self, ControlListener, ControlOptions};
use crate::engine::{Command, EngineHandle};

/// What a run serves beside the engine (each bound before the engine started).
pub(crate) struct Serve {
    pub control: Option<(ControlListener, ControlOptions)>,
    pub metrics: Option<tokio::net::TcpListener>,
    /// `--statsd-addr`: the client (its socket opened) and the process gauges' interval.
    pub statsd: Option<(cadence::StatsdClient, Option<Duration>)>,
    /// Some: the console; None: the headless printer.
    pub theme: Option<Theme>,
    /// The name the console's cut-over confirmation asks for.
    pub confirm_name: String,
    pub status_json: bool,
    /// The control socket's path, for the "attach with" line.
    pub socket: PathBuf,
}

/// Serves `serve` until the engine task `join` ends; returns the engine's result after everything stopped.
pub(crate) async fn drive<T>(handle: &EngineHandle, join: JoinHandle<Result<T>>, serve: Serve) -> Result<Result<T>> {
    let shutdown = CancellationToken::new();
    // Metrics (read-only): the snapshot as Prometheus text.
    let _metrics = match serve.metrics {
        Some(l) => Some(control::metrics::serve(l, handle.status.clone(), shutdown.clone())?),
        None => None,
    };
    let statsd_task = serve.statsd.map(|(client, every)| control::statsd::serve(client, handle.status.clone(), every, shutdown.clone()));
    let control_task = serve.control.map(|(listener, opts)| {
        let (h, sd) = (handle.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = control::serve_listener(listener, h, opts, sd).await {
                tracing::error!("control socket: {e:#}");
            }
        })
    });
    let signal_task = stop_on_signals(handle.clone());
    let front = FrontEnd::run(handle, serve.theme, &serve.confirm_name, serve.status_json, &serve.socket).await;
    let result = join.await.map_err(|e| eyre!("engine task: {e}"))?;
    front.stop().await;
    shutdown.cancel();
    signal_task.abort();
    if let Some(t) = control_task {
        let _ = t.await;
    }
    if let Some(t) = statsd_task {
        // Its last send: the final phase and totals.
        let _ = t.await;
    }
    Ok(result)
}

/// The front end of a run: the console until it ends, or the headless status printer (also after the console
/// was detached or failed, so the run keeps reporting).
pub(crate) struct FrontEnd {
    printer: Option<tokio::task::JoinHandle<()>>,
    printer_stop: CancellationToken,
}

impl FrontEnd {
    /// `theme` set: the console (the cut-over confirmation asks for `confirm_name`); otherwise the printer, in
    /// gh-ost's lines or `status_json`.
    pub(crate) async fn run(
        handle: &EngineHandle,
        theme: Option<Theme>,
        confirm_name: &str,
        status_json: bool,
        socket: &std::path::Path,
    ) -> FrontEnd {
        let printer_stop = CancellationToken::new();
        let printer = |json: bool| Some(tokio::spawn(headless::print_status(handle.status.clone(), json, printer_stop.clone())));
        let printer = match theme {
            Some(theme) => {
                let opts = ConsoleOptions { theme, read_only: false, refresh_hz: 2.0, table_name_for_confirm: confirm_name.to_string() };
                match console::run_console(handle.clone(), opts).await {
                    Ok(ConsoleExit::Detached) => {
                        tracing::info!("console detached: the run continues headless; attach with `revenant attach {}`", socket.display());
                        printer(false)
                    }
                    Ok(_) => None,
                    Err(e) => {
                        tracing::error!("console failed: {e:#}; continuing headless");
                        printer(false)
                    }
                }
            }
            None => printer(status_json),
        };
        FrontEnd { printer, printer_stop }
    }

    /// After the engine finished: lets the printer show the final snapshot, then ends it.
    pub(crate) async fn stop(self) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.printer_stop.cancel();
        if let Some(p) = self.printer {
            let _ = p.await;
        }
    }
}

/// SIGINT/SIGTERM become `Command::Stop`: the engine stops at its next safe point and writes its checkpoint.
pub(crate) fn stop_on_signals(handle: EngineHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else { return };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("signal received: stopping at the next safe point");
        let _ = handle.send(Command::Stop).await;
    })
}
