//! gh-ost compatibility of the command line: gh-ost's single-dash long flags (`-alter=...`) are accepted, and a
//! gh-ost flag that revenant does not implement is refused by name with what to do instead, never ignored.

use color_eyre::eyre::{eyre, Result};
use color_eyre::Section;

/// gh-ost flags revenant does not implement, with the reason / what to do.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("assume-rbr", "revenant never changes binlog_format; set binlog_format=ROW on the server"),
    ("switch-to-rbr", "revenant never changes binlog_format; set binlog_format=ROW on the server"),
    ("migrate-on-replica", "run revenant against the primary"),
    ("test-on-replica", "run a dry run (without --execute) instead"),
    ("test-on-replica-skip-replica-stop", "run a dry run (without --execute) instead"),
    ("assume-master-host", "revenant connects to the server given by --host"),
    ("aliyun-rds", "cloud-specific modes are not implemented"),
    ("gcp", "cloud-specific modes are not implemented"),
    ("azure", "cloud-specific modes are not implemented"),
    ("tungsten", "Tungsten topologies are not supported"),
    ("discard-foreign-keys", "foreign keys are refused; drop them first"),
    ("skip-foreign-key-checks", "foreign keys are refused; drop them first"),
    ("skip-strict-mode", "revenant keeps the server's strict mode"),
    ("replica-server-id", "revenant picks a unique binlog client id itself"),
    ("master-user", "use --user for the one server revenant connects to"),
    ("master-password", "use --conf, MYSQL_PWD or --ask-pass"),
    ("concurrent-rowcount", "use --exact-rowcount for an exact count"),
    ("timestamp-old-table", "the old table is always named _<table>_del"),
    ("replication-lag-query", "lag is measured with heartbeats"),
    ("ssl", "TLS to the server is not implemented yet; connect over a trusted network or SSH tunnel"),
    ("ssl-ca", "TLS to the server is not implemented yet"),
    ("ssl-cert", "TLS to the server is not implemented yet"),
    ("ssl-key", "TLS to the server is not implemented yet"),
    ("ssl-allow-insecure", "TLS to the server is not implemented yet"),
    ("check-flag", "not needed: unknown flags are always refused"),
    ("gtid", "revenant always uses GTIDs"),
    ("storage-engine", "only InnoDB is supported"),
    ("cut-over-exponential-backoff", "cut-over retries always back off exponentially"),
    ("exponential-backoff-max-interval", "cut-over retries back off up to 5 s"),
    ("force-table-names", "artifact names follow gh-ost's defaults"),
    ("heartbeat-interval-millis", "heartbeats are written every 500 ms"),
    ("skip-port-validation", "not needed"),
    ("stack", "not needed"),
    ("quiet", "use --headless and redirect output"),
];

/// gh-ost (Go) accepts `-flag`; revenant's parser wants `--flag`. Rewrites `-name[=v]` for any known long flag.
pub fn normalize_single_dash(args: Vec<String>, known_long: &[String]) -> Vec<String> {
    args.into_iter()
        .map(|a| {
            if a.starts_with('-') && !a.starts_with("--") && a.len() > 2 {
                let name = a[1..].split('=').next().unwrap_or("");
                if known_long.iter().any(|k| k == name) || UNSUPPORTED.iter().any(|(k, _)| *k == name) {
                    return format!("-{a}");
                }
            }
            a
        })
        .collect()
}

/// Refuses gh-ost flags that revenant does not implement, by name.
pub fn refuse_unsupported(args: &[String]) -> Result<()> {
    for a in args {
        if let Some(name) = a.strip_prefix("--") {
            let name = name.split('=').next().unwrap_or("");
            if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| *k == name) {
                return Err(eyre!("--{name} is a gh-ost flag that revenant does not implement"))
                    .suggestion(format!("{why}; nothing was changed"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_flags_become_double() {
        let known = vec!["alter".to_string(), "execute".to_string()];
        let out = normalize_single_dash(vec!["-alter=add c int".into(), "-execute".into(), "-x".into()], &known);
        assert_eq!(out, vec!["--alter=add c int", "--execute", "-x"]);
    }

    #[test]
    fn unsupported_flags_are_refused_by_name() {
        let e = refuse_unsupported(&["--test-on-replica".into()]).unwrap_err();
        assert!(format!("{e}").contains("--test-on-replica"));
        assert!(refuse_unsupported(&["--execute".into()]).is_ok());
    }
}
