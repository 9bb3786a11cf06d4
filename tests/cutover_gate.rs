//! The postponed cut-over on every selected flavour: it waits while the flag file exists (the path can change
//! live), the ready phase shows how long it has waited (status snapshot and headless line), the cut-over refuses to
//! start while heartbeat lag is above the threshold and says so (in the status, the headless line and the answer to
//! `unpostpone` over the control socket), and starts once lag is back; the panic flag file stops it resumably.

mod common;

use std::path::Path;
use std::time::Duration;

use color_eyre::eyre::{bail, ensure, Result};
use common::{each_flavor, exec_all, seed_app_table, table_checksum, test_config, wait_phase, Server};
use mysql_async::prelude::Queryable;
use revenant::cli::headless::status_line;
use revenant::control::{self, ControlOptions};
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::{Command, EngineHandle, Phase, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const COLS: &[&str] = &["id", "a", "b"];

async fn wait_for(handle: &EngineHandle, what: &str, pred: impl Fn(&Status) -> bool) -> Result<Status> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = handle.snapshot();
        if pred(&s) {
            return Ok(s);
        }
        if s.phase.is_some_and(|p| p.is_terminal()) || tokio::time::Instant::now() > deadline {
            bail!("gave up waiting for {what}: phase {:?}, cut-over {:?}, message {:?}", s.phase, s.cutover, s.message);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn socket(path: &Path, line: &str) -> Result<String> {
    let mut s = tokio::net::UnixStream::connect(path).await?;
    s.write_all(format!("{line}\n").as_bytes()).await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await??;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postponed_cut_over_waits_shows_its_wait_and_refuses_while_lag_is_high() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "items", 1500).await?;
        let mut c = server.conn().await?;
        let base = std::env::var("REVENANT_SANDBOX_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        let dir = base.join(format!("gate-{}-{}", std::process::id(), flavor.name()));
        std::fs::create_dir_all(&dir)?;
        let (first_flag, second_flag, sock) = (dir.join("postpone-1"), dir.join("postpone-2"), dir.join("gate.sock"));
        std::fs::write(&first_flag, b"")?;
        let mut cfg = test_config(&server, "app", "items", "ADD COLUMN c INT NOT NULL DEFAULT 3");
        cfg.run.postpone_cut_over = false;
        cfg.run.postpone_cut_over_flag_file = Some(first_flag.clone());
        cfg.run.throttle.max_lag_millis = 1000;
        let (handle, join) = migrate::start(cfg);
        let shutdown = CancellationToken::new();
        let server_task = tokio::spawn(control::serve_with(handle.clone(), sock.clone(), None, ControlOptions::new("items"), shutdown.clone()));
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(90)).await?;

        // Postponed by the flag file; the ready phase counts its wait.
        let s = wait_for(&handle, "a postponed wait of some length", |s| s.cutover.postponed && s.cutover.waiting_seconds > 0.5).await?;
        ensure!(s.cutover.blocked_reason.as_deref() == Some("postponed: waiting for approval"), "blocked: {:?}", s.cutover.blocked_reason);
        let line = status_line(&s);
        ensure!(line.contains("State: postponing cut-over (waited "), "headless line: {line}");

        // The flag file's path changes live (created when missing) and reads back.
        let answer = socket(&sock, &format!("postpone-cut-over-flag-file={}", second_flag.display())).await?;
        ensure!(!answer.starts_with("ERROR"), "setting the flag file: {answer}");
        ensure!(second_flag.exists(), "the new postpone flag file was not created");
        let answer = socket(&sock, "postpone-cut-over-flag-file=?").await?;
        ensure!(answer.trim() == second_flag.display().to_string(), "postpone-cut-over-flag-file=? answered {answer:?}");
        std::fs::remove_file(&first_flag)?;

        // Lag: the applier stalls (pause), the heartbeat ages; the cut-over says it waits for lag.
        ensure!(handle.send(Command::Pause).await.ok, "pause refused");
        let s = wait_for(&handle, "the lag block", |s| s.cutover.blocked_reason.as_deref().is_some_and(|r| r.starts_with("heartbeat lag "))).await?;
        let line = status_line(&s);
        ensure!(line.contains("blocked: heartbeat lag ") && line.contains("> max-lag 1.0s"), "headless line: {line}");
        // unpostpone over the socket: approved, and the answer says what it waits for; the flag file is gone.
        let answer = socket(&sock, "unpostpone").await?;
        ensure!(answer.contains("it waits: heartbeat lag "), "unpostpone answered: {answer:?}");
        ensure!(!second_flag.exists(), "unpostpone left the flag file");
        let s = wait_for(&handle, "the approval seen, still blocked by lag", |s| !s.cutover.postponed).await?;
        ensure!(s.phase == Some(Phase::ReadyToCutOver), "the cut-over started while lag was high: {:?}", s.phase);
        ensure!(s.cutover.blocked_reason.as_deref().is_some_and(|r| r.starts_with("heartbeat lag ")), "blocked: {:?}", s.cutover.blocked_reason);

        // Lag back under the threshold: the cut-over runs.
        ensure!(handle.send(Command::Resume).await.ok, "resume refused");
        let outcome = tokio::time::timeout(Duration::from_secs(90), join).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "outcome {outcome:?}");
        shutdown.cancel();
        let _ = server_task.await;
        let old = table_checksum(&mut c, "app", "_items_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "items", COLS).await?;
        ensure!(old == new && old.0 == 1500, "rows differ: old {old:?}, new {new:?}");

        // --panic-flag-file: the migration stops at once, resumably; --resume completes it.
        exec_all(&mut c, "CREATE TABLE app.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64))").await?;
        c.query_drop("INSERT INTO app.orders (a, b) SELECT a, b FROM app.items").await?;
        let (hold, panic_flag) = (dir.join("orders-hold"), dir.join("orders-panic"));
        std::fs::write(&hold, b"")?;
        let mut cfg = test_config(&server, "app", "orders", "ADD COLUMN c INT NOT NULL DEFAULT 3");
        cfg.run.throttle.throttle_flag_file = Some(hold.clone());
        cfg.run.throttle.panic_flag_file = Some(panic_flag.clone());
        cfg.run.postpone_cut_over = false;
        let (handle, join) = migrate::start(cfg.clone());
        wait_phase(&handle, Phase::Copy, Duration::from_secs(60)).await?;
        std::fs::write(&panic_flag, b"")?;
        let outcome = tokio::time::timeout(Duration::from_secs(60), join).await???;
        match &outcome {
            Outcome::Stopped { state } => ensure!(state.reason.starts_with("panic flag file"), "stop reason: {}", state.reason),
            other => bail!("the panic flag file did not stop the migration: {other:?}"),
        }
        std::fs::remove_file(&panic_flag)?;
        std::fs::remove_file(&hold)?;
        cfg.run.resume = true;
        let outcome = tokio::time::timeout(Duration::from_secs(90), migrate::start(cfg).1).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "resume after the panic flag: {outcome:?}");
        let old = table_checksum(&mut c, "app", "_orders_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "orders", COLS).await?;
        ensure!(old == new && old.0 == 1500, "rows differ after the panic resume: old {old:?}, new {new:?}");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}
