//! The operator's commands (console keys, the control socket, `attach`), one handler for migrate and move-tables:
//! the switches (throttle, pause), the cut-over approval, stop and abort, a checkpoint on demand, and the live
//! settings (`name=value`, `name=?`). The gh-ost-on-interactive-command hook may refuse any command that changes
//! something.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use color_eyre::eyre::{eyre, Result};
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::checkpoint;
use crate::engine::copy::copier::{MAX_CHUNK, MIN_CHUNK};
use crate::engine::hooks::{Hook, Hooks};
use crate::engine::pipeline::phase::Phase;
use crate::engine::pipeline::tasks::StopReason;
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;
use crate::engine::status::{Command, CommandReply, CommandRequest};
use crate::engine::throttle::throttlers;

/// Where a run keeps its checkpoint (the `checkpoint` command reads it back).
#[derive(Debug, Clone)]
pub(crate) struct CheckpointLocation {
    pub(crate) opts: mysql_async::Opts,
    pub(crate) database: String,
    pub(crate) table: String,
}

/// What the command handler acts on.
pub(crate) struct Commands {
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop: StopReason,
    /// The run's token: a stop or an abort cancels it.
    pub(crate) cancel: CancellationToken,
    pub(crate) hooks: Arc<Hooks>,
    pub(crate) checkpoint: CheckpointLocation,
    /// How the approval reply names what the cut-over still waits for ("the copy is done", "the tables are copied").
    pub(crate) waits_for: &'static str,
}

impl Commands {
    /// Answers commands until every sender is gone.
    pub(crate) async fn serve(self, mut rx: mpsc::Receiver<CommandRequest>) {
        while let Some(req) = rx.recv().await {
            let reply = match self.hook_refusal(&req.command).await {
                Some(refusal) => refusal,
                None => self.handle(&req.command).await,
            };
            tracing::info!("command {:?}: {}", req.command, reply.message);
            let _ = req.reply.send(reply);
        }
    }

    /// gh-ost-on-interactive-command runs before a command that changes something; its failure refuses it.
    async fn hook_refusal(&self, cmd: &Command) -> Option<CommandReply> {
        if matches!(cmd, Command::Get { .. }) || !self.hooks.enabled() {
            return None;
        }
        let extra = [("COMMAND".to_string(), command_text(cmd))];
        let e = self.hooks.fire(Hook::OnInteractiveCommand, &extra, &self.shared.snapshot(0)).await.err()?;
        Some(CommandReply::refused(format!("refused by the hook: {e:#}")))
    }

    async fn handle(&self, cmd: &Command) -> CommandReply {
        let shared = &self.shared;
        match cmd {
            Command::Throttle | Command::NoThrottle | Command::Pause | Command::Resume => {
                operator_switch(cmd, shared).unwrap_or_else(|| CommandReply::refused("not a switch"))
            }
            Command::CutOver => approve_cut_over(shared, self.waits_for),
            Command::Verify => request_verify(shared),
            Command::Stop => {
                self.stop.set("stop requested");
                self.cancel.cancel();
                CommandReply::ok("stopping at the next safe point; a checkpoint will be written")
            }
            Command::Abort => {
                self.stop.set("aborted (panic)");
                self.cancel.cancel();
                CommandReply::ok("aborting now; the run stays resumable and nothing is dropped")
            }
            Command::Checkpoint => match checkpoint_now(shared, &self.checkpoint).await {
                Ok(msg) => CommandReply::ok(msg),
                Err(e) => CommandReply::refused(format!("checkpoint failed: {e:#}")),
            },
            Command::Set { name, value } => set_value(shared, name, value),
            Command::Get { name } => get_value(shared, name),
        }
    }
}

/// `unpostpone` / `C`: approves the cut-over (and removes the postpone flag file), saying what it still waits for.
fn approve_cut_over(shared: &Shared, waits_for: &str) -> CommandReply {
    let phase = shared.phase();
    if phase.is_some_and(|p| p > Phase::ReadyToCutOver) {
        return CommandReply::refused(format!("the cut-over is already past ({})", phase.map(|p| p.label()).unwrap_or("")));
    }
    shared.cutover_approved.store(true, Ordering::Relaxed);
    if let Some(f) = &shared.throttle_settings().postpone_flag_file {
        if let Err(e) = crate::engine::throttle::flag_file::remove_own(f) {
            tracing::warn!("postpone flag file: {e}");
        }
    }
    if phase != Some(Phase::ReadyToCutOver) {
        return CommandReply::ok(format!(
            "cut-over approved: it starts once {waits_for} and the backlog applied (now: {})",
            phase.map(|p| p.label()).unwrap_or("starting")
        ));
    }
    let postponed_reason = "postponed: waiting for approval";
    match shared.with(|i| i.status.cutover.blocked_reason.clone()).filter(|r| r != postponed_reason) {
        Some(why) => CommandReply::ok(format!("cut-over approved, but it waits: {why}")),
        None => CommandReply::ok("cut-over approved: starting"),
    }
}

/// `verify` / `v`: verifies again while the cut-over waits (the ready gate hands the run back to the verification).
fn request_verify(shared: &Shared) -> CommandReply {
    if !shared.verify_available.load(Ordering::Relaxed) {
        return CommandReply::refused("this run does not verify (--checksum=false)");
    }
    match shared.phase() {
        Some(Phase::ReadyToCutOver) => {
            shared.verify_requested.store(true, Ordering::Relaxed);
            CommandReply::ok("verification requested: original and ghost are compared again before any cut-over")
        }
        Some(Phase::Verify) => CommandReply::ok("a verification is running"),
        p => CommandReply::refused(format!("verify runs while the cut-over waits (now: {})", p.map(|p| p.label()).unwrap_or("starting"))),
    }
}

/// A command as gh-ost's text protocol spells it (GH_OST_COMMAND).
fn command_text(cmd: &Command) -> String {
    match cmd {
        Command::Throttle => "throttle".into(),
        Command::NoThrottle => "no-throttle".into(),
        Command::Pause => "pause".into(),
        Command::Resume => "resume".into(),
        Command::Checkpoint => "checkpoint".into(),
        Command::CutOver => "unpostpone".into(),
        Command::Verify => "verify".into(),
        Command::Stop => "stop".into(),
        Command::Abort => "panic".into(),
        Command::Set { name, value } => format!("{name}={value}"),
        Command::Get { name } => format!("{name}=?"),
    }
}


/// The operator's switches, the same for a migration and a move: throttle (the copy waits at once; the throttle
/// loop keeps the reason, so lifting the manual switch never clears another throttler's reason), pause, resume.
pub(crate) fn operator_switch(cmd: &Command, shared: &Shared) -> Option<CommandReply> {
    Some(match cmd {
        Command::Throttle => {
            shared.manual_throttle.store(true, Ordering::Relaxed);
            shared.with(|i| {
                i.throttle_reason.get_or_insert_with(|| "commanded by user".into());
            });
            CommandReply::ok("throttled (commanded by user): the copy waits; the binlog is still applied")
        }
        Command::NoThrottle => {
            shared.manual_throttle.store(false, Ordering::Relaxed);
            CommandReply::ok("manual throttle lifted")
        }
        Command::Pause => {
            shared.paused.store(true, Ordering::Relaxed);
            CommandReply::ok("paused: copy and apply wait (the backlog grows)")
        }
        Command::Resume => {
            shared.paused.store(false, Ordering::Relaxed);
            CommandReply::ok("resumed")
        }
        _ => return None,
    })
}

/// A live `name=value` setting from the console or socket (also for move-tables).
pub(crate) fn set_value(shared: &Shared, name: &str, value: &str) -> CommandReply {
    let parse_u64 = |v: &str| v.trim().parse::<u64>().map_err(|_| format!("{name}: '{v}' is not a whole number"));
    let r: std::result::Result<String, String> = match name {
        "chunk-size" => parse_u64(value).and_then(|n| {
            if !(MIN_CHUNK..=MAX_CHUNK).contains(&n) {
                return Err(format!("chunk-size must be between {} and {}", MIN_CHUNK, MAX_CHUNK));
            }
            shared.chunk_size.store(n, Ordering::Relaxed);
            shared.chunk_size_set.fetch_add(1, Ordering::Relaxed);
            Ok(format!("chunk-size={n}"))
        }),
        "dml-batch-size" => parse_u64(value).and_then(|n| {
            if n == 0 || n > 100_000 {
                return Err("dml-batch-size must be between 1 and 100000".into());
            }
            shared.dml_batch_size.store(n, Ordering::Relaxed);
            Ok(format!("dml-batch-size={n}"))
        }),
        "max-lag-millis" => parse_u64(value).and_then(|n| {
            if n < 100 {
                return Err("max-lag-millis must be at least 100".into());
            }
            shared.max_lag_millis.store(n, Ordering::Relaxed);
            Ok(format!("max-lag-millis={n}"))
        }),
        "nice-ratio" => value
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("nice-ratio: '{value}' is not a number"))
            .and_then(|f| {
                if !(0.0..=100.0).contains(&f) {
                    return Err("nice-ratio must be between 0 and 100".into());
                }
                shared.nice_ratio_bits.store(f.to_bits(), Ordering::Relaxed);
                Ok(format!("nice-ratio={f}"))
            }),
        "max-load" | "critical-load" => throttlers::parse_load(value).map_err(|e| format!("{name}: {e}")).map(|l| {
            let text = throttlers::format_load(&l);
            shared.update_throttle_settings(|t| if name == "max-load" { t.max_load = l } else { t.critical_load = l });
            format!("{name}={text}")
        }),
        "throttle-query" | "postpone-cut-over-flag-file" => crate::engine::throttle::live::set(shared, name, value),
        "throttle-control-replicas" => {
            let port = shared.with(|i| i.status.target.host.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())).unwrap_or(3306);
            throttlers::parse_replicas(value, port).map_err(|e| format!("{name}: {e}")).map(|r| {
                let text = throttlers::format_replicas(&r);
                shared.update_throttle_settings(|t| {
                    t.control_replicas = r;
                    t.replicas_generation += 1;
                });
                format!("throttle-control-replicas={text} (replicas discovered from the primary are looked up again)")
            })
        }
        "throttle-http" => set_throttle_http(shared, value),
        other => Err(format!("'{other}' cannot be set on this migration")),
    };
    match r {
        Ok(m) => CommandReply::ok(m),
        Err(m) => CommandReply::refused(m),
    }
}

/// `throttle-http=URL` (plain http, as the flag) or empty to stop asking it.
fn set_throttle_http(shared: &Shared, value: &str) -> std::result::Result<String, String> {
    let url = value.trim();
    if !url.is_empty() {
        throttlers::parse_http_url(url).map_err(|e| format!("throttle-http: {e}"))?;
    }
    let url = (!url.is_empty()).then(|| url.to_string());
    shared.update_throttle_settings(|t| t.throttle_http = url.clone());
    Ok(format!("throttle-http={}", url.unwrap_or_default()))
}

pub(crate) fn get_value(shared: &Shared, name: &str) -> CommandReply {
    match name {
        "chunk-size" => CommandReply::ok(shared.chunk_size.load(Ordering::Relaxed).to_string()),
        "dml-batch-size" => CommandReply::ok(shared.dml_batch_size.load(Ordering::Relaxed).to_string()),
        "max-lag-millis" => CommandReply::ok(shared.max_lag_millis.load(Ordering::Relaxed).to_string()),
        "nice-ratio" => CommandReply::ok(shared.nice_ratio().to_string()),
        "max-load" => CommandReply::ok(throttlers::format_load(&shared.throttle_settings().max_load)),
        "critical-load" => CommandReply::ok(throttlers::format_load(&shared.throttle_settings().critical_load)),
        "throttle-query" => CommandReply::ok(shared.throttle_settings().throttle_query.unwrap_or_default()),
        "throttle-control-replicas" => CommandReply::ok(throttlers::format_replicas(&shared.throttle_settings().control_replicas)),
        "postpone-cut-over-flag-file" => CommandReply::ok(
            shared.throttle_settings().postpone_flag_file.map(|p| p.display().to_string()).unwrap_or_default(),
        ),
        "throttle-http" => CommandReply::ok(shared.throttle_settings().throttle_http.unwrap_or_default()),
        other => CommandReply::refused(format!("unknown setting '{other}'")),
    }
}

/// Forces a summary write and reports the recorded position.
async fn checkpoint_now(shared: &Shared, at: &CheckpointLocation) -> Result<String> {
    // After a failover the checkpoint is read and written on the new primary, never on the one given up.
    let opts = shared.with(|i| i.checkpoint_server.clone()).unwrap_or_else(|| at.opts.clone());
    let mut c = crate::engine::connection::connect(opts).await?;
    let phase = shared.phase().map(|p| p.label()).unwrap_or("preflight");
    c.exec_drop(
        format!(
            "UPDATE {} SET phase = ?, rows_estimate = ?, updated_at = CURRENT_TIMESTAMP(6) WHERE id = ?",
            qualified(&at.database, &at.table)
        ),
        (phase, shared.rows_estimate.load(Ordering::Relaxed), checkpoint::SUMMARY),
    )
    .await?;
    let st = checkpoint::read(&mut c, &at.database, &at.table)
        .await?
        .ok_or_else(|| eyre!("no checkpoint table yet (the migration has not been set up)"))?;
    let _ = c.disconnect().await;
    shared.checkpoint_committed(Some(&st.applied_gtid_set), st.copy_watermark.as_deref().map(watermark_text));
    Ok(format!(
        "checkpoint recorded: applied GTID set {} ({}:{}), copy watermark {}, {} rows copied, {} events applied",
        if st.applied_gtid_set.is_empty() { "(none yet)" } else { &st.applied_gtid_set },
        st.applied_file,
        st.applied_pos,
        st.copy_watermark.as_deref().map(watermark_text).unwrap_or_else(|| "(start)".to_string()),
        st.rows_copied,
        st.events_applied
    ))
}

pub(crate) fn watermark_text(json: &str) -> String {
    checkpoint::decode_key(json).map(|v| checkpoint::describe_key(&v)).unwrap_or_else(|_| json.to_string())
}
