//! The command line front end: parses flags (gh-ost compatible) and TOML, resolves credentials, then runs the
//! engine with the console, the control socket, or headless status lines; turns signals into a clean stop.

mod args;
mod cases;
mod config_file;
mod credentials;
mod demo;
mod ghost_compat;
pub mod headless;
mod migrate;
mod move_tables;
mod option_file;
mod session;
mod settings;
mod tls;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches};
use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;

pub use args::{Cli, Cmd, MigrateArgs, ThrottleArgs};
pub(crate) use session::stop_on_signals;

use crate::console::{self, ConsoleOptions, Theme};
use crate::control;
use crate::engine::{EngineHandle, Phase};

/// Process exit codes (documented in README and docs/checkpoints.md).
pub mod exit {
    /// Migrated, or the dry run validated.
    pub const OK: i32 = 0;
    /// Failed after changing something; the state is resumable (the resume command was printed).
    pub const FAILED: i32 = 1;
    /// Refused before anything was changed (bad input, preflight).
    pub const REFUSED: i32 = 2;
    /// Stopped on request (SIGINT/SIGTERM, console, socket) with a checkpoint written; resumable.
    pub const STOPPED: i32 = 3;
}

/// Entry point: parses `std::env::args` and runs. Returns the process exit code.
pub fn main_with_args(raw: Vec<String>) -> Result<i32> {
    let mut cmd = Cli::command();
    let argv = match prepare_argv(raw, &cmd) {
        Ok(Prepared::Run(argv)) => argv,
        Ok(Prepared::Exit(code)) => return Ok(code),
        Err(e) => return Ok(refused(&e)),
    };
    let matches = match cmd.try_get_matches_from_mut(&argv) {
        Ok(m) => m,
        Err(e) => return Ok(clap_error(e, &argv, &cmd)),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| eyre!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Cmd::Migrate(a) => migrate::run(a, argv).await,
            Cmd::Demo(a) => demo::run(a).await,
            Cmd::Attach(a) => run_attach(a).await,
            Cmd::MoveTables(a) => move_tables::run(a, argv).await,
            Cmd::RunCases(a) => cases::run(a).await,
        }
    })
}

enum Prepared {
    Run(Vec<String>),
    Exit(i32),
}

/// Before clap: gh-ost's spellings, `--config` expanded, gh-ost flags revenant cannot honour refused by name, and
/// `--check-flag` answered.
fn prepare_argv(raw: Vec<String>, cmd: &clap::Command) -> Result<Prepared> {
    let sub = match raw.get(1).map(String::as_str) {
        Some(s @ ("migrate" | "move-tables")) => s.to_string(),
        _ => return Ok(Prepared::Run(raw)),
    };
    let known = long_flags(cmd, &sub);
    let argv = ghost_compat::normalize(raw, &known);
    let argv = ghost_compat::expand_osc_section(expand_config(argv, cmd)?, &sub)?;
    if argv.iter().any(|a| a == "--check-flag") {
        return Ok(Prepared::Exit(ghost_compat::check_flags(&argv, &known)));
    }
    ghost_compat::refuse_unsupported(&argv)?;
    Ok(Prepared::Run(argv))
}

/// The long flags of a subcommand, with whether each takes a value.
fn long_flags(cmd: &clap::Command, sub: &str) -> Vec<(String, bool)> {
    cmd.find_subcommand(sub)
        .map(|m| m.get_arguments().filter_map(|a| a.get_long().map(|l| (l.to_string(), a.get_action().takes_values()))).collect())
        .unwrap_or_default()
}

/// Prints clap's answer (help, version, a bad value) and returns the exit code; a flag clap does not know is
/// named in revenant's words instead of clap's "unexpected argument".
fn clap_error(e: clap::Error, argv: &[String], cmd: &clap::Command) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() == ErrorKind::UnknownArgument {
        let flag = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(s)) => s.split('=').next().unwrap_or(s).to_string(),
            _ => "the flag".to_string(),
        };
        let similar = match e.get(ContextKind::SuggestedArg) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            _ => None,
        };
        let sub = argv.get(1).filter(|s| cmd.find_subcommand(s.as_str()).is_some());
        let command = sub.map(|s| format!("revenant {s}")).unwrap_or_else(|| "revenant".into());
        let command = command.as_str();
        if !flag.starts_with('-') {
            eprint!("{}", ghost_compat::stray_value_message(command, &flag));
            return exit::REFUSED;
        }
        let name = flag.trim_start_matches('-').split('=').next().unwrap_or("");
        let migrate_has = long_flags(cmd, "migrate").iter().any(|(k, _)| k == name);
        eprint!("{}", ghost_compat::unknown_flag_message(command, &flag, similar.as_deref(), migrate_has));
        return exit::REFUSED;
    }
    let code = if e.use_stderr() { exit::REFUSED } else { exit::OK };
    let _ = e.print();
    code
}

/// Puts `--config FILE`'s settings in front of the command line's flags (so flags override them).
fn expand_config(argv: Vec<String>, cmd: &clap::Command) -> Result<Vec<String>> {
    let mut path: Option<PathBuf> = None;
    for (i, a) in argv.iter().enumerate() {
        if let Some(v) = a.strip_prefix("--config=") {
            path = Some(PathBuf::from(v));
        } else if a == "--config" {
            path = argv.get(i + 1).map(PathBuf::from);
        }
    }
    let Some(path) = path else { return Ok(argv) };
    let name = argv.get(1).map(String::as_str).unwrap_or("migrate");
    let mut known = long_flags(cmd, name);
    // gh-ost's refused flags are known keys too, so that they are refused by name rather than as unknown keys.
    known.extend(ghost_compat::UNSUPPORTED.iter().map(|(k, v, _)| (k.to_string(), *v)));
    let from_file = config_file::flags_from_toml(&path, &known)?;
    let mut out = vec![argv[0].clone(), argv[1].clone()];
    out.extend(from_file);
    out.extend(argv[2..].iter().cloned());
    Ok(out)
}

/// The command that resumes this run: the same flags plus --resume, without any password.
pub(crate) fn resume_command(argv: &[String]) -> String {
    let mut out = Vec::new();
    let mut skip = false;
    for a in argv.iter().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        if a == "--password" {
            skip = true;
            continue;
        }
        if a.starts_with("--password=") || a == "--resume" || a.starts_with("--resume-state") {
            continue;
        }
        out.push(shell_quote(a));
    }
    out.push("--resume".into());
    format!("revenant {}", out.join(" "))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:,@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Colours only on a terminal, and never with `NO_COLOR` set (non-empty, as no-color.org says).
pub fn colour_allowed(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The error-report hook: color_eyre's colours on a terminal, plain text everywhere else (files, pipes, NO_COLOR).
pub fn install_error_hook() {
    let mut hook = color_eyre::config::HookBuilder::default()
        .display_location_section(std::env::var_os("REVENANT_DEBUG_ERRORS").is_some())
        .display_env_section(false);
    if !colour_allowed(std::io::stderr().is_terminal()) {
        hook = hook.theme(color_eyre::config::Theme::new());
    }
    if let Err(e) = hook.install() {
        eprintln!("error: {e}");
    }
}

/// Logs at `level` (info, debug, warn; REVENANT_LOG overrides it) to the console's log pane or to stderr.
pub(crate) fn init_tracing(console: bool, level: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("REVENANT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("revenant={level},warn")));
    if console {
        let _ = tui_logger::init_logger(tui_logger::LevelFilter::Debug);
        let _ = tracing_subscriber::registry().with(filter).with(tui_logger::TuiTracingSubscriberLayer).try_init();
    } else {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(colour_allowed(std::io::stderr().is_terminal())),
            )
            .try_init();
    }
}

/// Builds the engine's settings from the flags; checks what can be checked before connecting.
/// Refuses a flag file that exists but is not a regular file of this user (a symlink, another user's file).
pub(crate) fn refuse_foreign_flag(flag: &str, path: Option<&std::path::Path>) -> Result<()> {
    match path.map(|p| crate::engine::throttle::flag_file::check_not_foreign(flag, p)) {
        Some(Err(e)) => Err(eyre!("{e}")).suggestion("use a path of your own (a new one is created when needed); nothing was changed"),
        _ => Ok(()),
    }
}

/// Creates the postpone flag file exclusively (or adopts one of this user's) before the run starts.
pub(crate) fn create_postpone_flag(path: Option<&std::path::Path>) -> Result<()> {
    match path.map(|p| crate::engine::throttle::flag_file::create_or_adopt("--postpone-cut-over-flag-file", p)) {
        Some(Err(e)) => Err(eyre!("{e}")).suggestion("use a path of your own; nothing was changed"),
        _ => Ok(()),
    }
}

/// Prints a line on stdout; a closed stdout (a dropped SSH session, a closed pipe) is not an error.
pub(crate) fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Refused before anything changed: the reason and what to do (exit 2).
pub(crate) fn refused(e: &color_eyre::Report) -> i32 {
    eprintln!("Error: {e:?}");
    exit::REFUSED
}

/// A dry run's plan, line by line (exit 0).
pub(crate) fn print_plan(plan: &[String]) -> i32 {
    for line in plan {
        say(line);
    }
    exit::OK
}

/// A stop with a checkpoint: the state as JSON (stdout, or `--state-file`) and the resume command (exit 3).
pub(crate) fn stopped(state: &impl serde::Serialize, state_file: Option<&std::path::Path>, what: &str, resume: Option<&str>) -> Result<i32> {
    write_state(state, state_file)?;
    eprintln!("{what} with a checkpoint; resume with: {}", resume.unwrap_or_default());
    Ok(exit::STOPPED)
}

/// A run that ended in an error: exit 1 with the resume command once it had begun changing things (setup
/// reached), else 2 (refused before anything changed).
pub(crate) fn failed(e: &color_eyre::Report, handle: &EngineHandle, resume_command: Option<&str>) -> i32 {
    let reached_setup = handle.snapshot().phase_seconds.iter().any(|(p, _)| *p >= Phase::Setup && !p.is_terminal());
    eprintln!("Error: {e:?}");
    if reached_setup {
        eprintln!("resume with: {}", resume_command.unwrap_or_default());
        exit::FAILED
    } else {
        exit::REFUSED
    }
}

/// Finds the socket to attach to when none is given: the only /tmp/gh-ost.*.sock.
fn find_socket() -> Result<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/tmp")?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("gh-ost.") && name.ends_with(".sock") {
            found.push(e.path());
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(eyre!("no migration socket found in /tmp")).suggestion("give the socket path: revenant attach /tmp/gh-ost.<db>.<table>.sock"),
        _ => Err(eyre!("several migration sockets found: {}", found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")))
            .suggestion("name one: revenant attach SOCKET"),
    }
}

async fn run_attach(a: args::AttachArgs) -> Result<i32> {
    init_tracing(true, "info");
    let socket = match a.socket.clone() {
        Some(s) => s,
        None => find_socket()?,
    };
    let handle = control::attach_with(socket.clone(), a.read_only)
        .await
        .wrap_err_with(|| format!("attaching to {}", socket.display()))?;
    let table = handle.snapshot().target.table.clone();
    let theme = Theme::select(a.theme.as_deref())?;
    let opts = ConsoleOptions { theme, read_only: a.read_only, refresh_hz: a.refresh_hz, table_name_for_confirm: table };
    console::run_console(handle, opts).await?;
    Ok(exit::OK)
}

/// Prints a stop's state as JSON on stdout, or writes it to `--state-file`.
pub(crate) fn write_state(state: &impl serde::Serialize, state_file: Option<&std::path::Path>) -> Result<()> {
    let json = serde_json::to_string_pretty(state)?;
    match state_file {
        Some(p) => match crate::engine::throttle::flag_file::write_private(p, json.as_bytes()) {
            Ok(()) => eprintln!("state written to {}", p.display()),
            Err(e) => {
                // The state is not lost: it goes to stdout instead (the checkpoint table holds it too).
                eprintln!("Error: not writing --state-file: {e}; the state follows on stdout instead");
                eprintln!("  give --state-file a path of your own (written 0600, never through a symlink)");
                say(&json);
            }
        },
        None => say(&json),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: Vec<String>) -> std::result::Result<MigrateArgs, String> {
        let cmd = Cli::command();
        let argv = expand_config(argv, &cmd).map_err(|e| format!("{e:?}"))?;
        let m = Cli::command().try_get_matches_from(&argv).map_err(|e| e.to_string())?;
        match Cli::from_arg_matches(&m).map_err(|e| e.to_string())?.command {
            Cmd::Migrate(a) => Ok(a),
            _ => Err("not migrate".into()),
        }
    }

    fn argv(extra: &[&str]) -> Vec<String> {
        ["revenant", "migrate"].iter().chain(extra).map(|s| s.to_string()).collect()
    }

    /// A file with `body` in a fresh directory of this test process (the caller removes the directory).
    fn scratch_file(tag: &str, name: &str, body: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("revenant-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join(name);
        std::fs::write(&f, body).expect("write");
        (dir, f)
    }

    #[test]
    fn panic_on_warnings_is_on_by_default_and_false_turns_it_off_everywhere() {
        // Through the whole preparation (gh-ost's spellings, --config), as main runs it.
        let off = |extra: &[&str]| {
            let Ok(Prepared::Run(full)) = prepare_argv(argv(extra), &Cli::command()) else { panic!("not prepared: {extra:?}") };
            parse(full).expect("parse").shared.copy.no_panic_on_warnings
        };
        assert!(!off(&[]), "on by default");
        assert!(!off(&["--panic-on-warnings"]));
        assert!(!off(&["--panic-on-warnings=true"]));
        assert!(off(&["--panic-on-warnings=false"]));
        assert!(off(&["-panic-on-warnings=false"]), "gh-ost's single dash");
        let (dir, f) = scratch_file("cfg-panic", "c.toml", "table = \"a\"\npanic-on-warnings = false\n");
        assert!(off(&["--config", f.to_str().expect("utf8")]), "panic-on-warnings = false in TOML");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn checksum_is_on_by_default_and_false_turns_it_off() {
        assert!(parse(argv(&[])).expect("parse").checksum, "on by default");
        assert!(parse(argv(&["--checksum"])).expect("parse").checksum);
        assert!(!parse(argv(&["--checksum=false"])).expect("parse").checksum);
        assert!(parse(argv(&["--checksum=true"])).expect("parse").checksum);
        let (dir, f) = scratch_file("cfg-checksum", "c.toml", "table = \"a\"\nchecksum = false\n");
        assert!(!parse(argv(&["--config", f.to_str().expect("utf8")])).expect("parse").checksum, "checksum = false in TOML");
        std::fs::write(&f, "chunk-size = true\n").expect("write");
        assert!(parse(argv(&["--config", f.to_str().expect("utf8")])).is_err(), "a number flag refuses true");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_sample_config_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sample-configs");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("sample-configs") {
            let p = e.expect("entry").path();
            // move-tables samples are parsed by their own command (src/cli/move_tables.rs tests).
            if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("move-tables")) {
                continue;
            }
            let a = parse(argv(&["--config", p.to_str().expect("utf8")])).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(a.table.is_some() && a.alter.is_some(), "{}", p.display());
            n += 1;
        }
        assert!(n >= 3);
    }

    #[test]
    fn flags_override_the_config_file_and_unknown_keys_are_named() {
        let (dir, f) = scratch_file("cfg-test", "c.toml", "table = \"a\"\nchunk-size = 500\nexecute = true\n");
        let a = parse(argv(&["--config", f.to_str().expect("utf8"), "--table", "b"])).expect("parse");
        assert_eq!(a.table.as_deref(), Some("b"), "the flag wins");
        assert_eq!(a.shared.copy.chunk_size, 500, "the file's value is used");
        assert!(a.execute);
        std::fs::write(&f, "tabel = \"a\"\n").expect("write");
        let e = parse(argv(&["--config", f.to_str().expect("utf8")])).expect_err("unknown key");
        assert!(e.contains("unknown key 'tabel'"), "{e}");
        std::fs::write(&f, "password = \"x\"\n").expect("write");
        let e = parse(argv(&["--config", f.to_str().expect("utf8")])).expect_err("password refused");
        assert!(e.contains("password"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn gh_ost_flags_in_a_config_file_are_refused_by_name_and_go_booleans_parse() {
        let (dir, f) = scratch_file("cfg-ghost", "c.toml", "table = \"a\"\ntungsten = true\n");
        let e = prepare_argv(argv(&["--config", f.to_str().expect("utf8")]), &Cli::command()).err().expect("refused");
        assert!(format!("{e:?}").contains("--tungsten is a gh-ost flag that revenant does not implement"), "{e:?}");
        let Ok(Prepared::Run(v)) = prepare_argv(argv(&["-exact-rowcount=false", "-execute=true", "-gtid"]), &Cli::command()) else {
            panic!("not prepared")
        };
        assert_eq!(v[2..], ["--execute".to_string(), "--gtid".to_string()]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_tls_settings_come_from_the_toml_config_too() {
        let (dir, f) = scratch_file("tls-toml", "run.toml", "ssl = true\nssl-ca = \"/etc/ssl/db-ca.pem\"\nssl_mode = \"VERIFY_CA\"\n");
        let a = parse(argv(&["--config", f.to_str().expect("utf8")])).expect("parse");
        assert!(a.conn.ssl);
        assert_eq!(a.conn.ssl_ca.as_deref(), Some(std::path::Path::new("/etc/ssl/db-ca.pem")));
        assert_eq!(a.conn.ssl_mode.as_deref(), Some("VERIFY_CA"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_gh_ost_conf_files_osc_section_is_read_and_flags_override_it() {
        let osc = "[client]\nuser=gromit\npassword=x\n\n[osc]\nchunk_size=500\nmax_load=Threads_running=30\nmax_lag_millis=2000\n";
        let (dir, f) = scratch_file("osc", "gh-ost.conf", osc);
        // It holds a password: only its owner may read it (a world-readable one is refused).
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
        let conf = format!("--conf={}", f.display());
        let prepared = |extra: &[&str]| match prepare_argv(argv(extra), &Cli::command()) {
            Ok(Prepared::Run(v)) => parse(v),
            Ok(Prepared::Exit(c)) => Err(format!("exit {c}")),
            Err(e) => Err(format!("{e:?}")),
        };
        let a = prepared(&[conf.as_str(), "--max-lag-millis", "900"]).expect("parse");
        assert_eq!(a.shared.copy.chunk_size, 500, "[osc] chunk_size");
        assert_eq!(a.shared.throttle.max_load.as_deref(), Some("Threads_running=30"), "[osc] max_load");
        assert_eq!(a.shared.throttle.max_lag_millis, 900, "the flag wins over [osc]");
        std::fs::write(&f, "[osc]\nchunk-size=500\nnice_ratio=2\n").expect("write");
        let e = prepared(&[conf.as_str()]).expect_err("unknown [osc] key");
        assert!(e.contains("[osc] key 'nice-ratio' is not one gh-ost reads"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn resume_command_never_carries_the_password() {
        let c = resume_command(&argv(&["--password", "s3cret", "--table", "t", "--password=x", "--alter", "ADD COLUMN c INT"]));
        assert!(!c.contains("s3cret") && !c.contains("--password"), "{c}");
        assert!(c.ends_with("--resume") && c.contains("'ADD COLUMN c INT'"), "{c}");
    }
}
