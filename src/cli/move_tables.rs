//! `revenant move-tables`: turns the flags (and `--config` TOML) into a [`MoveTablesConfig`] with credentials for
//! both servers, runs the move with the console or headless status lines and the control socket, and reports how
//! it ended; `--rollback` gives fenced tables back to the source.

use std::io::IsTerminal;
use std::path::PathBuf;

use color_eyre::eyre::{eyre, Result};
use color_eyre::Section;

use super::args::{MoveTablesArgs, TargetArgs};
use super::{credentials, exit, init_tracing, resume_command, say, session, settings};
use crate::console::Theme;
use crate::control::{self, ControlOptions};
use crate::engine::config::{ConnectionConfig, Secret};
use crate::engine::pipeline::move_tables::{self, MoveOutcome, MoveTablesConfig};

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
    let t = &a.target;
    let target_host = t.target_host.clone().ok_or_else(|| eyre!("--target-host is required")).suggestion("give the server the tables move to")?;
    if a.shared.throttle.max_lag_millis < 100 {
        return Err(eyre!("--max-lag-millis {} is too small", a.shared.throttle.max_lag_millis)).suggestion("use at least 100");
    }
    let (source, found) = settings::connection(&a.conn)?;
    // The target's credentials: --target-conf, else the same sources as the source's.
    let (target_user, target_password, target_file) = match &t.target_conf {
        Some(path) => {
            if !path.exists() {
                return Err(eyre!("--target-conf {} does not exist", path.display()))
                    .suggestion("give the path of a my.cnf-style file with a [client] section for the target");
            }
            let m = credentials::read_my_cnf(path)?;
            (m.get("user").cloned(), m.get("password").cloned(), m)
        }
        None => (None, found.password.clone(), Default::default()),
    };
    let tls = target_tls(t, &target_file, &source)?;
    super::tls::announce(&format!("the target {target_host}:{}", t.target_port), tls.as_ref());
    let target = ConnectionConfig {
        host: target_host,
        port: t.target_port,
        user: t.target_user.clone().or(target_user).unwrap_or_else(|| source.user.clone()),
        password: Secret::new(target_password),
        socket: None,
        tls,
        gtid_domain_id: None,
    };
    let table_refs: Vec<&str> = tables.iter().map(String::as_str).collect();
    let target_database = t.target_database.clone().unwrap_or_else(|| database.clone());
    let mut cfg = MoveTablesConfig::new(source, target, &database, &target_database, &table_refs);
    // Replicas without a port take the source's.
    settings::apply_shared(&a.shared, cfg.source.port, &mut cfg.run)?;
    cfg.alter = a.alter.clone().filter(|s| !s.trim().is_empty());
    if let Some(alter) = &cfg.alter {
        crate::engine::plan::alter::parse_alter(alter).suggestion("give --alter one ALTER clause list, e.g. \"ADD COLUMN c INT\"; nothing was changed")?;
    }
    super::refuse_foreign_flag("--postpone-cut-over-flag-file", cfg.run.postpone_cut_over_flag_file.as_deref())?;
    cfg.run.execute = !a.dry_run;
    cfg.checksum = a.checksum;
    cfg.failover = settings::failover(&a.failover)?;
    cfg.target_failover_candidates =
        t.target_failover_candidates.iter().map(|c| settings::candidate("target-failover-candidates", c)).collect::<Result<_>>()?;
    let argv: Vec<String> = argv.iter().filter(|s| s.as_str() != "--rollback").cloned().collect();
    cfg.run.resume_command = Some(resume_command(&argv));
    Ok(cfg)
}

/// The target's TLS: its `--target-ssl...` flags, else `--target-conf`'s ssl keys, else the source's TLS.
fn target_tls(
    t: &TargetArgs,
    target_file: &std::collections::HashMap<String, String>,
    source: &ConnectionConfig,
) -> Result<Option<crate::engine::config::TlsConfig>> {
    let flags = super::tls::TlsFlags {
        prefix: "target-ssl",
        ssl: t.target_ssl,
        ca: t.target_ssl_ca.clone(),
        cert: t.target_ssl_cert.clone(),
        key: t.target_ssl_key.clone(),
        allow_insecure: t.target_ssl_allow_insecure,
        mode: t.target_ssl_mode.clone(),
    };
    let file_has_tls = credentials::TLS_KEYS.iter().any(|k| target_file.contains_key(*k));
    if !flags.any() && !file_has_tls {
        return Ok(source.tls.clone());
    }
    super::tls::resolve(&flags, target_file)
}

pub async fn run(a: MoveTablesArgs, argv: Vec<String>) -> Result<i32> {
    let out = a.shared.output.clone();
    let use_console = !out.headless && !out.status_json && !a.rollback && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    init_tracing(use_console, out.log_level());
    let cfg = match move_config(&a, &argv) {
        Ok(c) => c,
        Err(e) => return Ok(super::refused(&e)),
    };
    if a.rollback {
        return match move_tables::rollback(&cfg).await {
            Ok(stmt) if !cfg.run.execute => {
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
    if cfg.run.execute && !cfg.run.resume {
        if let Err(e) = super::create_postpone_flag(cfg.run.postpone_cut_over_flag_file.as_deref()) {
            eprintln!("Error: {e:?}");
            return Ok(exit::REFUSED);
        }
    }
    let theme = if use_console { Some(Theme::select(out.theme.as_deref())?) } else { None };
    let first = cfg.tables.first().cloned().unwrap_or_default();
    let socket = out.serve_socket_file.clone().unwrap_or_else(|| PathBuf::from(format!("/tmp/gh-ost.{}.{first}.sock", cfg.database)));
    // Bound before the engine starts: a squatted socket path is refused before anything changes.
    let listener = match control::bind(socket.clone(), None).await {
        Ok(l) => l,
        Err(e) => return Ok(super::refused(&e)),
    };
    let control = Some((listener, ControlOptions { table: first.clone(), ..ControlOptions::default() }));
    let serve = session::Serve { control, metrics: None, statsd: None, theme, confirm_name: first, status_json: out.status_json, socket };
    let (handle, join) = move_tables::start(cfg.clone());
    let result = session::drive(&handle, join, serve).await?;
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
        Ok(MoveOutcome::DryRun { plan }) => Ok(super::print_plan(&plan)),
        Ok(MoveOutcome::Stopped { state }) => {
            super::stopped(&state, out.state_file.as_deref(), &format!("stopped ({})", state.reason), state.resume_command.as_deref())
        }
        Err(e) => Ok(super::failed(&e, &handle, cfg.run.resume_command.as_deref())),
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
    fn a_move_verifies_unless_checksum_is_false() {
        let base = ["--database", "shop", "--tables", "t", "--target-host", "db-new"];
        let cfg = |extra: &[&str]| {
            let argv: Vec<&str> = base.iter().chain(extra).copied().collect();
            let (a, argv) = parse(&argv).expect("parse");
            move_config(&a, &argv).expect("config").checksum
        };
        assert!(cfg(&[]), "on by default");
        assert!(cfg(&["--checksum"]));
        assert!(!cfg(&["--checksum=false"]));
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
        assert_eq!(cfg.run.chunk_size, 500);
        assert!(cfg.run.postpone_cut_over);
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
    fn the_target_takes_its_own_tls_flags_else_the_sources() {
        use crate::engine::config::TlsVerify;
        let base = ["--database", "shop", "--tables", "orders", "--target-host", "db-new", "--user", "u"];
        let cfg_of = |extra: &[&str]| {
            let all: Vec<&str> = base.iter().chain(extra).copied().collect();
            let (a, argv) = parse(&all).expect("parse");
            move_config(&a, &argv)
        };
        let inherited = cfg_of(&["--ssl", "--ssl-allow-insecure"]).expect("config");
        assert_eq!(inherited.source.tls.as_ref().map(|t| t.verify), Some(TlsVerify::Insecure));
        assert_eq!(inherited.target.tls, inherited.source.tls, "without --target-ssl* the target uses the source's TLS");
        let own = cfg_of(&["--ssl", "--target-ssl-mode", "VERIFY_CA"]).expect("config");
        assert_eq!(own.target.tls.as_ref().map(|t| t.verify), Some(TlsVerify::CaOnly));
        assert_eq!(own.source.tls.as_ref().map(|t| t.verify), Some(TlsVerify::Identity));
        let off = cfg_of(&["--ssl", "--target-ssl-mode", "DISABLED"]).expect("config");
        assert_eq!(off.target.tls, None);
        let e = cfg_of(&["--target-ssl-allow-insecure"]).expect_err("needs --target-ssl");
        assert!(format!("{e:?}").contains("--target-ssl-allow-insecure requires --target-ssl"), "{e:?}");
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
        assert!(cfg.run.execute, "a move runs without --dry-run (the issue's command line has no --execute)");
        assert_eq!(cfg.run.throttle.throttle_flag_file, Some(PathBuf::from("/tmp/t.flag")));
        assert_eq!((cfg.run.throttle.max_lag_millis, cfg.run.throttle.nice_ratio), (900, 0.5));
        assert_eq!(crate::engine::throttle::throttlers::format_load(&cfg.run.throttle.max_load), "Threads_running=30");
        assert!(with(&["--execute"]).expect("config").run.execute);
        assert!(!with(&["--dry-run"]).expect("config").run.execute);
        let e = format!("{:?}", with(&["--max-load", "Threads_running"]).expect_err("bad max-load"));
        assert!(e.contains("--max-load"), "{e}");
        let e = format!("{:?}", with(&["--throttle-http", "ftp://x"]).expect_err("bad url"));
        assert!(e.contains("--throttle-http"), "{e}");
    }

    #[test]
    fn failover_flags_name_the_source_and_the_target_candidates() {
        let base = ["--database", "d", "--tables", "a", "--target-host", "h"];
        let with = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            let (a, argv) = parse(&args).expect("parse");
            move_config(&a, &argv)
        };
        let cfg = with(&["--failover-candidates", "s2:3307", "--target-failover-candidates", "t2:3308,t3:3309", "--failover-timeout", "90s"]).expect("config");
        assert_eq!(cfg.failover.candidates, vec![("s2".to_string(), 3307)]);
        assert_eq!(cfg.target_failover_candidates, vec![("t2".to_string(), 3308), ("t3".to_string(), 3309)]);
        assert_eq!(cfg.failover.timeout, std::time::Duration::from_secs(90));
        assert_eq!(with(&[]).expect("config").failover.timeout, std::time::Duration::from_secs(600), "followed by default, as migrate");
        let e = format!("{:?}", with(&["--target-failover-candidates", "t2"]).expect_err("no port"));
        assert!(e.contains("--target-failover-candidates `t2` is not HOST:PORT"), "{e}");
    }

    #[test]
    fn missing_or_repeated_tables_are_refused_and_the_resume_command_has_no_rollback() {
        let (a, argv) = parse(&["--database", "d", "--target-host", "h"]).expect("parse");
        assert!(format!("{:?}", move_config(&a, &argv).expect_err("no tables")).contains("--tables is required"));
        let (a, argv) = parse(&["--database", "d", "--tables", "a,a", "--target-host", "h"]).expect("parse");
        assert!(format!("{:?}", move_config(&a, &argv).expect_err("twice")).contains("twice"));
        let (a, argv) = parse(&["--database", "d", "--tables", "a", "--target-host", "h", "--rollback", "--password", "pw"]).expect("parse");
        let cfg = move_config(&a, &argv).expect("config");
        let c = cfg.run.resume_command.unwrap_or_default();
        assert!(c.ends_with("--resume") && !c.contains("--rollback") && !c.contains("pw"), "{c}");
    }
}
