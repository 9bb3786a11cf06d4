//! Hooks end to end on every selected flavour: gh-ost's hooks fire in gh-ost's order with gh-ost's environment (each
//! hook script writes its environment to a file), no password reaches them, and a failing
//! gh-ost-on-before-cut-over stops the cut-over with the original table serving and the migration resumable, while a
//! failing gh-ost-on-batch-copy-retry (after a chunk met a lock wait timeout) only logs.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{ensure, Result, WrapErr};
use common::{each_flavor, seed_app_table, table_checksum, test_config, wait_phase, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::config::Secret;
use revenant::engine::hooks::Hook;
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::{Command, Phase};

const PASSWORD: &str = "hook-test-Secret-4711";
const COLS: &[&str] = &["id", "a", "b"];

fn temp_dir(tag: &str) -> PathBuf {
    let base = std::env::var("REVENANT_SANDBOX_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let d = base.join(format!("hooks-{tag}-{}-{}", std::process::id(), rand_suffix()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

fn write_script(dir: &Path, name: &str, body: &str) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Every hook writes `env` to out/<hook>.env and appends its name to out/order (on-status to its own file, as it
/// fires on a clock).
fn recording_hooks(hooks: &Path, out: &Path) -> Result<()> {
    for hook in Hook::ALL {
        let name = hook.file_name();
        let order = if hook == Hook::OnStatus { "status-order" } else { "order" };
        write_script(hooks, name, &format!("env > {out}/{name}.env\necho {name} >> {out}/{order}", out = out.display()))?;
    }
    Ok(())
}

fn read_env(out: &Path, hook: Hook) -> Result<HashMap<String, String>> {
    let path = out.join(format!("{}.env", hook.file_name()));
    let text = std::fs::read_to_string(&path).wrap_err_with(|| format!("{} did not run ({})", hook.file_name(), path.display()))?;
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn read_order(out: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(out.join(file)).unwrap_or_default().lines().map(str::to_string).collect()
}

async fn seed(server: &Server, rows: u32) -> Result<()> {
    seed_app_table(server, "items", rows).await?;
    let mut c = server.conn().await?;
    // A user with a password: the migration connects as it, and the hooks must never see the password.
    for host in ["%", "localhost", "127.0.0.1"] {
        c.query_drop(format!("CREATE USER 'hooker'@'{host}' IDENTIFIED BY '{PASSWORD}'")).await?;
        c.query_drop(format!("GRANT ALL ON *.* TO 'hooker'@'{host}'")).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_fire_in_order_with_gh_ost_environment_and_no_password() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server, 2000).await?;
        let hooks_dir = temp_dir("rec");
        let out = temp_dir("rec-out");
        recording_hooks(&hooks_dir, &out)?;
        // A password in revenant's own environment must not be inherited either.
        std::env::set_var("MYSQL_PWD", PASSWORD);
        let alter = "ADD COLUMN c INT NOT NULL DEFAULT 3";
        let configure = |execute: bool| {
            let mut cfg = test_config(&server, "app", "items", alter);
            cfg.run.execute = execute;
            cfg.source.user = "hooker".into();
            cfg.source.password = Secret::new(Some(PASSWORD.into()));
            cfg.run.hooks_path = Some(hooks_dir.clone());
            cfg.run.hook_hints.hint = "ticket-42".into();
            cfg.run.hook_hints.owner = "dba-team".into();
            cfg.run.hook_hints.token = "tok".into();
            cfg.run.hooks_status_interval = Duration::from_secs(1);
            cfg
        };

        // Dry run: startup, validated, success, with GH_OST_DRY_RUN=true.
        let outcome = migrate::start(configure(false)).1.await??;
        ensure!(matches!(outcome, Outcome::DryRun { .. }), "dry run outcome {outcome:?}");
        let order = read_order(&out, "order");
        ensure!(order == ["gh-ost-on-startup", "gh-ost-on-validated", "gh-ost-on-success"], "dry-run hooks: {order:?}");
        ensure!(read_env(&out, Hook::OnSuccess)?.get("GH_OST_DRY_RUN").map(String::as_str) == Some("true"), "dry run not flagged");
        let _ = std::fs::remove_file(out.join("order"));

        let mut c = server.conn().await?;
        let before = table_checksum(&mut c, "app", "items", COLS).await?;
        let (handle, join) = migrate::start(configure(true));
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(90)).await?;
        // Wait (bounded) for one on-status run before approving, so it is part of the record.
        for _ in 0..100 {
            if out.join("gh-ost-on-status.env").exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reply = handle.send(Command::CutOver).await;
        ensure!(reply.ok, "cut-over refused: {}", reply.message);
        let outcome = tokio::time::timeout(Duration::from_secs(90), join).await???;
        std::env::remove_var("MYSQL_PWD");
        ensure!(matches!(outcome, Outcome::Done { .. }), "outcome {outcome:?}");

        let order = read_order(&out, "order");
        let expected = [
            "gh-ost-on-startup",
            "gh-ost-on-validated",
            "gh-ost-on-rowcount-complete",
            "gh-ost-on-before-row-copy",
            "gh-ost-on-row-copy-complete",
            "gh-ost-on-begin-postponed",
            "gh-ost-on-interactive-command",
            "gh-ost-on-before-cut-over",
            "gh-ost-on-success",
        ];
        ensure!(order == expected, "hooks fired in this order: {order:?}");
        ensure!(!read_order(&out, "status-order").is_empty(), "gh-ost-on-status never ran");

        let port = server.port.to_string();
        for hook in [Hook::OnStartup, Hook::OnRowCopyComplete, Hook::OnBeforeCutOver, Hook::OnSuccess, Hook::OnStatus] {
            let env = read_env(&out, hook)?;
            for prefix in ["GH_OST_", "REVENANT_"] {
                let get = |k: &str| env.get(&format!("{prefix}{k}")).cloned().unwrap_or_default();
                ensure!(get("DATABASE_NAME") == "app", "{hook} {prefix}DATABASE_NAME={}", get("DATABASE_NAME"));
                ensure!(get("TABLE_NAME") == "items", "{hook} TABLE_NAME");
                ensure!(get("GHOST_TABLE_NAME") == "_items_gho", "{hook} GHOST_TABLE_NAME");
                ensure!(get("OLD_TABLE_NAME") == "_items_del", "{hook} OLD_TABLE_NAME");
                ensure!(get("DDL") == alter, "{hook} DDL={}", get("DDL"));
                ensure!(get("MIGRATED_HOST") == format!("127.0.0.1:{port}"), "{hook} MIGRATED_HOST={}", get("MIGRATED_HOST"));
                ensure!(get("DRY_RUN") == "false", "{hook} DRY_RUN");
                ensure!(get("HOOKS_HINT") == "ticket-42" && get("HOOKS_HINT_OWNER") == "dba-team" && get("HOOKS_HINT_TOKEN") == "tok", "{hook} hints");
                ensure!(get("ELAPSED_SECONDS").parse::<f64>().is_ok(), "{hook} ELAPSED_SECONDS={}", get("ELAPSED_SECONDS"));
            }
            ensure!(env.get("REVENANT_HOOK").map(String::as_str) == Some(hook.file_name()), "{hook} REVENANT_HOOK");
        }
        let copied = read_env(&out, Hook::OnRowCopyComplete)?;
        ensure!(copied.get("GH_OST_COPIED_ROWS").map(String::as_str) == Some("2000"), "COPIED_ROWS at on-row-copy-complete: {:?}", copied.get("GH_OST_COPIED_ROWS"));
        let estimated: u64 = copied.get("GH_OST_ESTIMATED_ROWS").and_then(|v| v.parse().ok()).unwrap_or(0);
        ensure!(estimated >= 2000, "ESTIMATED_ROWS at on-row-copy-complete: {estimated}");
        let progress: f64 = read_env(&out, Hook::OnBeforeCutOver)?.get("GH_OST_PROGRESS").and_then(|v| v.parse().ok()).unwrap_or(0.0);
        ensure!(progress == 100.0, "PROGRESS at on-before-cut-over: {progress}");
        let cmd = read_env(&out, Hook::OnInteractiveCommand)?;
        ensure!(cmd.get("GH_OST_COMMAND").map(String::as_str) == Some("unpostpone"), "GH_OST_COMMAND={:?}", cmd.get("GH_OST_COMMAND"));
        let status = read_env(&out, Hook::OnStatus)?;
        ensure!(status.get("GH_OST_STATUS").is_some_and(|s| s.contains("Copy: ")), "GH_OST_STATUS={:?}", status.get("GH_OST_STATUS"));

        // No password anywhere in any hook's environment, and no inherited MySQL variables.
        for entry in std::fs::read_dir(&out)? {
            let path = entry?.path();
            let text = std::fs::read_to_string(&path)?;
            ensure!(!text.contains(PASSWORD), "the password reached a hook: {}", path.display());
            ensure!(!text.lines().any(|l| l.starts_with("MYSQL_")), "a MYSQL_* variable reached a hook: {}", path.display());
        }

        let old = table_checksum(&mut c, "app", "_items_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "items", COLS).await?;
        ensure!(old == before && new == before, "rows differ: before {before:?}, old {old:?}, new {new:?}");
        let _ = std::fs::remove_dir_all(&hooks_dir);
        let _ = std::fs::remove_dir_all(&out);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_before_cut_over_hook_keeps_the_original_serving_and_resumes() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server, 1500).await?;
        let hooks_dir = temp_dir("gate");
        let allow = hooks_dir.join("allow");
        write_script(
            &hooks_dir,
            "gh-ost-on-before-cut-over",
            &format!("if [ -f {} ]; then exit 0; fi\necho 'cut-over window is closed' >&2\nexit 7", allow.display()),
        )?;
        // A failing gh-ost-on-batch-copy-retry only logs: it records its environment and exits 1.
        let retry_env = hooks_dir.join("retry.env");
        write_script(&hooks_dir, "gh-ost-on-batch-copy-retry", &format!("env > {f}.tmp && mv {f}.tmp {f}\nexit 1", f = retry_env.display()))?;
        let configure = || {
            let mut cfg = test_config(&server, "app", "items", "ADD COLUMN c INT NOT NULL DEFAULT 3");
            cfg.run.postpone_cut_over = false;
            cfg.run.hooks_path = Some(hooks_dir.clone());
            cfg
        };
        let mut c = server.conn().await?;
        let before = table_checksum(&mut c, "app", "items", COLS).await?;
        // The first chunk meets a row lock held past a 1 s lock wait timeout: it is retried (a real retry). The
        // copy takes no lock on the original table, so the lock is on the checkpoint's copy row, which every chunk
        // updates: the copy is held by a throttle flag until that table exists and the row is locked.
        c.query_drop("SET GLOBAL innodb_lock_wait_timeout = 1").await?;
        let hold = hooks_dir.join("hold-the-copy");
        std::fs::write(&hold, "")?;
        let mut first = configure();
        first.run.throttle.throttle_flag_file = Some(hold.clone());
        let (handle, join) = migrate::start(first);
        let mut locker = server.conn().await?;
        let mut locked = false;
        for _ in 0..300 {
            let exists: Option<u64> = locker
                .query_first("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'app' AND table_name = '_items_ghk'")
                .await?;
            if exists == Some(1) && handle.snapshot().phase == Some(Phase::Copy) {
                locker.query_drop("BEGIN").await?;
                locker.query_drop("SELECT id FROM app._items_ghk WHERE id = 'copy' FOR UPDATE").await?;
                locked = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ensure!(locked, "the migration never reached the copy: {:?}", handle.snapshot().phase);
        std::fs::remove_file(&hold)?;
        for _ in 0..300 {
            if retry_env.exists() || handle.snapshot().phase.is_some_and(|p| p.is_terminal()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        locker.query_drop("COMMIT").await?;
        c.query_drop("SET GLOBAL innodb_lock_wait_timeout = 50").await?;
        let retry = std::fs::read_to_string(&retry_env).wrap_err("gh-ost-on-batch-copy-retry did not run")?;
        ensure!(
            retry.lines().any(|l| l.starts_with("GH_OST_LAST_BATCH_COPY_ERROR=") && l.contains("Lock wait timeout")),
            "GH_OST_LAST_BATCH_COPY_ERROR missing or wrong: {retry}"
        );
        let result = tokio::time::timeout(Duration::from_secs(90), join).await??;
        let err = match result {
            Ok(o) => color_eyre::eyre::bail!("the migration went on past a failing on-before-cut-over: {o:?}"),
            Err(e) => format!("{e:?}"),
        };
        ensure!(
            err.contains("gh-ost-on-before-cut-over") && err.contains("exit code 7") && err.contains("cut-over window is closed"),
            "error does not name the hook, its code and stderr: {err}"
        );
        ensure!(err.contains("--resume"), "error does not say the migration is resumable: {err}");
        // The original serves with its rows; the ghost and the checkpoint wait; nothing was renamed.
        let now = table_checksum(&mut c, "app", "items", COLS).await?;
        ensure!(now == before, "the original table changed: {before:?} -> {now:?}");
        let tables: Vec<String> = c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'app' ORDER BY 1").await?;
        let tables: Vec<String> = tables.into_iter().map(|t| t.to_lowercase()).collect();
        ensure!(tables.contains(&"_items_gho".to_string()) && tables.contains(&"_items_ghk".to_string()), "ghost/checkpoint gone: {tables:?}");
        ensure!(!tables.contains(&"_items_del".to_string()), "the original was renamed away: {tables:?}");
        c.query_drop("INSERT INTO app.items (a, b) VALUES (1, 'written while the hook refused')").await?;
        let after_write = table_checksum(&mut c, "app", "items", COLS).await?;

        // Approve the window and resume: it completes, with the row written in between.
        std::fs::write(&allow, b"")?;
        let mut cfg = configure();
        cfg.run.resume = true;
        let outcome = tokio::time::timeout(Duration::from_secs(90), migrate::start(cfg).1).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "resume outcome {outcome:?}");
        let old = table_checksum(&mut c, "app", "_items_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "items", COLS).await?;
        ensure!(old == after_write && new == after_write, "after resume: expected {after_write:?}, old {old:?}, new {new:?}");
        let _ = std::fs::remove_dir_all(&hooks_dir);
        Ok(())
    })
    .await;
}
