//! `--statsd-addr` (gh-ost's flag): the migration's status snapshot sent as StatsD gauges, over UDP (`host:port`)
//! or a Unix datagram socket (a path), with the cadence crate. Every second each metric of the Prometheus endpoint
//! (`control::metrics::families`) goes out as `revenant.<name>`, a gauge (totals too: StatsD counters would be
//! increments), tagged DogStatsD-style with `--statsd-tags`, `database`, `table` and the series' own label
//! (`phase`, `reason`); a value not known yet (NaN) is left out. `--runtime-metrics-interval` adds the process's
//! own gauges (resident and virtual memory, threads) every N seconds (0: none). Nothing is read back.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use cadence::prelude::*;
use cadence::{BufferedUdpMetricSink, BufferedUnixMetricSink, StatsdClient};
use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::engine::status::Status;

/// Where the gauges go.
#[derive(Debug, Clone, PartialEq)]
pub enum StatsdAddr {
    Udp(SocketAddr),
    Unix(PathBuf),
}

/// What `--statsd-addr`, `--statsd-tags` and `--runtime-metrics-interval` asked for.
#[derive(Debug, Clone)]
pub struct StatsdOptions {
    pub addr: StatsdAddr,
    pub tags: Vec<(String, String)>,
    /// None: no process gauges (`--runtime-metrics-interval 0`).
    pub runtime_every: Option<Duration>,
}

/// How often the snapshot is sent.
const EVERY: Duration = Duration::from_secs(1);
/// Lines are packed into datagrams of at most this many bytes (one Ethernet frame over UDP; a Unix socket takes a
/// whole snapshot at once): a snapshot's few dozen lines go as a few datagrams, not one each, so a receiver's
/// queue (10 datagrams on a Linux Unix socket) does not overflow.
const UDP_PAYLOAD: usize = 1432;
const UNIX_PAYLOAD: usize = 16 * 1024;

/// `--statsd-addr`: a path (`/run/statsd.sock`, or `unix:///run/statsd.sock`) is a Unix datagram socket; anything
/// else is `host:port`, resolved now (a name that does not resolve is refused before anything changes).
pub fn parse_addr(text: &str) -> Result<StatsdAddr> {
    let hint = "give host:port (e.g. 127.0.0.1:8125) or the path of a Unix datagram socket";
    if let Some(path) = text.strip_prefix("unix://").or(text.starts_with('/').then_some(text)) {
        return match path.is_empty() {
            true => Err(eyre!("--statsd-addr {text}: no socket path")).suggestion(hint),
            false => Ok(StatsdAddr::Unix(PathBuf::from(path))),
        };
    }
    let mut found = text.to_socket_addrs().map_err(|e| eyre!("--statsd-addr {text}: {e}")).suggestion(hint)?;
    found.next().map(StatsdAddr::Udp).ok_or_else(|| eyre!("--statsd-addr {text}: the name resolves to no address")).suggestion(hint)
}

/// `--statsd-tags`: `key:value` pairs, repeatable and comma-separated (`env:prod,service:db`). A key or value with
/// a character StatsD lines use as a separator (`|`, `#`, `,`, `:` in a key, white space) is refused.
pub fn parse_tags(given: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in given.iter().flat_map(|g| g.split(',')).map(str::trim).filter(|t| !t.is_empty()) {
        let bad = |c: char| c == '|' || c == '#' || c.is_whitespace() || c.is_control();
        match item.split_once(':') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() && !k.contains(bad) && !v.contains(bad) => out.push((k.to_string(), v.to_string())),
            _ => {
                return Err(eyre!("--statsd-tags {item}: not a key:value tag"))
                    .suggestion("give key:value pairs without spaces, '|' or '#', e.g. --statsd-tags env:prod,service:db")
            }
        }
    }
    Ok(out)
}

/// The client, its socket opened now (before the engine starts), tagged with the user's tags and the table.
pub fn client(opts: &StatsdOptions, database: &str, table: &str) -> Result<StatsdClient> {
    let mut builder = match &opts.addr {
        StatsdAddr::Udp(addr) => {
            let bind = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let socket = UdpSocket::bind(bind).wrap_err("opening a UDP socket for --statsd-addr")?;
            socket.set_nonblocking(true)?;
            let sink = BufferedUdpMetricSink::with_capacity(addr, socket, UDP_PAYLOAD).wrap_err_with(|| format!("--statsd-addr {addr}"))?;
            StatsdClient::builder("revenant", sink)
        }
        StatsdAddr::Unix(path) => {
            let socket = UnixDatagram::unbound().wrap_err("opening a datagram socket for --statsd-addr")?;
            socket.set_nonblocking(true)?;
            StatsdClient::builder("revenant", BufferedUnixMetricSink::with_capacity(path, socket, UNIX_PAYLOAD))
        }
    };
    for (k, v) in &opts.tags {
        builder = builder.with_tag(k.as_str(), v.as_str());
    }
    // A StatsD daemon that is down must not stop a migration: sends are best effort, as gh-ost's.
    let builder = builder.with_tag("database", tag_value(database)).with_tag("table", tag_value(table)).with_error_handler(|e| tracing::debug!("statsd: {e}"));
    Ok(builder.build())
}

/// A value StatsD's line format carries as a tag: its separators and white space become `_`.
fn tag_value(v: &str) -> String {
    v.chars().map(|c| if c == '|' || c == '#' || c == ',' || c.is_whitespace() || c.is_control() { '_' } else { c }).collect()
}

/// Sends the latest snapshot every second (and the process gauges every `runtime_every`) until `shutdown`; the
/// last snapshot once more at the end, so the final phase and totals arrive.
pub fn serve(client: StatsdClient, status: watch::Receiver<Status>, runtime_every: Option<Duration>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        let mut runtime = tokio::time::interval(runtime_every.unwrap_or(Duration::from_secs(3600)));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => send_snapshot(&client, &status.borrow().clone()),
                _ = runtime.tick(), if runtime_every.is_some() => send_process(&client),
            }
            client.flush().ok();
        }
        send_snapshot(&client, &status.borrow().clone());
        client.flush().ok();
    })
}

/// One snapshot as gauges.
pub fn send_snapshot(client: &StatsdClient, s: &Status) {
    for f in crate::control::metrics::families(s) {
        for (label, v) in f.series.iter().filter(|(_, v)| v.is_finite()) {
            let mut m = client.gauge_with_tags(f.name, *v);
            let value;
            if let Some((k, val)) = label {
                value = tag_value(val);
                m = m.with_tag(k, &value);
            }
            let _ = m.try_send();
        }
    }
}

/// The process's gauges, from /proc/self/status (gh-ost sends Go runtime gauges here; this is their counterpart).
fn send_process(client: &StatsdClient) {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else { return };
    for (field, name, scale) in [("VmRSS:", "process.resident_bytes", 1024.0), ("VmSize:", "process.virtual_bytes", 1024.0), ("Threads:", "process.threads", 1.0)] {
        let value = text.lines().find_map(|l| l.strip_prefix(field)).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse::<f64>().ok());
        if let Some(v) = value {
            let _ = client.gauge_with_tags(name, v * scale).try_send();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_a_socket_path_or_host_and_port() {
        assert_eq!(parse_addr("127.0.0.1:8125").ok(), Some(StatsdAddr::Udp("127.0.0.1:8125".parse().unwrap())));
        assert_eq!(parse_addr("/run/statsd.sock").ok(), Some(StatsdAddr::Unix("/run/statsd.sock".into())));
        assert_eq!(parse_addr("unix:///run/s.sock").ok(), Some(StatsdAddr::Unix("/run/s.sock".into())));
        assert!(parse_addr("localhost").is_err());
        assert!(parse_addr("unix://").is_err());
    }

    #[test]
    fn tags_are_key_value_pairs_without_separators() {
        let tags = parse_tags(&["env:prod,service:my-service".into(), "dc:eu-1".into()]).unwrap();
        assert_eq!(tags, vec![("env".into(), "prod".into()), ("service".into(), "my-service".into()), ("dc".into(), "eu-1".into())]);
        for bad in ["env", ":prod", "env:", "e|v:x", "env:a b", "env:#x"] {
            assert!(parse_tags(&[bad.into()]).is_err(), "{bad}");
        }
        assert_eq!(tag_value("max-load Threads_running=55 >= 50"), "max-load_Threads_running=55_>=_50");
    }
}
