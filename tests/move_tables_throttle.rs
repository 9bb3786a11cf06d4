//! move-tables' dry run, heartbeat lag, throttling and stop state against two real servers per flavour: without
//! `--execute` nothing is created on the target and nothing renamed on the source; during a move the heartbeats
//! written on the source come back through the binary log as a real lag figure; a throttle flag file holds the
//! cross-server copy (rows copied stay flat, reason `flag-file`) and releasing it lets the move finish with
//! identical checksums; a SIGINT mid-copy prints the state JSON (tables, phase, applied GTID set, per-table
//! watermarks, resume command) on stdout.

mod common;
mod move_support;

use std::process::{Command as Proc, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use color_eyre::eyre::{bail, eyre, Result};
use common::{each_flavor, wait_phase, Server};
use move_support::{move_config, seed, verify_moved, AppWriter};
use mysql_async::prelude::Queryable;
use revenant::engine::move_tables::{self, MoveOutcome, MoveStateDump, CHANGELOG_TABLE};
use revenant::engine::{Command, Phase};
use revenant::sandbox::two_servers;

async fn tables_on(server: &Server, db: &str) -> Result<Vec<String>> {
    let mut c = server.conn().await?;
    Ok(c.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1", (db,)).await?)
}

/// Nothing created on the target database, nothing renamed or added on the source.
async fn assert_unchanged(source: &Server, target: &Server, db: &str, what: &str) -> Result<()> {
    let on_target = tables_on(target, db).await?;
    let on_source = tables_on(source, db).await?;
    if !on_target.is_empty() || on_source != ["items".to_string(), "orders".to_string()] {
        bail!("{what} changed something: source {on_source:?}, target {on_target:?}");
    }
    Ok(())
}

fn scratch(tag: &str, port: u16) -> Result<std::path::PathBuf> {
    move_support::scratch(&format!("thr-{tag}"), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_a_throttle_flag_holds_the_copy_with_real_lag() {
    each_flavor(|flavor| async move {
        let (source, target) = two_servers(flavor).await?;
        let db = "thr";
        seed(&source, &target, db, 1500).await?;

        // Dry run: every check, then what it would do; nothing on either server.
        let mut cfg = move_config(&source, &target, db);
        cfg.execute = false;
        let (_h, join) = move_tables::start(cfg);
        let outcome = tokio::time::timeout(Duration::from_secs(60), join).await???;
        let MoveOutcome::DryRun { plan } = outcome else { bail!("dry run: {outcome:?}") };
        let text = plan.join("\n");
        assert!(text.contains(&format!("validated {db}.orders: key PRIMARY")) && text.contains(&format!("validated {db}.items")), "{text}");
        assert!(text.contains("would create on the target") && text.contains("RENAME TABLE `thr`.`orders` TO `thr`.`_orders_del`"), "{text}");
        assert!(text.ends_with("add --execute to move"), "{text}");
        assert_unchanged(&source, &target, db, "the dry run").await?;

        // A move whose copy starts throttled by a flag file, under a writer.
        let dir = scratch("flag", source.port)?;
        let flag = dir.join("throttle.flag");
        std::fs::write(&flag, b"")?;
        let w = AppWriter::start(&source, db, "orders", 41).await?;
        let mut cfg = move_config(&source, &target, db);
        cfg.throttle.throttle_flag_file = Some(flag.clone());
        cfg.throttle.heartbeat_interval = Duration::from_millis(100);
        let (handle, join) = move_tables::start(cfg);
        // Throttled, and the heartbeat lag known (bounded wait).
        let mut rx = handle.status.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let held = loop {
            let s = rx.borrow_and_update().clone();
            if s.phase == Some(Phase::Copy) && s.throttle.reason.contains("flag-file") && s.heartbeat_lag_seconds.is_some() {
                break s;
            }
            if s.phase.is_some_and(|p| p.is_terminal() || p >= Phase::Catchup) {
                bail!("the move went past the copy while the flag file exists: {:?} {:?}", s.phase, s.message);
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                bail!("never saw the copy throttled with a heartbeat lag: {:?} {:?} lag {:?}", s.phase, s.throttle.reason, s.heartbeat_lag_seconds);
            }
        };
        // Rows copied stay flat while the flag file exists; heartbeats keep flowing (the lag stays a real number).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let later = handle.snapshot();
        assert_eq!(later.phase, Some(Phase::Copy));
        assert_eq!(later.copy.rows_copied, held.copy.rows_copied, "the copy advanced while throttled");
        assert!(later.throttle.throttled && later.throttle.reason.contains("flag-file"), "{:?}", later.throttle);
        assert!(later.throttle.signals.iter().any(|g| g.name == "flag-file" && g.throttling), "{:?}", later.throttle.signals);
        let lag = later.heartbeat_lag_seconds.ok_or_else(|| eyre!("heartbeat lag unknown during the move"))?;
        assert!((0.0..30.0).contains(&lag), "heartbeat lag {lag}");
        assert!(!later.lag_history.is_empty(), "no lag samples");
        assert!(tables_on(&source, db).await?.contains(&CHANGELOG_TABLE.to_string()), "the heartbeat table is on the source");
        // Released: the copy finishes, the gate opens on approval, the move completes.
        std::fs::remove_file(&flag)?;
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        let ready = handle.snapshot();
        assert!(!ready.throttle.throttled, "still throttled after the flag file went: {:?}", ready.throttle);
        let ready_lag = ready.heartbeat_lag_seconds.ok_or_else(|| eyre!("heartbeat lag unknown at the gate"))?;
        assert!(handle.send(Command::CutOver).await.ok);
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        assert!(matches!(outcome, MoveOutcome::Done { .. }), "{outcome:?}");
        let (ok, missing) = w.stop().await?;
        let counts = verify_moved(&source, &target, db).await?;
        let on_source = tables_on(&source, db).await?;
        assert!(!on_source.contains(&CHANGELOG_TABLE.to_string()), "the heartbeat table is dropped at the end: {on_source:?}");
        eprintln!(
            "[{flavor}] held at {} rows for 1.5 s (lag {lag:.3} s, {} samples); at the gate lag {ready_lag:.3} s; moved {counts:?} rows; \
             {ok} writes, {missing} refused after the fence",
            held.copy.rows_copied,
            later.lag_history.len()
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}

fn revenant(source: &Server, target: &Server, db: &str, extra: &[&str]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["move-tables", "--host", "127.0.0.1", "--port", &source.port.to_string(), "--user", "root", "--database", db])
        .args(["--tables", "orders,items", "--target-host", "127.0.0.1", "--target-port", &target.port.to_string()])
        .args(["--target-user", "root", "--chunk-size", "100", "--chunk-time-millis", "20"])
        .args(extra)
        .env_remove("REVENANT_FAILPOINTS")
        .env_remove("MYSQL_PWD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_dry_run_and_sigint_mid_copy_prints_the_state() {
    each_flavor(|flavor| async move {
        let (source, target) = two_servers(flavor).await?;
        let db = "sig";
        seed(&source, &target, db, 600).await?;
        let dir = scratch("sig", source.port)?;
        let sock = format!("--serve-socket-file={}", dir.join("ctl.sock").display());

        // Without --execute: a dry run, exit 0, nothing changed.
        let out = revenant(&source, &target, db, &["--headless", &sock]).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "dry run: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("dry run: nothing was changed on either server") && stdout.contains("RENAME TABLE"), "{stdout}");
        assert_unchanged(&source, &target, db, "the CLI dry run").await?;

        // With --execute, held mid-copy by a throttle flag file, then SIGINT: the state JSON on stdout, exit 3.
        let flag = dir.join("throttle.flag");
        std::fs::write(&flag, b"")?;
        let flag_arg = format!("--throttle-flag-file={}", flag.display());
        let mut child = revenant(&source, &target, db, &["--execute", "--status-json", &sock, &flag_arg]).spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| eyre!("no stdout"))?;
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                    if let Ok(mut l) = lines.lock() {
                        l.push(line.clone());
                    }
                    let _ = tx.send(line);
                }
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let lag = loop {
            let line = rx.recv_timeout(Duration::from_secs(60))?;
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["phase"] == "copy" && v["throttle"]["reason"].as_str().is_some_and(|r| r.contains("flag-file")) {
                if let Some(lag) = v["heartbeat_lag_seconds"].as_f64() {
                    break lag;
                }
            }
            if std::time::Instant::now() > deadline {
                bail!("never saw the copy throttled with a lag: {line}");
            }
        };
        // SAFETY: kill(2) on the child we spawned.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let status = child.wait()?;
        let _ = reader.join();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert_eq!(status.code(), Some(3), "SIGINT mid-copy: {err}");
        let all = lines.lock().map(|l| l.clone()).unwrap_or_default();
        let start = all.iter().position(|l| l == "{").ok_or_else(|| eyre!("no state JSON on stdout: {all:?}"))?;
        let end = all.iter().skip(start).position(|l| l == "}").map(|n| start + n).ok_or_else(|| eyre!("unterminated state JSON"))?;
        let json = all[start..=end].join("\n");
        let state: MoveStateDump = serde_json::from_str(&json)?;
        assert_eq!(state.tables, vec!["orders".to_string(), "items".to_string()]);
        assert_eq!((state.database.as_str(), state.target_database.as_str()), (db, db));
        assert_eq!(state.phase, "copy", "{json}");
        assert_eq!(state.checkpoint_phase, "copy", "{json}");
        assert!(state.reason.contains("stop"), "{json}");
        assert!(!state.applied_gtid_set.is_empty(), "{json}");
        assert_eq!(state.tables_copied.len(), 2, "{json}");
        assert!(state.tables_copied.iter().all(|t| !t.copy_complete), "nothing finished copying under the flag: {json}");
        assert_eq!(state.drain_gtid, None, "{json}");
        let resume = state.resume_command.clone().unwrap_or_default();
        assert!(resume.contains("move-tables") && resume.ends_with("--resume"), "{resume}");
        assert!(!json.to_ascii_lowercase().contains("password"), "{json}");
        // Nothing fenced; the checkpoint on the target matches the dump.
        let on_source = tables_on(&source, db).await?;
        assert!(!on_source.iter().any(|t| t.ends_with("_del")), "{on_source:?}");
        let mut t = target.conn().await?;
        let applied: Option<String> = t
            .query_first(format!("SELECT applied_gtid_set FROM {db}.{} WHERE id = 'apply'", move_tables::CHECKPOINT_TABLE))
            .await?;
        assert_eq!(applied.as_deref(), Some(state.applied_gtid_set.as_str()));
        eprintln!("[{flavor}] dry run changed nothing; stopped mid-copy (lag {lag:.3} s): {}", json.replace('\n', " "));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}
