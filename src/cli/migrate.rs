//! `revenant migrate`: turns the flags (and `--config` TOML) into a [`MigrationConfig`], refuses what can be
//! refused before anything changes, runs the migration with its front end and control socket, and reports how it
//! ended (exit codes in [`super::exit`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use color_eyre::eyre::{bail, eyre, Result, WrapErr};
use color_eyre::Section;

use super::args::{self, MigrateArgs};
use super::{failed, print_plan, refuse_foreign_flag, refused, resume_command, say, session, settings, stopped, exit, init_tracing};
use crate::console::Theme;
use crate::control::{self, ControlOptions};
use crate::engine::config::{CutOverMode, MigrationConfig, OnReplica};
use crate::engine::cutover::triggers::TriggerNaming;
use crate::engine::pipeline::migrate::{self, Outcome, StateDump};
use crate::engine::EngineHandle;

/// The migration's settings from the flags; everything that can be checked without a server is checked here.
fn migration_config(a: &MigrateArgs, argv: &[String]) -> Result<MigrationConfig> {
    let database = a.database.clone().ok_or_else(|| eyre!("--database is required")).suggestion("name the table's database with --database")?;
    let table = a.table.clone().ok_or_else(|| eyre!("--table is required")).suggestion("name the table with --table")?;
    let alter = a.alter.clone().ok_or_else(|| eyre!("--alter is required")).suggestion("give the change, e.g. --alter \"ADD COLUMN c INT\"")?;
    // One ALTER clause list, nothing else: refused here, before anything connects.
    crate::engine::plan::alter::parse_alter(&alter).suggestion("give --alter one ALTER clause list, e.g. \"ADD COLUMN c INT, DROP KEY k\"; nothing was changed")?;
    if a.approve_renamed_columns && a.skip_renamed_columns {
        bail!("--approve-renamed-columns and --skip-renamed-columns exclude each other");
    }
    a.ghost.check()?;
    let (source, _) = settings::connection(&a.conn)?;
    let mut cfg = MigrationConfig::new(source, &database, &table, &alter);
    settings::apply_shared(&a.shared, cfg.source.port, &mut cfg.run)?;
    cfg.run.execute = a.execute;
    cfg.cut_over = match a.cut_over {
        args::CutOverArg::Atomic => CutOverMode::Atomic,
        args::CutOverArg::TwoStep => CutOverMode::TwoStep,
    };
    cfg.approve_renamed_columns = a.approve_renamed_columns;
    cfg.allow_nullable_unique_key = a.allow_nullable_unique_key;
    cfg.skip_renamed_columns = a.skip_renamed_columns;
    cfg.allow_on_master = true;
    cfg.on_replica = on_replica(a)?;
    cfg.allow_master_master = a.ghost.allow_master_master;
    cfg.ok_to_drop_table = a.ok_to_drop_table;
    cfg.initially_drop_ghost_table = a.initially_drop_ghost_table;
    cfg.initially_drop_old_table = a.initially_drop_old_table;
    refuse_foreign_flag("--postpone-cut-over-flag-file", cfg.run.postpone_cut_over_flag_file.as_deref())?;
    cfg.exact_rowcount = a.exact_rowcount;
    cfg.checksum = a.checksum;
    cfg.defer_secondary_indexes = a.defer_secondary_indexes;
    cfg.copy_threads = a.copy_threads.map(usize::from);
    cfg.attempt_instant_ddl = a.attempt_instant_ddl;
    cfg.analyze_ghost_before_cutover = a.analyze_ghost_table_before_cutover;
    cfg.force_table_names = a.force_table_names.clone();
    cfg.discard_foreign_keys = a.discard_foreign_keys;
    cfg.keep_checkpoint = a.ghost.checkpoint;
    cfg.revert_from = revert_from(a)?;
    cfg.triggers = trigger_naming(a)?;
    cfg.assume_master_host = a.assume_master_host.as_deref().map(host_port).transpose()?;
    cfg.master_user = a.master_user.clone().filter(|u| !u.is_empty());
    cfg.replica_server_id = a.replica_server_id;
    cfg.failover = settings::failover(&a.failover)?;
    // Checked here, before replica mode connects to anything (bound later, in before_start).
    a.metrics_addr.as_deref().map(control::metrics::parse_addr).transpose()?;
    statsd_options(a)?;
    check_artifact_names(&cfg)?;
    cfg.run.resume = cfg.run.resume || a.resume_state.is_some();
    cfg.run.resume_command = Some(resume_command(argv));
    cfg.run.hooks_status_interval = Duration::from_secs(settings::within("hooks-status-interval", a.hooks_status_interval, 0, 86_400, "seconds")?.max(1));
    // A hooks directory that is not there is refused before anything happens.
    crate::engine::hooks::Hooks::for_migration(&cfg)?;
    Ok(cfg)
}

/// `--assume-master-host HOST[:PORT]`.
fn host_port(text: &str) -> Result<(String, u16)> {
    let bad = || eyre!("--assume-master-host `{text}` is not HOST[:PORT]");
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (text, 3306),
    };
    if host.is_empty() || port == 0 {
        return Err(bad()).suggestion("give e.g. --assume-master-host=db-primary.example:3306");
    }
    Ok((host.to_string(), port))
}

/// `--include-triggers` with its naming flags, checked as gh-ost checks them.
fn trigger_naming(a: &MigrateArgs) -> Result<Option<TriggerNaming>> {
    let suffix = a.trigger_suffix.clone().filter(|s| !s.is_empty());
    match (a.include_triggers, suffix) {
        (false, None) if a.remove_trigger_suffix_if_exists => {
            Err(eyre!("--remove-trigger-suffix-if-exists requires --include-triggers and --trigger-suffix")).suggestion("give all three, or none")
        }
        (false, None) => Ok(None),
        (false, Some(_)) => Err(eyre!("--trigger-suffix requires --include-triggers")).suggestion("add --include-triggers, or leave --trigger-suffix out"),
        (true, None) => Err(eyre!("--include-triggers needs --trigger-suffix"))
            .suggestion("name the suffix of the new table's triggers, e.g. --trigger-suffix=_v2 (trigger names are unique in a database)"),
        (true, Some(s)) if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Err(eyre!("--trigger-suffix `{s}`: only letters, digits and `_` are allowed (as gh-ost)")).suggestion("give e.g. --trigger-suffix=_v2")
        }
        (true, Some(suffix)) => Ok(Some(TriggerNaming { suffix, remove_suffix_if_exists: a.remove_trigger_suffix_if_exists })),
    }
}

/// gh-ost's `--test-on-replica` (with `--test-on-replica-skip-replica-stop`) and `--migrate-on-replica`, checked
/// as gh-ost checks them.
fn on_replica(a: &MigrateArgs) -> Result<Option<OnReplica>> {
    if a.test_on_replica_skip_replica_stop && !a.test_on_replica {
        bail!("--test-on-replica-skip-replica-stop requires --test-on-replica");
    }
    if a.test_on_replica && a.migrate_on_replica {
        bail!("--migrate-on-replica and --test-on-replica are mutually exclusive");
    }
    let mode = match (a.test_on_replica, a.migrate_on_replica) {
        (true, _) => OnReplica::Test { stop_replication: !a.test_on_replica_skip_replica_stop },
        (false, true) => OnReplica::Migrate,
        (false, false) => return Ok(None),
    };
    if a.allow_on_master {
        let flag = if a.test_on_replica { "--test-on-replica" } else { "--migrate-on-replica" };
        return Err(eyre!("--allow-on-master and {flag} are mutually exclusive")).suggestion(format!("{flag} runs on the replica --host names; leave out --allow-on-master"));
    }
    Ok(Some(mode))
}

/// The helper tables' names must be plain identifiers that fit the server's 64 characters.
fn check_artifact_names(cfg: &MigrationConfig) -> Result<()> {
    if let Some(name) = &cfg.force_table_names {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            return Err(eyre!("--force-table-names `{name}`: only letters, digits, `_` and `$` are allowed"))
                .suggestion("give a plain name, e.g. --force-table-names=orders_v2");
        }
    }
    // A revert renames the migrated table to `_<base>_rev_del`, its longest name.
    let longest = if cfg.revert_from.is_some() { cfg.reverted_table() } else { cfg.ghost_table() };
    if longest.chars().count() > 64 {
        return Err(eyre!("the helper table name `{longest}` is longer than the server's 64 characters"))
            .suggestion(format!(
                "give a shorter base for the helper tables with --force-table-names=NAME (at most {} characters)",
                64 - (longest.chars().count() - cfg.artifact_base().chars().count())
            ));
    }
    Ok(())
}

/// Checks a `--resume-state` dump against the table's checkpoint; refuses when they disagree.
async fn check_state_dump(path: &PathBuf, cfg: &MigrationConfig) -> Result<()> {
    let text = std::fs::read_to_string(path).wrap_err_with(|| format!("reading --resume-state {}", path.display()))?;
    let dump: StateDump = serde_json::from_str(text.trim())
        .map_err(|e| eyre!("--resume-state {} is not a revenant state dump: {e}", path.display()))?;
    let mut conn = crate::engine::connection::connect(cfg.source.opts()).await.wrap_err("connecting to check the state dump")?;
    let st = crate::engine::checkpoint::read(&mut conn, &cfg.database, &cfg.checkpoint_table())
        .await?
        .ok_or_else(|| eyre!("the state dump names a migration, but {}.{} has no checkpoint", cfg.database, cfg.checkpoint_table()))?;
    let _ = conn.disconnect().await;
    let mut problems = Vec::new();
    if dump.database != cfg.database || dump.table != cfg.table {
        problems.push(format!("it is for {}.{}", dump.database, dump.table));
    }
    if dump.alter_fingerprint != st.alter_fingerprint {
        problems.push("its ALTER differs from the checkpoint's".to_string());
    }
    if dump.applied.applied_gtid_set != st.applied_gtid_set {
        problems.push(format!(
            "its applied position ({}) is not the checkpoint's ({})",
            dump.applied.applied_gtid_set, st.applied_gtid_set
        ));
    }
    if dump.copy_watermark != st.copy_watermark || dump.rows_copied != st.rows_copied {
        problems.push("its copy watermark is not the checkpoint's".to_string());
    }
    if !problems.is_empty() {
        return Err(eyre!("the state dump {} disagrees with the checkpoint table: {}", path.display(), problems.join("; ")))
            .suggestion("the dump is stale or was edited; resume with --resume alone (the checkpoint table is authoritative)");
    }
    Ok(())
}

/// `revenant migrate`: the settings, the checks a run needs before it starts (postpone flag, state dump,
/// listeners), then the engine with its front end until it ends.
pub(super) async fn run(a: MigrateArgs, argv: Vec<String>) -> Result<i32> {
    let out = a.shared.output.clone();
    let use_console = !out.headless && !out.status_json && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    init_tracing(use_console, out.log_level());
    let cfg = match migration_config(&a, &argv) {
        Ok(c) => c,
        Err(e) => return Ok(refused(&e)),
    };
    // gh-ost's default topology: --host may name a replica; the table is changed on its primary.
    let cfg = match crate::engine::plan::topology::resolve(cfg).await {
        Ok(c) => c,
        Err(e) => return Ok(refused(&e)),
    };
    let mut cfg = cfg;
    if cfg.revert_from.is_some() {
        // A revert renames the migrated table to its own name, whatever the migration's old table was called.
        cfg.old_table_name = Some(cfg.reverted_table());
    } else if let Err(e) = crate::engine::plan::old_table::resolve(&mut cfg, a.timestamp_old_table).await {
        return Ok(refused(&e));
    }
    let serve = match before_start(&a, &cfg, use_console).await {
        Ok(s) => s,
        Err(e) => return Ok(refused(&e)),
    };
    let (handle, join) = migrate::start(cfg.clone());
    let result = session::drive(&handle, join, serve).await?;
    finish(result, &handle, &a, &cfg)
}

/// Everything that can refuse the run before the engine starts, so that nothing has changed when it does: the
/// postpone flag file, a `--resume-state` dump, the metrics address and the control socket (gh-ost's default
/// path; a squatted path is refused).
async fn before_start(a: &MigrateArgs, cfg: &MigrationConfig, use_console: bool) -> Result<session::Serve> {
    let out = &a.shared.output;
    if cfg.run.execute {
        super::create_postpone_flag(cfg.run.postpone_cut_over_flag_file.as_deref())?;
    }
    if let Some(p) = &a.resume_state {
        check_state_dump(p, cfg).await?;
    }
    let metrics = match a.metrics_addr.as_deref().map(control::metrics::parse_addr).transpose()? {
        Some(addr) => Some(control::metrics::bind(addr).await?),
        None => None,
    };
    let statsd = match statsd_options(a)? {
        Some(o) => Some((control::statsd::client(&o, &cfg.database, &cfg.table)?, o.runtime_every)),
        None => None,
    };
    let theme = if use_console { Some(Theme::select(out.theme.as_deref())?) } else { None };
    let socket = out
        .serve_socket_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/gh-ost.{}.{}.sock", cfg.database, cfg.table)));
    let control = match cfg.run.execute {
        true => {
            let l = control::bind(socket.clone(), a.serve_tcp_port).await?;
            if let Some(f) = l.token_file() {
                eprintln!("control TCP port 127.0.0.1:{}: send `token=<contents of {}>` first", a.serve_tcp_port.unwrap_or(0), f.display());
            }
            Some((l, control_options(a, cfg)))
        }
        false => None,
    };
    Ok(session::Serve { control, metrics, statsd, theme, confirm_name: cfg.table.clone(), status_json: out.status_json, socket })
}

/// `--revert` with `--old-table` (each needs the other; the name is a plain table name).
fn revert_from(a: &MigrateArgs) -> Result<Option<String>> {
    match (a.revert, &a.old_table) {
        (false, None) => Ok(None),
        (true, Some(t)) if !t.is_empty() && t.len() <= 64 && !t.contains(['`', '.', '/', '\\', '\0']) => Ok(Some(t.clone())),
        (true, Some(t)) => Err(eyre!("--old-table {t}: not a table name")).suggestion("give the migration's old table, e.g. --old-table _mytable_del"),
        (true, None) => Err(eyre!("--revert needs --old-table")).suggestion("name the migration's old table, e.g. --old-table _mytable_del"),
        (false, Some(_)) => Err(eyre!("--old-table is used only with --revert")).suggestion("add --revert to revert a completed migration, or leave --old-table out"),
    }
}

/// `--statsd-addr`, `--statsd-tags`, `--runtime-metrics-interval`, checked (tags without an address are refused:
/// they would do nothing).
fn statsd_options(a: &MigrateArgs) -> Result<Option<control::statsd::StatsdOptions>> {
    let every = settings::within("runtime-metrics-interval", a.runtime_metrics_interval, 0, 86_400, "seconds")?;
    let tags = control::statsd::parse_tags(&a.statsd_tags)?;
    let Some(addr) = a.statsd_addr.as_deref() else {
        if !tags.is_empty() {
            return Err(eyre!("--statsd-tags needs --statsd-addr")).suggestion("add --statsd-addr host:port, or leave --statsd-tags out");
        }
        return Ok(None);
    };
    let runtime_every = (every > 0).then(|| Duration::from_secs(every));
    Ok(Some(control::statsd::StatsdOptions { addr: control::statsd::parse_addr(addr)?, tags, runtime_every }))
}

/// The control socket's options: the table, gh-ost's named cut-over/panic, the flag files it may create.
fn control_options(a: &MigrateArgs, cfg: &MigrationConfig) -> ControlOptions {
    ControlOptions {
        table: cfg.table.clone(),
        force_named_cut_over: a.force_named_cut_over,
        force_named_panic: a.force_named_panic,
        tcp_token_file: None,
        served: control::Served {
            throttle_flag_file: cfg.run.throttle.throttle_flag_file.clone(),
            throttle_additional_flag_file: cfg.run.throttle.throttle_additional_flag_file.clone(),
            panic_flag_file: cfg.run.throttle.panic_flag_file.clone(),
            ..control::Served::default()
        },
    }
}

fn finish(result: Result<Outcome>, handle: &EngineHandle, a: &MigrateArgs, cfg: &MigrationConfig) -> Result<i32> {
    match result {
        Ok(Outcome::Done { old_table, stall_ms, old_table_dropped }) => {
            say(&format!(
                "Done: {}.{} migrated; writes stalled {stall_ms} ms at the cut-over; old table {}",
                cfg.database,
                cfg.table,
                if old_table_dropped { format!("{old_table} dropped") } else { format!("kept as {old_table}") }
            ));
            Ok(exit::OK)
        }
        Ok(Outcome::TestedOnReplica { ghost_table, stall_ms, replication_stopped }) => {
            let replication = match replication_stopped {
                true => "replication stays stopped: compare the two tables, then START REPLICA",
                false => "replication kept running (--test-on-replica-skip-replica-stop)",
            };
            say(&format!(
                "Tested on the replica {}: {}.{} was migrated and swapped back (writes stalled {stall_ms} ms); it serves \
                 as before, the migrated copy is {}.{ghost_table}; {replication}",
                cfg.source.display(),
                cfg.database,
                cfg.table,
                cfg.database
            ));
            Ok(exit::OK)
        }
        Ok(Outcome::AlteredInstantly { took_ms }) => {
            say(&format!("Done: {}.{} altered in place with ALGORITHM=INSTANT in {took_ms} ms (no copy, no old table)", cfg.database, cfg.table));
            Ok(exit::OK)
        }
        Ok(Outcome::DryRun { plan }) => Ok(print_plan(&plan)),
        Ok(Outcome::Stopped { state }) => {
            stopped(&state, a.shared.output.state_file.as_deref(), "stopped", state.resume_command.as_deref())
        }
        Err(e) => Ok(failed(&e, handle, cfg.run.resume_command.as_deref())),
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Cmd};
    use clap::{CommandFactory, FromArgMatches};

    fn naming(extra: &[&str]) -> Result<Option<TriggerNaming>> {
        let argv: Vec<&str> = ["revenant", "migrate"].iter().chain(extra).copied().collect();
        let m = Cli::command().try_get_matches_from(argv).expect("parse");
        match Cli::from_arg_matches(&m).expect("args").command {
            Cmd::Migrate(a) => trigger_naming(&a),
            _ => panic!("not migrate"),
        }
    }

    #[test]
    fn trigger_flags_are_checked_as_gh_ost_checks_them() {
        assert_eq!(naming(&[]).expect("none"), None);
        let n = naming(&["--include-triggers", "--trigger-suffix", "_v2", "--remove-trigger-suffix-if-exists"]).expect("valid").expect("some");
        assert_eq!((n.suffix.as_str(), n.remove_suffix_if_exists), ("_v2", true));
        for (bad, says) in [
            (&["--include-triggers"][..], "needs --trigger-suffix"),
            (&["--trigger-suffix", "_v2"][..], "requires --include-triggers"),
            (&["--remove-trigger-suffix-if-exists"][..], "requires --include-triggers and --trigger-suffix"),
            (&["--include-triggers", "--trigger-suffix", "a-b"][..], "only letters, digits and `_`"),
        ] {
            let e = format!("{:?}", naming(bad).expect_err("refused"));
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
