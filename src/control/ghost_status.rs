//! gh-ost's `status` block as runbook scripts read it: its header lines (what migrates where and since when, the
//! live settings, the flag files with `[set]` when they exist, where the socket is served), then revenant's own
//! lines (the ALTER, phase, checkpoint, cut-over gate), then the one-line status. gh-ost prints the same block after
//! every setting changed and after `throttle` / `no-throttle`, and so does revenant.

use std::path::{Path, PathBuf};

use crate::engine::status::{format_duration, Status};

use super::text::sup_line;

/// What the server knows of itself and the run's files (set once, when it starts serving).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Served {
    /// When the control server started, as gh-ost prints it ("Wed Dec 02 21:50:29 +0000 2026").
    pub started_at: String,
    /// This machine's host name ("executing on ...").
    pub executing_on: String,
    pub socket: Option<PathBuf>,
    pub throttle_flag_file: Option<PathBuf>,
    pub throttle_additional_flag_file: Option<PathBuf>,
    pub panic_flag_file: Option<PathBuf>,
}

impl Served {
    /// Stamps the start time and host name now.
    pub fn now(mut self) -> Self {
        self.started_at = local_time_now();
        self.executing_on = host_name();
        self
    }
}

/// The live settings' values, read from the engine just before the block is printed (name, value).
pub type LiveValues = Vec<(String, String)>;

/// The settings the header's fourth line shows, in gh-ost's order.
pub const HEADER_SETTINGS: &[&str] =
    &["chunk-size", "max-lag-millis", "dml-batch-size", "max-load", "critical-load", "nice-ratio", "throttle-query", "throttle-http", "postpone-cut-over-flag-file", "throttle-control-replicas"];

fn value<'a>(live: &'a LiveValues, name: &str) -> &'a str {
    live.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

/// A flag file's line: its path, and ` [set]` while it exists.
fn flag_line(name: &str, path: &Path) -> String {
    let set = if path.exists() { "[set]" } else { "" };
    format!("# {name}: {} {set}\n", path.display())
}

/// The whole `status` answer.
pub fn status_block(s: &Status, live: &LiveValues, served: &Served, tcp: Option<(u16, &Path)>) -> String {
    let t = &s.target;
    let mut out = format!("# Migrating `{}`.`{}`; Ghost table is `{}`.`{}`\n", t.database, t.table, t.database, t.ghost_table);
    let writes_to = if t.applier_host.is_empty() { &t.host } else { &t.applier_host };
    out.push_str(&format!("# Migrating {writes_to}; inspecting {}; executing on {}\n", t.host, served.executing_on));
    out.push_str(&format!("# Migration started at {}\n", served.started_at));
    let nice: f64 = value(live, "nice-ratio").parse().unwrap_or(0.0);
    out.push_str(&format!(
        "# chunk-size: {}; max-lag-millis: {}ms; dml-batch-size: {}; max-load: {}; critical-load: {}; nice-ratio: {nice:.6}\n",
        value(live, "chunk-size"),
        value(live, "max-lag-millis"),
        value(live, "dml-batch-size"),
        value(live, "max-load"),
        value(live, "critical-load"),
    ));
    if let Some(p) = &served.throttle_flag_file {
        out.push_str(&flag_line("throttle-flag-file", p));
    }
    if let Some(p) = &served.throttle_additional_flag_file {
        out.push_str(&flag_line("throttle-additional-flag-file", p));
    }
    for name in ["throttle-query", "throttle-http"] {
        if !value(live, name).is_empty() {
            out.push_str(&format!("# {name}: {}\n", value(live, name)));
        }
    }
    let replicas = value(live, "throttle-control-replicas");
    if !replicas.is_empty() {
        out.push_str(&format!("# throttle-control-replicas count: {}\n", replicas.split(',').count()));
    }
    let postpone = value(live, "postpone-cut-over-flag-file");
    if !postpone.is_empty() {
        out.push_str(&flag_line("postpone-cut-over-flag-file", Path::new(postpone)));
    }
    if let Some(p) = &served.panic_flag_file {
        out.push_str(&flag_line("panic-flag-file", p));
    }
    if let Some(p) = &served.socket {
        out.push_str(&format!("# Serving on unix socket: {}\n", p.display()));
    }
    if let Some((port, file)) = tcp {
        out.push_str(&format!("# Serving on TCP port: {port}; its token is in {}\n", file.display()));
    }
    out.push_str(&revenant_lines(s));
    out.push_str(&sup_line(s));
    out.push('\n');
    out
}

/// The verification: its progress while a pass runs, else what the last one found and when it ended (Unix time).
fn verify_line(s: &Status) -> String {
    let v = &s.verify;
    if v.running {
        return format!("# Verifying: round {}, chunks {}/{}, rows {}\n", v.round.max(1), v.chunks_done, v.chunks_total, v.rows_verified);
    }
    match (&v.last_result, v.last_ended_unix) {
        (Some(r), Some(t)) => format!("# Last verification (ended at Unix time {t}; lock {} ms): {r}\n", v.last_lock_ms.unwrap_or(0)),
        _ => String::new(),
    }
}

/// revenant's own lines, after gh-ost's header.
fn revenant_lines(s: &Status) -> String {
    let t = &s.target;
    let mut out = format!("# Alter: {}\n", t.alter);
    out.push_str(&format!("# Server: {} {}; phase: {}\n", t.flavor, t.version, s.phase.map(|p| p.label()).unwrap_or("starting")));
    if s.throttle.throttled {
        out.push_str(&format!("# Throttled: {}\n", s.throttle.reason));
    }
    if let Some(age) = s.checkpoint.age_seconds {
        out.push_str(&format!("# Last checkpoint: {} ago at {}\n", format_duration(age), s.checkpoint.gtid_set));
    }
    if s.cutover.postponed {
        out.push_str(&format!("# Cut-over postponed for {}; approve with `unpostpone`\n", format_duration(s.cutover.waiting_seconds)));
    }
    if let Some(reason) = &s.cutover.blocked_reason {
        out.push_str(&format!("# Cut-over blocked: {reason}\n"));
    }
    out.push_str(&verify_line(s));
    if let Some(msg) = &s.message {
        out.push_str(&format!("# {msg}\n"));
    }
    if let Some(cmd) = &s.resume_command {
        out.push_str(&format!("# Resume with: {cmd}\n"));
    }
    out
}

/// `coordinates`: the binary log position read so far (the applied one until the stream's is known, as the status
/// line does).
pub fn coordinates(s: &Status) -> String {
    let (file, pos) = s.binlog.read_position();
    format!("{file}:{pos}")
}

/// `applier` (where the ghost is written) and `inspector` (where the original is read and the binlog tailed).
pub fn host_line(s: &Status, applier: bool) -> String {
    let t = &s.target;
    let host = if applier && !t.applier_host.is_empty() { &t.applier_host } else { &t.host };
    format!("Host: {host}, Version: {}", t.version)
}

/// Now in the local time zone, as gh-ost prints its start time ("Mon Jan 02 15:04:05 -0700 2006").
fn local_time_now() -> String {
    crate::engine::plan::old_table::local_time(c"%a %b %d %H:%M:%S %z %Y")
}

/// This machine's host name (empty if it cannot be read).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_reads_as_gh_osts() {
        let mut s = Status::default();
        s.target.database = "shop".into();
        s.target.table = "orders".into();
        s.target.ghost_table = "_orders_gho".into();
        s.target.host = "db1:3306".into();
        let live: LiveValues = [("chunk-size", "1000"), ("max-lag-millis", "1500"), ("dml-batch-size", "10"), ("nice-ratio", "0.5")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let served = Served { started_at: "Wed Dec 02 21:50:29 +0000 2026".into(), executing_on: "vm".into(), ..Served::default() };
        let text = status_block(&s, &live, &served, None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# Migrating `shop`.`orders`; Ghost table is `shop`.`_orders_gho`");
        assert_eq!(lines[1], "# Migrating db1:3306; inspecting db1:3306; executing on vm");
        assert_eq!(lines[2], "# Migration started at Wed Dec 02 21:50:29 +0000 2026");
        assert_eq!(lines[3], "# chunk-size: 1000; max-lag-millis: 1500ms; dml-batch-size: 10; max-load: ; critical-load: ; nice-ratio: 0.500000");
        assert!(lines.last().is_some_and(|l| l.starts_with("Copy: ")), "{text}");
    }

    #[test]
    fn the_start_time_has_gh_osts_shape() {
        let t = local_time_now();
        let parts: Vec<&str> = t.split(' ').collect();
        assert_eq!(parts.len(), 6, "{t}");
        assert!(parts[4].starts_with('+') || parts[4].starts_with('-'), "{t}");
    }
}
