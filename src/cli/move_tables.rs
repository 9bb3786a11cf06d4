//! `revenant move-tables`: turns the flags (and `--config` TOML) into a [`MoveTablesConfig`] with credentials for
//! both servers, runs the move with the console or headless status lines and the control socket, and reports how
//! it ended; `--rollback` gives fenced tables back to the source.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use color_eyre::eyre::{eyre, Result};
use color_eyre::Section;
use tokio_util::sync::CancellationToken;

use super::args::MoveTablesArgs;
use super::{credentials, exit, init_tracing, resume_command, say};
use crate::console::Theme;
use crate::control::{self, ControlOptions};
use crate::engine::config::{ConnectionConfig, Secret};
use crate::engine::hooks::HookHints;
use crate::engine::pipeline::move_tables::{self, MoveOutcome, MoveTablesConfig};
use crate::engine::Phase;

/// Builds the move's settings; checks what can be checked before connecting.
fn move_config(a: &MoveTablesArgs, argv: &[String]) -> Result<MoveTablesConfig> {
    let database = a.database.clone().ok_or_else(|| eyre!("--database is required")).suggestion("name the tables' database with --database")?;
    let tables: Vec<String> = a.tables.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    if tables.is_empty() {
        return Err(eyre!("--tables is required")).suggestion("name the tables to move: --tables t1,t2");
    }
    for (i, t) in tables.iter().enumerate() {
        if tables[..i].contains(t) {
            return Err(eyre!("--tables names {t} twice"));
        }
    }
    let target_host = a.target_host.clone().ok_or_else(|| eyre!("--target-host is required")).suggestion("give the server the tables move to")?;
    if a.chunk_size == 0 || a.chunk_size > 100_000 {
        return Err(eyre!("--chunk-size {} is out of range", a.chunk_size)).suggestion("use 100 to 100000");
    }
    if a.dml_batch_size == 0 || a.dml_batch_size > 100_000 {
        return Err(eyre!("--dml-batch-size {} is out of range", a.dml_batch_size)).suggestion("use 1 to 100000");
    }
    let found = credentials::resolve(a.conn.password.clone(), a.conn.ask_pass, a.conn.conf.as_ref())?;
    let user = a.conn.user.clone().or(found.user.clone()).or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "root".into());
    let host = if a.conn.host == "127.0.0.1" { found.host.clone().unwrap_or_else(|| a.conn.host.clone()) } else { a.conn.host.clone() };
    let port = if a.conn.port == 3306 { found.port.unwrap_or(a.conn.port) } else { a.conn.port };
    let source = ConnectionConfig { host, port, user: user.clone(), password: Secret::new(found.password.clone()), socket: None };
    // The target's credentials: --target-conf, else the same sources as the source's.
    let (target_user, target_password) = match &a.target_conf {
        Some(path) => {
            if !path.exists() {
                return Err(eyre!("--target-conf {} does not exist", path.display()))
                    .suggestion("give the path of a my.cnf-style file with a [client] section for the target");
            }
            let m = credentials::read_my_cnf(path)?;
            (m.get("user").cloned(), m.get("password").cloned())
        }
        None => (None, found.password.clone()),
    };
    let target = ConnectionConfig {
        host: target_host,
        port: a.target_port,
        user: a.target_user.clone().or(target_user).unwrap_or(user),
        password: Secret::new(target_password),
        socket: None,
    };
    let table_refs: Vec<&str> = tables.iter().map(String::as_str).collect();
    let target_database = a.target_database.clone().unwrap_or_else(|| database.clone());
    let mut cfg = MoveTablesConfig::new(source, target, &database, &target_database, &table_refs);
    cfg.alter = a.alter.clone().filter(|s| !s.trim().is_empty());
    if let Some(alter) = &cfg.alter {
        crate::engine::plan::alter::parse_alter(alter).suggestion("give --alter one ALTER clause list, e.g. \"ADD COLUMN c INT\"; nothing was changed")?;
    }
    super::refuse_foreign_flag("--postpone-cut-over-flag-file", a.postpone_cut_over_flag_file.as_deref())?;
    cfg.chunk_size = a.chunk_size;
    cfg.chunk_target = Duration::from_millis(a.chunk_time_millis.max(10));
    cfg.dml_batch_size = a.dml_batch_size;
    cfg.postpone_cut_over = a.postpone_cut_over;
    cfg.postpone_cut_over_flag_file = a.postpone_cut_over_flag_file.clone();
    cfg.cut_over_lock_timeout = Duration::from_secs(a.cut_over_lock_timeout_seconds.max(1));
    cfg.default_retries = a.default_retries.max(1);
    cfg.hooks_path = a.hooks_path.clone();
    cfg.hook_hints = HookHints {
        hint: a.hooks_hint.clone().unwrap_or_default(),
        owner: a.hooks_hint_owner.clone().unwrap_or_default(),
        token: a.hooks_hint_token.clone().unwrap_or_default(),
    };
    cfg.hook_timeout = Duration::from_secs(a.hook_timeout_seconds.max(1));
    cfg.resume = a.resume;
    cfg.execute = !a.dry_run;
    cfg.retry_for = Duration::from_secs(a.retry_seconds.max(1));
    throttle_flags(a, &mut cfg)?;
    let argv: Vec<String> = argv.iter().filter(|s| s.as_str() != "--rollback").cloned().collect();
    cfg.resume_command = Some(resume_command(&argv));
    Ok(cfg)
}

/// The throttle flags, as `migrate` reads them, into the move's throttle settings (checked before connecting).
fn throttle_flags(a: &MoveTablesArgs, cfg: &mut MoveTablesConfig) -> Result<()> {
    if a.throttle.max_lag_millis < 100 {
        return Err(eyre!("--max-lag-millis {} is too small", a.throttle.max_lag_millis)).suggestion("use at least 100");
    }
    // `cfg.throttle` was made with the move's source: replicas default to its port, as before.
    super::throttle_settings(&a.throttle, &mut cfg.throttle)
}

pub async fn run(a: MoveTablesArgs, argv: Vec<String>) -> Result<i32> {
    let use_console = !a.headless && !a.status_json && !a.rollback && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    init_tracing(use_console, a.verbose, a.debug);
    let cfg = match move_config(&a, &argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e:?}");
            return Ok(exit::REFUSED);
        }
    };
    if a.rollback {
        return match move_tables::rollback(&cfg).await {
            Ok(stmt) if !cfg.execute => {
                say(&format!("dry run: the tables are fenced; --rollback without --dry-run would run `{stmt};` on {}", cfg.source.display()));
                Ok(exit::OK)
            }
            Ok(stmt) => {
                say(&format!("Rolled back: ran `{stmt};` on {}; the source tables serve again", cfg.source.display()));
                say(&format!(
                    "the target's copies in {}/{} are left as they are; drop them when you no longer need them",
                    cfg.target.display(),
                    cfg.target_database
                ));
                Ok(exit::OK)
            }
            Err(e) => {
                eprintln!("Error: {e:?}");
                Ok(exit::REFUSED)
            }
        };
    }
    if cfg.execute && !cfg.resume {
        if let Err(e) = super::create_postpone_flag(cfg.postpone_cut_over_flag_file.as_deref()) {
            eprintln!("Error: {e:?}");
            return Ok(exit::REFUSED);
        }
    }
    let theme = if use_console { Some(Theme::select(a.theme.as_deref())?) } else { None };
    let first = cfg.tables.first().cloned().unwrap_or_default();
    let socket = a.serve_socket_file.clone().unwrap_or_else(|| PathBuf::from(format!("/tmp/gh-ost.{}.{first}.sock", cfg.database)));
    // Bound before the engine starts: a squatted socket path is refused before anything changes.
    let listener = match control::bind(socket.clone(), None).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Error: {e:?}");
            return Ok(exit::REFUSED);
        }
    };
    let (handle, join) = move_tables::start(cfg.clone());
    let shutdown = CancellationToken::new();
    let control_task = {
        let opts = ControlOptions { table: first.clone(), ..ControlOptions::default() };
        let (h, sd) = (handle.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = control::serve_listener(listener, h, opts, sd).await {
                tracing::error!("control socket: {e:#}");
            }
        })
    };
    let signal_task = super::stop_on_signals(handle.clone());
    let front = super::FrontEnd::run(&handle, theme, &first, a.status_json, &socket).await;
    let result = join.await.map_err(|e| eyre!("engine task: {e}"))?;
    front.stop().await;
    shutdown.cancel();
    signal_task.abort();
    let _ = control_task.await;
    match result {
        Ok(MoveOutcome::Done { drain_gtid }) => {
            say(&format!(
                "Done: {} moved to {}/{}; drained to {drain_gtid}; the source tables are kept as {}",
                cfg.tables.join(", "),
                cfg.target.display(),
                cfg.target_database,
                cfg.tables.iter().map(|t| MoveTablesConfig::old_table(t)).collect::<Vec<_>>().join(", ")
            ));
            Ok(exit::OK)
        }
        Ok(MoveOutcome::DryRun { plan }) => {
            for line in plan {
                say(&line);
            }
            Ok(exit::OK)
        }
        Ok(MoveOutcome::Stopped { state }) => {
            super::write_state(&state, a.state_file.as_deref())?;
            eprintln!("stopped ({}) with a checkpoint; resume with: {}", state.reason, state.resume_command.clone().unwrap_or_default());
            Ok(exit::STOPPED)
        }
        Err(e) => {
            let reached_setup = handle.snapshot().phase_seconds.iter().any(|(p, _)| *p >= Phase::Setup && !p.is_terminal());
            eprintln!("Error: {e:?}");
            if reached_setup {
                eprintln!("resume with: {}", cfg.resume_command.clone().unwrap_or_default());
                Ok(exit::FAILED)
            } else {
                Ok(exit::REFUSED)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Cmd};
    use clap::{CommandFactory, FromArgMatches};

    fn parse(extra: &[&str]) -> std::result::Result<(MoveTablesArgs, Vec<String>), String> {
        let argv: Vec<String> = ["revenant", "move-tables"].iter().chain(extra).map(|s| s.to_string()).collect();
        let argv = super::super::expand_config(argv, &Cli::command()).map_err(|e| format!("{e:?}"))?;
        let m = Cli::command().try_get_matches_from(&argv).map_err(|e| e.to_string())?;
        match Cli::from_arg_matches(&m).map_err(|e| e.to_string())?.command {
            Cmd::MoveTables(a) => Ok((a, argv)),
            _ => Err("not move-tables".into()),
        }
    }

    #[test]
    fn toml_config_and_flags_make_the_same_move() {
        let dir = std::env::temp_dir().join(format!("revenant-move-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("move.toml");
        std::fs::write(
            &f,
            "database = \"shop\"\ntables = [\"orders\", \"items\"]\ntarget-host = \"db-new\"\ntarget-port = 3307\n\
             chunk-size = 500\npostpone-cut-over = true\n",
        )
        .expect("write");
        let (a, argv) = parse(&["--config", f.to_str().expect("utf8"), "--target-database", "shop2", "--user", "u"]).expect("parse");
        let cfg = move_config(&a, &argv).expect("config");
        assert_eq!(cfg.tables, vec!["orders".to_string(), "items".to_string()]);
        assert_eq!((cfg.target.host.as_str(), cfg.target.port), ("db-new", 3307));
        assert_eq!((cfg.database.as_str(), cfg.target_database.as_str()), ("shop", "shop2"));
        assert_eq!(cfg.chunk_size, 500);
        assert!(cfg.postpone_cut_over);
        assert_eq!(cfg.target.user, "u", "the target user defaults to the source's");
        let (a, argv) = parse(&["--database", "shop", "--tables", "orders,items", "--target-host", "db-new", "--target-port", "3307"])
            .expect("parse flags");
        let flags = move_config(&a, &argv).expect("config");
        assert_eq!(flags.tables, cfg.tables);
        assert_eq!(flags.target_database, "shop", "the target database defaults to --database");
        std::fs::write(&f, "tabels = [\"a\"]\n").expect("write");
        let e = parse(&["--config", f.to_str().expect("utf8")]).expect_err("unknown key");
        assert!(e.contains("unknown key 'tabels'"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_sample_config_parses() {
        let f = concat!(env!("CARGO_MANIFEST_DIR"), "/sample-configs/move-tables.toml");
        // Parsed only: its credentials files do not exist here.
        let (a, argv) = parse(&["--config", f]).expect("parse the sample");
        assert!(argv.iter().any(|x| x == "--target-host=db-new.internal"), "{argv:?}");
        assert!(argv.iter().any(|x| x.contains("order_items")), "{argv:?}");
        assert!(!a.dry_run, "the sample moves (no --dry-run)");
    }

    #[test]
    fn migrate_throttle_flags_reach_the_move_and_bad_ones_are_refused() {
        let base = ["--database", "d", "--tables", "a", "--target-host", "h"];
        let with = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            let (a, argv) = parse(&args).expect("parse");
            move_config(&a, &argv)
        };
        let cfg = with(&["--throttle-flag-file", "/tmp/t.flag", "--max-lag-millis", "900", "--max-load", "Threads_running=30", "--nice-ratio", "0.5"])
            .expect("config");
        assert!(cfg.execute, "a move runs without --dry-run (the issue's command line has no --execute)");
        assert_eq!(cfg.throttle.throttle_flag_file, Some(PathBuf::from("/tmp/t.flag")));
        assert_eq!((cfg.throttle.max_lag_millis, cfg.throttle.nice_ratio), (900, 0.5));
        assert_eq!(crate::engine::throttle::throttlers::format_load(&cfg.throttle.max_load), "Threads_running=30");
        assert!(with(&["--execute"]).expect("config").execute);
        assert!(!with(&["--dry-run"]).expect("config").execute);
        let e = format!("{:?}", with(&["--max-load", "Threads_running"]).expect_err("bad max-load"));
        assert!(e.contains("--max-load"), "{e}");
        let e = format!("{:?}", with(&["--throttle-http", "ftp://x"]).expect_err("bad url"));
        assert!(e.contains("--throttle-http"), "{e}");
    }

    #[test]
    fn missing_or_repeated_tables_are_refused_and_the_resume_command_has_no_rollback() {
        let (a, argv) = parse(&["--database", "d", "--target-host", "h"]).expect("parse");
        assert!(format!("{:?}", move_config(&a, &argv).expect_err("no tables")).contains("--tables is required"));
        let (a, argv) = parse(&["--database", "d", "--tables", "a,a", "--target-host", "h"]).expect("parse");
        assert!(format!("{:?}", move_config(&a, &argv).expect_err("twice")).contains("twice"));
        let (a, argv) = parse(&["--database", "d", "--tables", "a", "--target-host", "h", "--rollback", "--password", "pw"]).expect("parse");
        let cfg = move_config(&a, &argv).expect("config");
        let c = cfg.resume_command.unwrap_or_default();
        assert!(c.ends_with("--resume") && !c.contains("--rollback") && !c.contains("pw"), "{c}");
    }
}
