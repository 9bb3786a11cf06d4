//! gh-ost compatibility of the command line: gh-ost's single-dash long flags (`-alter=...`) and Go's `--switch=true`
//! / `--switch=false` spellings are accepted; gh-ost flags where revenant already behaves as asked are accepted
//! (GhostCompatArgs, each saying why); a gh-ost flag whose meaning revenant cannot honour is refused by name with
//! what to do instead, never ignored; `--check-flag` answers as gh-ost's does. docs/gh-ost-compatibility.md has the
//! table of every gh-ost flag.

use clap::Args;
use color_eyre::eyre::{eyre, Result};
use color_eyre::Section;

/// gh-ost flags revenant cannot honour: name, whether it takes a value, and why / what to do instead.
pub const UNSUPPORTED: &[(&str, bool, &str)] = &[
    ("master-password", true, "the primary is reached with --host's password sources (--conf, MYSQL_PWD, --ask-pass): leave the flag out"),
    ("tungsten", false, "Tungsten topologies are not supported: run against the primary with --host"),
];

/// Switches that are on unless turned off: `--name=false` becomes `--no-name`.
pub(crate) const DEFAULT_ON: &[&str] = &["panic-on-warnings"];

/// gh-ost flags that revenant takes although they change nothing: it already behaves as they ask (docs say why).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "gh-ost compatibility (accepted; revenant already behaves this way)")]
pub struct GhostCompatArgs {
    /// Accepted: revenant never changes binlog_format; it checks ROW and binlog_row_image=FULL and refuses otherwise.
    #[arg(long)] pub assume_rbr: bool,
    /// Accepted: revenant never switches binlog_format; it checks ROW and FULL row images and refuses otherwise.
    #[arg(long)] pub switch_to_rbr: bool,
    /// Accepted: positions and checkpoints are always GTID sets (GTIDs must be on).
    #[arg(long)] pub gtid: bool,
    /// Accepted: with --exact-rowcount the rows are counted before the copy, and the total set to the rows copied.
    #[arg(long)] pub concurrent_rowcount: bool,
    /// Honoured: a writable --host that replicates from another server is taken for one of two primaries (else refused).
    #[arg(long)] pub allow_master_master: bool,
    /// Accepted: the cut-over does not rely on performance_schema's metadata locks (it waits for a marker instead).
    #[arg(long)] pub skip_metadata_lock_check: bool,
    /// Accepted: revenant changes no server setting; its cut-over needs no metadata-lock instrument.
    #[arg(long)] pub allow_setup_metadata_lock_instruments: bool,
    /// Accepted: a stale control socket is always removed; one a live process listens on is refused.
    #[arg(long)] pub initially_drop_socket_file: bool,
    /// Honoured: checkpoints are always on, in the same transaction as every chunk and applied batch; with this
    /// flag the checkpoint table is also kept after the swap (unless --ok-to-drop-table), for --revert.
    #[arg(long)] pub checkpoint: bool,
    /// Accepted: checkpoints commit with every chunk and batch, not every N seconds (N is checked, 1 to 86400).
    #[arg(long, value_name = "SECONDS")] pub checkpoint_seconds: Option<u64>,
    /// Accepted: cut-over retries always back off exponentially (0.2 s doubling, up to 5 s).
    #[arg(long)] pub cut_over_exponential_backoff: bool,
    /// Accepted: cut-over retries back off up to 5 s whatever this says (checked, 1 to 3600).
    #[arg(long, value_name = "SECONDS")] pub exponential_backoff_max_interval: Option<u64>,
    /// Accepted: revenant does not compare the server's reported port with --port.
    #[arg(long)] pub skip_port_validation: bool,
    /// Accepted: gh-ost's Aliyun RDS mode skips checks a managed server fails (its reported port, restarting
    /// replication); revenant makes neither. On a managed replica, name the primary with --assume-master-host.
    #[arg(long)] pub aliyun_rds: bool,
    /// Accepted: as --aliyun-rds, for Google Cloud SQL (1st generation).
    #[arg(long)] pub gcp: bool,
    /// Accepted: as --aliyun-rds, for Azure Database for MySQL (its replicas need --assume-master-host and
    /// --master-user: the primary's user name differs).
    #[arg(long)] pub azure: bool,
    /// Accepted: foreign keys are still checked (it is quick), and tables with them are refused.
    #[arg(long)] pub skip_foreign_key_checks: bool,
    /// Accepted: lag is measured with heartbeats (gh-ost ignores this deprecated flag too).
    #[arg(long, value_name = "QUERY")] pub replication_lag_query: Option<String>,
    /// Accepted: a lost binlog connection is retried for --retry-seconds, then the run stops resumably.
    #[arg(long, value_name = "N")] pub binlogsyncer_max_reconnect_attempts: Option<u64>,
    /// Accepted when it starts with utf8mb4 (revenant's connection charset; rows are copied as raw bytes).
    #[arg(long, value_name = "LIST")] pub charset: Option<String>,
    /// Accepted when innodb: only InnoDB tables are migrated.
    #[arg(long, value_name = "ENGINE")] pub storage_engine: Option<String>,
    /// Accepted: gh-ost's error traces; revenant's errors name what failed and what to do (RUST_LIB_BACKTRACE=1 adds a trace).
    #[arg(long)] pub stack: bool,
    /// Exit 0 when every other flag given is honoured or accepted, 1 when one is refused or unknown (nothing runs).
    #[arg(long)] pub check_flag: bool,
}

impl GhostCompatArgs {
    /// Refuses values that revenant cannot honour, before anything connects.
    pub fn check(&self) -> Result<()> {
        if let Some(c) = &self.charset {
            let first = c.split(',').next().unwrap_or("").trim();
            if !first.eq_ignore_ascii_case("utf8mb4") {
                return Err(eyre!("--charset {c}: revenant connects with utf8mb4"))
                    .suggestion("leave --charset out, or give utf8mb4 first (gh-ost's default is utf8mb4,utf8,latin1)");
            }
        }
        if let Some(e) = &self.storage_engine {
            if !e.eq_ignore_ascii_case("innodb") {
                return Err(eyre!("--storage-engine {e}: only InnoDB tables can be migrated"))
                    .suggestion("leave --storage-engine out (or give innodb)");
            }
        }
        super::settings::within("checkpoint-seconds", self.checkpoint_seconds.unwrap_or(300), 1, 86_400, "seconds")?;
        super::settings::within("exponential-backoff-max-interval", self.exponential_backoff_max_interval.unwrap_or(64), 1, 3600, "seconds")?;
        if self.assume_rbr || self.switch_to_rbr {
            tracing::info!("--assume-rbr / --switch-to-rbr: revenant never changes binlog_format; it checks ROW and FULL row images");
        }
        if self.checkpoint || self.checkpoint_seconds.is_some() {
            tracing::info!("--checkpoint: revenant's checkpoints are always on and commit with every chunk and batch; the checkpoint table is kept after the swap for --revert");
        }
        Ok(())
    }
}

fn unsupported(name: &str) -> Option<&'static (&'static str, bool, &'static str)> {
    UNSUPPORTED.iter().find(|(k, _, _)| *k == name)
}

/// Go's boolean spellings: `true`/`false`, `1`/`0`, `t`/`f` in any case.
fn go_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" => Some(false),
        _ => None,
    }
}

/// gh-ost (Go) accepts `-flag` and `--switch=false`; revenant's parser wants `--flag` and a bare `--switch`.
/// Every `-name[=v]` becomes `--name[=v]` (as Go reads it; unless it is the value of the flag before it), so that an
/// unknown one is named whole. `known` lists the command's long flags with whether each takes a value; refused
/// gh-ost flags count as known, so that their switches' `=false` is dropped too.
pub fn normalize(args: Vec<String>, known: &[(String, bool)]) -> Vec<String> {
    let takes_value = |name: &str| known.iter().find(|(k, _)| k == name).map(|(_, v)| *v).or_else(|| unsupported(name).map(|u| u.1));
    let mut out = Vec::with_capacity(args.len());
    let mut value_next = false;
    for a in args {
        let is_value = std::mem::take(&mut value_next);
        let single = a.len() > 2 && a.starts_with('-') && a.as_bytes()[1].is_ascii_lowercase();
        let a = if single && !is_value { format!("-{a}") } else { a };
        let Some(rest) = a.strip_prefix("--").filter(|_| !is_value) else {
            out.push(a);
            continue;
        };
        match rest.split_once('=') {
            Some((name, value)) if takes_value(name) == Some(false) => match go_bool(value) {
                Some(true) => out.push(format!("--{name}")),
                Some(false) if DEFAULT_ON.contains(&name) => out.push(format!("--no-{name}")),
                Some(false) => {}
                None => out.push(a),
            },
            Some(_) => out.push(a),
            None => {
                value_next = takes_value(rest) == Some(true);
                out.push(a);
            }
        }
    }
    out
}

/// gh-ost's `--conf` file may carry an `[osc]` section (chunk_size, max_lag_millis, max_load,
/// replication_lag_query): its settings become flags placed before the command line's own, so flags override
/// them. A key gh-ost does not read there is refused by name.
pub fn expand_osc_section(argv: Vec<String>, command: &str) -> Result<Vec<String>> {
    let mut conf = None;
    for (i, a) in argv.iter().enumerate() {
        if let Some(v) = a.strip_prefix("--conf=") {
            conf = Some(std::path::PathBuf::from(v));
        } else if a == "--conf" {
            conf = argv.get(i + 1).map(std::path::PathBuf::from);
        }
    }
    let Some(path) = conf.filter(|p| p.exists()) else { return Ok(argv) };
    let osc = super::credentials::read_sections(&path, &["osc"])?;
    let mut flags = Vec::new();
    for (key, value) in osc {
        match key.as_str() {
            "chunk-size" | "max-lag-millis" | "max-load" => flags.push(format!("--{key}={value}")),
            "replication-lag-query" if command == "migrate" => flags.push(format!("--{key}={value}")),
            "replication-lag-query" => {}
            _ => {
                return Err(eyre!("--conf {}: [osc] key '{key}' is not one gh-ost reads", path.display()))
                    .suggestion("[osc] takes chunk_size, max_lag_millis, max_load and replication_lag_query; give other settings as flags");
            }
        }
    }
    flags.sort();
    let mut out = argv[..2.min(argv.len())].to_vec();
    out.extend(flags);
    out.extend(argv.into_iter().skip(2));
    Ok(out)
}

/// The long flag name of an argument (`--name` or `--name=value`), if it is one.
fn flag_name(a: &str) -> Option<&str> {
    let name = a.strip_prefix("--")?.split('=').next().unwrap_or("");
    (!name.is_empty()).then_some(name)
}

/// Refuses gh-ost flags that revenant cannot honour, by name, with what to do.
pub fn refuse_unsupported(args: &[String]) -> Result<()> {
    for name in args.iter().filter_map(|a| flag_name(a)) {
        if let Some((_, _, why)) = unsupported(name) {
            return Err(eyre!("--{name} is a gh-ost flag that revenant does not implement"))
                .suggestion(format!("{why}; nothing was changed (docs/gh-ost-compatibility.md)"));
        }
    }
    Ok(())
}

/// gh-ost's `--check-flag`: the exit code says whether every other flag given is taken. Prints one line per flag
/// that is not, and returns the exit code (0 all taken, 1 otherwise).
pub fn check_flags(args: &[String], known: &[(String, bool)]) -> i32 {
    let mut code = 0;
    for name in args.iter().filter_map(|a| flag_name(a)).filter(|n| *n != "check-flag") {
        if let Some((_, _, why)) = unsupported(name) {
            println!("--{name}: refused by revenant: {why}");
            code = 1;
        } else if !known.iter().any(|(k, _)| k == name) {
            println!("--{name}: not a flag of revenant or gh-ost");
            code = 1;
        }
    }
    code
}

/// The message for a flag clap does not know: named, never clap's bare "unexpected argument". `migrate_has` says
/// whether `revenant migrate` takes it (a gh-ost flag given to another command).
pub fn unknown_flag_message(command: &str, flag: &str, similar: Option<&str>, migrate_has: bool) -> String {
    let mut msg = if migrate_has && command != "revenant migrate" {
        format!("error: {flag} is a flag of `revenant migrate`, not of `{command}`\n")
    } else {
        format!("error: {flag} is not a flag of `{command}`, nor one of gh-ost's\n")
    };
    if let Some(s) = similar {
        msg.push_str(&format!("  tip: did you mean {s}?\n"));
    }
    msg.push_str(&format!("  see `{command} --help` (docs/gh-ost-compatibility.md lists gh-ost's flags); nothing was changed\n"));
    msg
}

/// The message for a word that is no flag and follows none that takes a value (an unquoted `--alter` most often).
pub fn stray_value_message(command: &str, word: &str) -> String {
    format!(
        "error: '{word}' is not a flag, and no flag before it takes a value\n  \
         tip: quote a value with spaces: --alter \"ADD COLUMN c INT\"\n  \
         see `{command} --help`; nothing was changed\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<(String, bool)> {
        vec![("alter".to_string(), true), ("execute".to_string(), false), ("exact-rowcount".to_string(), false)]
    }

    #[test]
    fn single_dash_and_go_booleans_become_clap_flags() {
        let raw = ["-alter=add c int", "-execute", "-x", "--exact-rowcount=false", "-execute=true", "--alter=f=0", "-test-on-replica", "-tabel=t"];
        let out = normalize(raw.iter().map(|s| s.to_string()).collect(), &known());
        assert_eq!(out, vec!["--alter=add c int", "--execute", "-x", "--execute", "--alter=f=0", "--test-on-replica", "--tabel=t"]);
        // A value that starts with a dash stays as it is.
        let out = normalize(["-alter", "-drop-me", "-execute"].iter().map(|s| s.to_string()).collect(), &known());
        assert_eq!(out, vec!["--alter", "-drop-me", "--execute"]);
    }

    #[test]
    fn unsupported_flags_are_refused_by_name() {
        let e = refuse_unsupported(&["--tungsten".into()]).unwrap_err();
        assert!(format!("{e}").contains("--tungsten"));
        assert!(refuse_unsupported(&["--execute".into()]).is_ok());
    }

    #[test]
    fn check_flag_answers_like_gh_ost() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check_flags(&args(&["revenant", "migrate", "--check-flag", "--execute", "--alter=x"]), &known()), 0);
        assert_eq!(check_flags(&args(&["revenant", "migrate", "--check-flag", "--tungsten"]), &known()), 1);
        assert_eq!(check_flags(&args(&["revenant", "migrate", "--check-flag", "--no-such-flag"]), &known()), 1);
    }

    #[test]
    fn values_revenant_cannot_honour_are_refused() {
        let ok = GhostCompatArgs { charset: Some("utf8mb4,utf8,latin1".into()), storage_engine: Some("InnoDB".into()), ..Default::default() };
        assert!(ok.check().is_ok());
        let e = GhostCompatArgs { charset: Some("latin1".into()), ..Default::default() }.check().unwrap_err();
        assert!(format!("{e}").contains("--charset"), "{e}");
        let e = GhostCompatArgs { storage_engine: Some("rocksdb".into()), ..Default::default() }.check().unwrap_err();
        assert!(format!("{e}").contains("--storage-engine"), "{e}");
        let e = GhostCompatArgs { checkpoint_seconds: Some(u64::MAX), ..Default::default() }.check().unwrap_err();
        assert!(format!("{e}").contains("--checkpoint-seconds"), "{e}");
    }
}
