//! The one conversion from the shared flag groups (src/cli/args.rs) to the engine's settings, for `migrate` and
//! `move-tables` alike: credentials resolved, every number checked against its range and every value parsed
//! before anything connects, so bad input is refused with the flag's name and what to give instead.

use std::time::Duration;

use color_eyre::eyre::{eyre, Result};
use color_eyre::Section;

use super::args::{ConnectionArgs, FailoverArgs, SharedArgs, ThrottleArgs};
use super::credentials;
use crate::engine::config::{ConnectionConfig, FailoverSettings, RowWrites, RunSettings, Secret, ThrottleConfig};
use crate::engine::hooks::HookHints;

/// Refuses `value` of `--flag` outside `min..=max` (also a `--config` key of that name), naming the range.
pub(crate) fn within(flag: &str, value: u64, min: u64, max: u64, unit: &str) -> Result<u64> {
    if value < min || value > max {
        return Err(eyre!("--{flag} {value} is out of range")).suggestion(format!("use {min} to {max} {unit}; nothing was changed"));
    }
    Ok(value)
}

/// The connection flags with the password sources (`--conf`, ~/.my.cnf, MYSQL_PWD, `--ask-pass`, `--password`).
/// Also returns what was found, for the target of a move that shares the source's password sources.
pub(crate) fn connection(a: &ConnectionArgs) -> Result<(ConnectionConfig, credentials::Found)> {
    let found = credentials::resolve(a.password.clone(), a.ask_pass, a.conf.as_ref())?;
    let user = a.user.clone().or(found.user.clone()).or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "root".into());
    // A flag given wins over the option files, even when it equals the default.
    let host = a.host.clone().or_else(|| found.host.clone()).unwrap_or_else(|| "127.0.0.1".into());
    let port = a.port.or(found.port).unwrap_or(3306);
    if found.password.is_some() {
        tracing::debug!("password from {}", found.password_source);
    }
    let tls = super::tls::resolve(&tls_flags(a), &found.tls_options)?;
    super::tls::announce(&format!("{host}:{port}"), tls.as_ref());
    let source = ConnectionConfig { host, port, user, password: Secret::new(found.password.clone()), socket: None, tls, gtid_domain_id: None };
    Ok((source, found))
}

/// The source's `--ssl...` flags.
fn tls_flags(a: &ConnectionArgs) -> super::tls::TlsFlags {
    super::tls::TlsFlags {
        prefix: "ssl",
        ssl: a.ssl,
        ca: a.ssl_ca.clone(),
        cert: a.ssl_cert.clone(),
        key: a.ssl_key.clone(),
        allow_insecure: a.ssl_allow_insecure,
        mode: a.ssl_mode.clone(),
    }
}

/// The shared flag groups into `run` (copy, throttle, cut-over, hooks, run), each checked first; the same for
/// `migrate` and `move-tables`. `source_port` is the port a `--throttle-control-replicas` entry without one takes.
pub(crate) fn apply_shared(a: &SharedArgs, source_port: u16, cfg: &mut RunSettings) -> Result<()> {
    let (copy, cut, hooks, run) = (&a.copy, &a.cut_over, &a.hooks, &a.run);
    if copy.chunk_size == 0 || copy.chunk_size > 100_000 {
        return Err(eyre!("--chunk-size {} is out of range", copy.chunk_size)).suggestion("use 1 to 100000 rows (gh-ost allows 10 to 100000); nothing was changed");
    }
    if copy.dml_batch_size == 0 || copy.dml_batch_size > 100_000 {
        return Err(eyre!("--dml-batch-size {} is out of range", copy.dml_batch_size)).suggestion("use 1 to 100000 row events; nothing was changed");
    }
    cfg.chunk_size = copy.chunk_size;
    cfg.chunk_target = Duration::from_millis(within("chunk-time-millis", copy.chunk_time_millis, 0, 3_600_000, "ms")?.max(10));
    cfg.dml_batch_size = copy.dml_batch_size;
    cfg.apply_threads = copy.apply_threads.map_or_else(crate::engine::apply::applier::default_writers, usize::from);
    cfg.writes = RowWrites { strict: !copy.skip_strict_mode, panic_on_warnings: !copy.no_panic_on_warnings, allow_zero_in_date: copy.allow_zero_in_date };
    cfg.cut_over_lock_timeout = Duration::from_secs(within("cut-over-lock-timeout-seconds", cut.cut_over_lock_timeout_seconds, 0, 3600, "seconds")?.max(1));
    cfg.default_retries = cut.default_retries.max(1);
    cfg.postpone_cut_over_flag_file = cut.postpone_cut_over_flag_file.clone();
    cfg.postpone_cut_over = cut.postpone_cut_over;
    cfg.hooks_path = hooks.hooks_path.clone();
    cfg.hook_hints = HookHints {
        hint: hooks.hooks_hint.clone().unwrap_or_default(),
        owner: hooks.hooks_hint_owner.clone().unwrap_or_default(),
        token: hooks.hooks_hint_token.clone().unwrap_or_default(),
    };
    cfg.hook_timeout = Duration::from_secs(within("hook-timeout-seconds", hooks.hook_timeout_seconds, 0, 86_400, "seconds")?.max(1));
    cfg.resume = run.resume;
    cfg.retry_for = Duration::from_secs(within("retry-seconds", run.retry_seconds, 0, 604_800, "seconds")?.max(1));
    cfg.mysql_timeout = mysql_timeout(run.mysql_timeout)?;
    crate::engine::connection::set_timeout(cfg.mysql_timeout);
    let heartbeat = within("heartbeat-interval-millis", a.throttle.heartbeat_interval_millis, 10, 60_000, "ms")?;
    cfg.heartbeat_interval = Duration::from_millis(heartbeat);
    throttle_settings(&a.throttle, source_port, &mut cfg.throttle)
}

/// `--mysql-timeout`: 0 to 3600 seconds (0: none).
fn mysql_timeout(seconds: Option<f64>) -> Result<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Ok((s > 0.0).then(|| Duration::from_secs_f64(s))),
        Some(s) => Err(eyre!("--mysql-timeout {s} is out of range")).suggestion("use 0 to 3600 seconds (0: no timeout); nothing was changed"),
    }
}

/// The throttle flags into `cfg`, each checked before anything connects.
fn throttle_settings(a: &ThrottleArgs, source_port: u16, cfg: &mut ThrottleConfig) -> Result<()> {
    use crate::engine::throttle::throttlers;
    let bad = |flag: &str, e: String, hint: &str| eyre!("--{flag}: {e}").suggestion(hint.to_string());
    if !(0.0..=100.0).contains(&a.nice_ratio) {
        return Err(eyre!("--nice-ratio {} is out of range", a.nice_ratio)).suggestion("use 0 to 100");
    }
    cfg.max_lag_millis = within("max-lag-millis", a.max_lag_millis, 0, 86_400_000, "ms")?;
    cfg.throttle_flag_file = a.throttle_flag_file.clone();
    cfg.throttle_additional_flag_file = a.throttle_additional_flag_file.clone();
    cfg.throttle_query = match a.throttle_query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) => Some(
            crate::engine::throttle::query::check_throttle_query(q)
                .map_err(|e| eyre!("--throttle-query: {e}"))
                .suggestion("give one SELECT whose first column > 0 throttles")?,
        ),
        None => None,
    };
    cfg.panic_flag_file = a.panic_flag_file.clone();
    super::refuse_foreign_flag("--throttle-flag-file", cfg.throttle_flag_file.as_deref())?;
    super::refuse_foreign_flag("--throttle-additional-flag-file", cfg.throttle_additional_flag_file.as_deref())?;
    super::refuse_foreign_flag("--panic-flag-file", cfg.panic_flag_file.as_deref())?;
    cfg.nice_ratio = a.nice_ratio;
    if let Some(v) = &a.max_load {
        cfg.max_load = throttlers::parse_load(v).map_err(|e| bad("max-load", e, "give Var=N[,Var=N...], e.g. Threads_running=25"))?;
    }
    if let Some(v) = &a.critical_load {
        cfg.critical_load = throttlers::parse_load(v).map_err(|e| bad("critical-load", e, "give Var=N[,Var=N...], e.g. Threads_running=1000"))?;
    }
    cfg.critical_load_interval = Duration::from_millis(within("critical-load-interval-millis", a.critical_load_interval_millis, 0, 3_600_000, "ms")?);
    cfg.critical_load_hibernate = Duration::from_secs(within("critical-load-hibernate-seconds", a.critical_load_hibernate_seconds, 0, 86_400, "seconds")?);
    if let Some(v) = &a.throttle_control_replicas {
        cfg.throttle_control_replicas =
            throttlers::parse_replicas(v, source_port).map_err(|e| bad("throttle-control-replicas", e, "give host[:port][,host[:port]...]"))?;
    }
    if let Some(u) = &a.throttle_http {
        throttlers::parse_http_url(u).map_err(|e| bad("throttle-http", e, "give an http://host:port/path URL"))?;
        cfg.throttle_http = Some(u.clone());
    }
    if a.throttle_http_timeout_millis == 0 {
        return Err(bad("throttle-http-timeout-millis", "0 ms leaves no time for an answer".into(), "give at least 1 (gh-ost's default is 1000)"));
    }
    cfg.throttle_http_interval = Duration::from_millis(within("throttle-http-interval-millis", a.throttle_http_interval_millis, 0, 3_600_000, "ms")?);
    cfg.throttle_http_timeout = Duration::from_millis(within("throttle-http-timeout-millis", a.throttle_http_timeout_millis, 1, 600_000, "ms")?);
    cfg.ignore_http_errors = a.ignore_http_errors;
    Ok(())
}

/// `--failover-candidates` and `--failover-timeout`.
pub(crate) fn failover(a: &FailoverArgs) -> Result<FailoverSettings> {
    Ok(FailoverSettings {
        candidates: a.failover_candidates.iter().map(|c| candidate("failover-candidates", c)).collect::<Result<_>>()?,
        timeout: failover_timeout(&a.failover_timeout)?,
    })
}

/// One of `--failover-candidates` (or `--target-failover-candidates`, the flag named `flag`): HOST:PORT (the port is required: candidates seldom share one).
pub(crate) fn candidate(flag: &str, text: &str) -> Result<(String, u16)> {
    match text.trim().rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => Ok((h.to_string(), p.parse().unwrap_or(3306))),
        _ => Err(eyre!("--{flag} `{text}` is not HOST:PORT")).suggestion(format!("give e.g. --{flag}=db2:3306,db3:3306")),
    }
}

/// `--failover-timeout`: seconds, or a number with s, m or h.
fn failover_timeout(text: &str) -> Result<Duration> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => 0,
    };
    match num.parse::<u64>() {
        Ok(n) if scale > 0 && n.saturating_mul(scale) <= 7 * 86_400 => Ok(Duration::from_secs(n * scale)),
        _ => Err(eyre!("--failover-timeout `{text}` is not a duration of at most 7 days"))
            .suggestion("give e.g. --failover-timeout=10m, 90s or 0 (do not follow a new primary)"),
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Cmd};
    use clap::{CommandFactory, FromArgMatches};

    fn shared(argv: &[&str]) -> SharedArgs {
        let m = Cli::command().try_get_matches_from(argv).expect("parse");
        match Cli::from_arg_matches(&m).expect("args").command {
            Cmd::Migrate(a) => a.shared,
            Cmd::MoveTables(a) => a.shared,
            _ => panic!("not migrate or move-tables"),
        }
    }

    #[test]
    fn an_explicit_host_or_port_wins_over_the_option_file_even_at_the_default() {
        let dir = std::env::temp_dir().join(format!("rvn-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let conf = dir.join("my.cnf");
        std::fs::write(&conf, "[client]\nhost = db.example\nport = 3307\n").expect("write");
        let conn = |argv: &[&str]| {
            let m = Cli::command().try_get_matches_from(argv).expect("parse");
            match Cli::from_arg_matches(&m).expect("args").command {
                Cmd::Migrate(a) => connection(&a.conn).expect("connection").0,
                _ => panic!("not migrate"),
            }
        };
        let c = conf.display().to_string();
        let given = conn(&["revenant", "migrate", "--conf", &c, "--host", "127.0.0.1", "--port", "3306", "--user", "u"]);
        assert_eq!((given.host.as_str(), given.port), ("127.0.0.1", 3306));
        let from_file = conn(&["revenant", "migrate", "--conf", &c, "--user", "u"]);
        assert_eq!((from_file.host.as_str(), from_file.port), ("db.example", 3307));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn both_commands_share_one_conversion_and_its_ranges() {
        for cmd in ["migrate", "move-tables"] {
            let a = shared(&["revenant", cmd, "--chunk-size", "500", "--hooks-hint", "h1", "--cut-over-lock-timeout-seconds", "7", "--retry-seconds", "9"]);
            let mut c = RunSettings::default();
            apply_shared(&a, 3306, &mut c).expect("in range");
            let mut h = RunSettings::default();
            apply_shared(&shared(&["revenant", cmd, "--heartbeat-interval-millis", "100"]), 3306, &mut h).expect("in range");
            assert_eq!(h.heartbeat_interval, Duration::from_millis(100), "{cmd}: --heartbeat-interval-millis");
            assert_eq!((c.chunk_size, c.hook_hints.hint.as_str()), (500, "h1"), "{cmd}");
            assert_eq!((c.cut_over_lock_timeout, c.retry_for), (Duration::from_secs(7), Duration::from_secs(9)), "{cmd}");
            for (flag, value) in [
                ("--cut-over-lock-timeout-seconds", "4611686018427387904"),
                ("--critical-load-hibernate-seconds", "18446744073709551615"),
                ("--hook-timeout-seconds", "86401"),
                ("--heartbeat-interval-millis", "5"),
            ] {
                let e = apply_shared(&shared(&["revenant", cmd, flag, value]), 3306, &mut RunSettings::default()).expect_err("out of range");
                let text = format!("{e:?}");
                assert!(text.contains(&format!("{flag} {value} is out of range")), "{cmd} {flag}: {text}");
            }
        }
    }
}
