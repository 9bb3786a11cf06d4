//! gh-ost's text protocol: parsing one command line into a [`TextCommand`], validating values before anything is
//! sent to the engine, and the human `status` / `sup` texts.

use crate::engine::status::{format_duration, Command, Eta, Status};

/// What the `info` commands print (from the status snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Info {
    /// `coordinates`: the binlog position read so far.
    Coordinates,
    /// `applier`: the server the ghost is written on.
    Applier,
    /// `inspector`: the server the original is read from.
    Inspector,
}

use super::ControlOptions;

/// What one text command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum TextCommand {
    /// `help`: list the commands.
    Help,
    /// `status` / `info`: the multi-line human status.
    Status,
    /// `sup`: the one-line status.
    Sup,
    /// `coordinates`, `applier`, `inspector`.
    Info(Info),
    /// A command gh-ost keeps for old scripts that changes nothing (`replication-lag-query`): what to say.
    Deprecated(&'static str),
    /// Anything the engine executes.
    Engine(Command),
}

/// The settings that may be read (`name=?`) and changed (`name=value`) live.
pub const SETTINGS: &[(&str, &str)] = &[
    ("chunk-size", "rows per copy chunk (whole number > 0)"),
    ("dml-batch-size", "binlog events applied per transaction (whole number > 0)"),
    ("max-lag-millis", "replication lag above which the copy throttles (whole number >= 0)"),
    ("nice-ratio", "sleep this fraction of each chunk's copy time (number >= 0)"),
    ("max-load", "throttle when a status variable exceeds: Var=N[,Var=N...] (empty clears)"),
    ("critical-load", "abort when a status variable exceeds: Var=N[,Var=N...] (empty clears)"),
    ("throttle-query", "a query whose first column > 0 throttles (empty clears)"),
    ("throttle-control-replicas", "replicas whose lag is checked: host[:port][,host[:port]...] (empty clears)"),
    ("postpone-cut-over-flag-file", "while this file exists the cut-over waits (empty clears)"),
    ("throttle-http", "throttle unless a HEAD request to this http:// URL answers 200 (empty clears)"),
];

/// The `help` text.
pub fn help_text() -> String {
    let mut out = String::from(
        "available commands:\n\
         status                               # print a detailed status message\n\
         sup                                  # print a short status message\n\
         throttle | pause                     # force throttling of the copy\n\
         no-throttle | resume                 # end the forced throttling\n\
         checkpoint                           # write a checkpoint now and print the recorded position\n\
         coordinates                          # print the binlog position read so far\n\
         applier                              # print the server the ghost table is written on\n\
         inspector                            # print the server the original is read from\n\
         verify                               # verify original and ghost again while the cut-over waits\n\
         unpostpone [table] | cut-over        # approve the postponed cut-over\n\
         panic [table]                        # abort the migration now (resumable; nothing is dropped)\n\
         help                                 # this message\n",
    );
    for (name, what) in SETTINGS {
        out.push_str(&format!("{:<36} # {}\n", format!("{name}=<value>"), what));
    }
    out.push_str("<setting>=?                          # print the current value of a setting\n");
    out
}

/// Parses one line of gh-ost's text protocol. Values are validated here, so a bad value is refused loudly instead
/// of reaching the engine (gh-ost #952 ignored them silently).
pub fn parse_text_command(line: &str, opts: &ControlOptions) -> Result<TextCommand, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("empty command; try `help`".into());
    }
    // gh-ost splits on the first `=`: `name=value`, `unpostpone=table`. We also accept `unpostpone table`.
    let (name, arg) = match line.split_once('=') {
        Some((n, a)) => (n.trim(), Some(unquote(a.trim()))),
        None => match line.split_once(char::is_whitespace) {
            Some((n, a)) => (n.trim(), Some(unquote(a.trim()))),
            None => (line, None),
        },
    };
    let name_lc = name.to_ascii_lowercase();
    let is_setting = SETTINGS.iter().any(|(s, _)| *s == name_lc);
    if is_setting {
        let Some(value) = arg else {
            return Err(format!("`{name_lc}` needs a value: `{name_lc}=<value>` or `{name_lc}=?`"));
        };
        if value == "?" {
            return Ok(TextCommand::Engine(Command::Get { name: name_lc }));
        }
        validate_setting(&name_lc, &value)?;
        return Ok(TextCommand::Engine(Command::Set { name: name_lc, value }));
    }
    let no_arg = |cmd: TextCommand| -> Result<TextCommand, String> {
        match &arg {
            Some(a) if !a.is_empty() => Err(format!("`{name_lc}` takes no argument (got `{a}`)")),
            _ => Ok(cmd),
        }
    };
    match name_lc.as_str() {
        "help" => no_arg(TextCommand::Help),
        "status" | "info" => no_arg(TextCommand::Status),
        "sup" => no_arg(TextCommand::Sup),
        "coordinates" => no_arg(TextCommand::Info(Info::Coordinates)),
        "applier" => no_arg(TextCommand::Info(Info::Applier)),
        "inspector" => no_arg(TextCommand::Info(Info::Inspector)),
        "replication-lag-query" => Ok(TextCommand::Deprecated("replication-lag-query is deprecated: revenant measures lag with its own heartbeat")),
        "cpu-profile" => Err("cpu-profile is gh-ost's Go runtime profile: revenant has none (see `status`, or --metrics-addr)".into()),
        "throttle" | "pause" | "suspend" => no_arg(TextCommand::Engine(Command::Throttle)),
        "no-throttle" | "unthrottle" | "resume" | "continue" => no_arg(TextCommand::Engine(Command::NoThrottle)),
        "checkpoint" => no_arg(TextCommand::Engine(Command::Checkpoint)),
        "verify" => no_arg(TextCommand::Engine(Command::Verify)),
        "unpostpone" | "no-postpone" | "cut-over" => {
            check_named(&name_lc, arg.as_deref(), opts.force_named_cut_over, "--force-named-cut-over", &opts.table)?;
            Ok(TextCommand::Engine(Command::CutOver))
        }
        "panic" => {
            check_named(&name_lc, arg.as_deref(), opts.force_named_panic, "--force-named-panic", &opts.table)?;
            Ok(TextCommand::Engine(Command::Abort))
        }
        _ => Err(format!("unknown command: {name}; try `help`")),
    }
}

pub(crate) fn check_named(cmd: &str, arg: Option<&str>, forced: bool, flag: &str, table: &str) -> Result<(), String> {
    match arg.filter(|a| !a.is_empty()) {
        None if forced => Err(format!(
            "refused: `{cmd}` without a table name, but {flag} is set; use `{cmd} {}`",
            bare_table(table)
        )),
        None => Ok(()),
        Some(a) if table_matches(a, table) => Ok(()),
        Some(a) => Err(format!(
            "refused: `{cmd}` names table `{a}`, but the migrated table is `{}`; ignoring request",
            bare_table(table)
        )),
    }
}

fn bare_table(table: &str) -> &str {
    table.rsplit('.').next().unwrap_or(table)
}

fn table_matches(given: &str, table: &str) -> bool {
    let given = given.trim_matches('`');
    if given.is_empty() {
        return false;
    }
    if given.contains('.') && table.contains('.') {
        given == table
    } else {
        bare_table(given) == bare_table(table)
    }
}

/// Go's `strconv.Unquote` for the common case: a double-quoted value with `\"` and `\\` escapes.
fn unquote(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        let inner = &s[1..s.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    s.to_string()
}

/// Checks a setting's value; the error says what is expected.
pub fn validate_setting(name: &str, value: &str) -> Result<(), String> {
    let v = value.trim();
    match name {
        "chunk-size" | "dml-batch-size" => match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err(format!("invalid value for {name}: `{value}`: expected a whole number greater than 0")),
        },
        "max-lag-millis" => v
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| format!("invalid value for {name}: `{value}`: expected a whole number of milliseconds >= 0")),
        "nice-ratio" => match v.parse::<f64>() {
            Ok(f) if f.is_finite() && f >= 0.0 => Ok(()),
            _ => Err(format!("invalid value for {name}: `{value}`: expected a number >= 0 (e.g. 0.5)")),
        },
        "max-load" | "critical-load" => validate_load_map(name, v),
        "throttle-control-replicas" => validate_replicas(name, v),
        "throttle-query" if v.is_empty() => Ok(()),
        "throttle-query" => crate::engine::throttle::query::check_throttle_query(v).map(|_| ()).map_err(|e| format!("invalid value for {name}: {e}")),
        "throttle-http" if v.is_empty() => Ok(()),
        "throttle-http" => crate::engine::throttle::throttlers::parse_http_url(v).map(|_| ()).map_err(|e| format!("invalid value for {name}: {e}")),
        "postpone-cut-over-flag-file" if v.is_empty() => Ok(()),
        "postpone-cut-over-flag-file" => crate::engine::throttle::live::check_flag_path(v)
            .and_then(|p| crate::engine::throttle::flag_file::check_not_foreign(name, &p))
            .map_err(|e| format!("invalid value for {name}: {e}")),
        _ => Err(format!("unknown setting `{name}`")),
    }
}

fn validate_load_map(name: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    for part in v.split(',') {
        let part = part.trim();
        let Some((var, n)) = part.split_once('=') else {
            return Err(format!("invalid value for {name}: `{part}`: expected Var=N[,Var=N...], e.g. Threads_running=25"));
        };
        let var = var.trim();
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid value for {name}: `{var}` is not a status variable name"));
        }
        if n.trim().parse::<u64>().is_err() {
            return Err(format!(
                "invalid value for {name}: threshold `{}` of {var} is not a whole number >= 0",
                n.trim()
            ));
        }
    }
    Ok(())
}

fn validate_replicas(name: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    for part in v.split(',') {
        let part = part.trim();
        let (host, port) = match part.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (part, None),
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '=' || c == '/') {
            return Err(format!("invalid value for {name}: `{part}` is not host[:port]"));
        }
        if let Some(p) = port {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => {}
                _ => return Err(format!("invalid value for {name}: port `{p}` of `{part}` is not 1..65535")),
            }
        }
    }
    Ok(())
}

/// gh-ost's one-line status (`sup`, and the last line of `status`).
pub fn sup_line(s: &Status) -> String {
    let state = match (s.phase, s.paused, s.throttle.throttled) {
        (_, true, _) => "paused".to_string(),
        (Some(p), _, true) if p.is_running() => format!("throttled, {}", s.throttle.reason),
        (Some(p), _, _) => p.gh_ost_state().to_string(),
        (None, _, _) => "initializing".to_string(),
    };
    let eta = match &s.eta {
        Eta::Measuring => "N/A".to_string(),
        Eta::Due => "due".to_string(),
        Eta::Time(t) => format_duration(*t),
    };
    let lag = s.lag_history.last().copied().unwrap_or(0.0);
    let hb = s.heartbeat_lag_seconds.map(|h| format!("{h:.2}s")).unwrap_or_else(|| "N/A".into());
    format!(
        "Copy: {}/{} {:.1}%; Applied: {}; Backlog: {}/{}; Time: {}(total), {}(copy); streamer: {}:{}; Lag: {:.2}s, HeartbeatLag: {}, State: {}; ETA: {}",
        s.copy.rows_copied,
        s.copy.rows_estimate,
        s.copy.percent(),
        s.binlog.events_applied,
        s.binlog.backlog,
        s.binlog.backlog_capacity,
        format_duration(s.elapsed_seconds),
        format_duration(s.elapsed_copy_seconds),
        s.binlog.read_file,
        s.binlog.read_pos,
        lag,
        hb,
        state,
        eta
    )
}
