//! `--statsd-addr`, `--statsd-tags`, `--runtime-metrics-interval` (gh-ost's StatsD flags) on every selected flavour:
//! a real migration started from the command line sends its metrics as StatsD gauges to a UDP listener and to a
//! Unix datagram socket of the test; the gauges carry the tags asked for, the rows copied end at the table's row
//! count, the last phase sent is `done`, and the process gauges arrive. Bad values are refused before connecting.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Command as Proc;
use std::time::{Duration, Instant};

use color_eyre::eyre::{ensure, eyre, Result};
use common::{each_flavor, exec_all, Server};
use mysql_async::prelude::Queryable;

const ROWS: u64 = 3000;
const DEADLINE: Duration = Duration::from_secs(60);

fn migrate(port: u16, extra: &[&str]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &port.to_string(), "--user", "root", "--headless"]);
    p.args(["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN w INT"]);
    p.args(extra).env_remove("MYSQL_PWD");
    p
}

/// One StatsD line: name, value, type and its tags.
#[derive(Debug)]
struct Gauge {
    name: String,
    value: f64,
    tags: HashMap<String, String>,
}

fn parse_line(line: &str) -> Result<Gauge> {
    let mut parts = line.split('|');
    let (name, value) = parts.next().and_then(|nv| nv.rsplit_once(':')).ok_or_else(|| eyre!("bad StatsD line {line}"))?;
    ensure!(parts.next() == Some("g"), "not a gauge: {line}");
    let tags = parts
        .find_map(|p| p.strip_prefix('#'))
        .map(|t| t.split(',').filter_map(|kv| kv.split_once(':')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .unwrap_or_default();
    Ok(Gauge { name: name.to_string(), value: value.parse().map_err(|_| eyre!("bad value in {line}"))?, tags })
}

/// Runs the migration while `recv` collects datagrams; returns every gauge received, in order. The cut-over is
/// postponed by the flag file `postpone` until a gauge says the run is ready: the gauges are live, not only sent
/// at the end.
fn run_collecting(mut p: Proc, postpone: &std::path::Path, recv: impl Fn(&mut [u8]) -> std::io::Result<usize>) -> Result<Vec<Gauge>> {
    std::fs::write(postpone, b"")?;
    p.arg(format!("--postpone-cut-over-flag-file={}", postpone.display()));
    let mut child = p.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn()?;
    let mut gauges = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + DEADLINE;
    let mut exited = None;
    // Keep reading for a moment after the exit: the last snapshot is sent as the run ends.
    while exited.is_none_or(|at: Instant| at.elapsed() < Duration::from_millis(500)) {
        if Instant::now() > deadline {
            child.kill()?;
            let out = child.wait_with_output()?;
            let names: BTreeSet<&str> = gauges.iter().map(|g: &Gauge| g.name.as_str()).collect();
            return Err(eyre!("the migration did not end within {DEADLINE:?} ({} gauges: {names:?}): {}", gauges.len(), String::from_utf8_lossy(&out.stderr)));
        }
        if exited.is_none() && child.try_wait()?.is_some() {
            exited = Some(Instant::now());
        }
        match recv(&mut buf) {
            Ok(n) => {
                for line in String::from_utf8_lossy(&buf[..n]).lines().filter(|l| !l.is_empty()) {
                    let g = parse_line(line)?;
                    if g.name == "revenant.phase" && g.value == 1.0 && g.tags.get("phase").is_some_and(|p| p == "ready") {
                        let _ = std::fs::remove_file(postpone);
                    }
                    gauges.push(g);
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "the migration failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(gauges)
}

/// What every run must have sent.
fn check(gauges: &[Gauge], how: &str) -> Result<()> {
    ensure!(!gauges.is_empty(), "{how}: no gauge received");
    let want = [("env", "test"), ("service", "db"), ("database", "shop"), ("table", "orders")];
    for g in gauges {
        for (k, v) in want {
            ensure!(g.tags.get(k).map(String::as_str) == Some(v), "{how}: {} lacks the tag {k}:{v}: {:?}", g.name, g.tags);
        }
    }
    let copied = gauges.iter().rev().find(|g| g.name == "revenant.rows_copied_total").ok_or_else(|| eyre!("{how}: no rows_copied_total"))?;
    ensure!(copied.value as u64 == ROWS, "{how}: the last rows_copied_total is {}, the table has {ROWS} rows", copied.value);
    let last_phase = gauges
        .iter()
        .rev()
        .find(|g| g.name == "revenant.phase" && g.value == 1.0)
        .and_then(|g| g.tags.get("phase").cloned())
        .ok_or_else(|| eyre!("{how}: no phase gauge at 1"))?;
    ensure!(last_phase == "done", "{how}: the last phase sent is {last_phase}, not done");
    let phases: BTreeSet<&str> = gauges.iter().filter(|g| g.name == "revenant.phase" && g.value == 1.0).filter_map(|g| g.tags.get("phase").map(String::as_str)).collect();
    ensure!(phases.contains("ready"), "{how}: the phases seen at 1 were {phases:?}");
    let rss = gauges.iter().find(|g| g.name == "revenant.process.resident_bytes").ok_or_else(|| eyre!("{how}: no process gauge"))?;
    ensure!(rss.value > 1_000_000.0, "{how}: resident bytes {}", rss.value);
    Ok(())
}

async fn seed(server: &Server) -> Result<()> {
    let mut c = server.conn().await?;
    exec_all(&mut c, "DROP DATABASE IF EXISTS shop;\nCREATE DATABASE shop;\nCREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))").await?;
    // Both servers stop a recursion at 1,000 by default, each under its own variable.
    c.query_drop("SET SESSION cte_max_recursion_depth = 100000").await.ok();
    c.query_drop("SET SESSION max_recursive_iterations = 100000").await.ok();
    c.query_drop(format!("INSERT INTO shop.orders (v) SELECT CONCAT('v', seq) FROM (WITH RECURSIVE s(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM s WHERE seq < {ROWS}) SELECT seq FROM s) x")).await?;
    Ok(())
}

const FLAGS: &[&str] = &["--execute", "--ok-to-drop-table", "--statsd-tags", "env:test", "--statsd-tags=service:db", "--runtime-metrics-interval", "1", "--chunk-size", "100"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_sends_its_metrics_to_statsd_over_udp_and_a_unix_socket() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server).await?;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = udp.local_addr()?.to_string();
        let base = std::env::var("REVENANT_SANDBOX_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        let postpone = base.join(format!("statsd-postpone-{}-{}", std::process::id(), flavor.name()));
        let socket = base.join(format!("statsd-{}-{}.ctl", std::process::id(), flavor.name()));
        let socket_arg = format!("--serve-socket-file={}", socket.display());
        let mut p = migrate(server.port, FLAGS);
        p.args(["--statsd-addr", &addr, &socket_arg]);
        let gauges = tokio::task::block_in_place(|| run_collecting(p, &postpone, |b| udp.recv(b)))?;
        check(&gauges, "udp")?;

        seed(&server).await?;
        let path = base.join(format!("statsd-{}-{}.sock", std::process::id(), flavor.name()));
        let _ = std::fs::remove_file(&path);
        let unix = std::os::unix::net::UnixDatagram::bind(&path)?;
        unix.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut p = migrate(server.port, FLAGS);
        p.args([format!("--statsd-addr={}", path.display()), socket_arg]);
        let gauges = tokio::task::block_in_place(|| run_collecting(p, &postpone, |b| unix.recv(b)))?;
        let _ = std::fs::remove_file(&path);
        check(&gauges, "unix socket")
    })
    .await;
}

#[test]
fn bad_statsd_values_are_refused_before_connecting() {
    // Port 1: nothing listens; every refusal must come before a connection is tried.
    let cases: &[(&[&str], &str)] = &[
        (&["--statsd-addr", "no-such-host.invalid:8125"], "--statsd-addr"),
        (&["--statsd-addr", "127.0.0.1:8125", "--statsd-tags", "env"], "--statsd-tags"),
        (&["--statsd-addr", "127.0.0.1:8125", "--statsd-tags", "env:a b"], "--statsd-tags"),
        (&["--statsd-tags", "env:prod"], "--statsd-tags needs --statsd-addr"),
        (&["--statsd-addr", "127.0.0.1:8125", "--runtime-metrics-interval", "86401"], "--runtime-metrics-interval"),
    ];
    for (args, needle) in cases {
        let out = migrate(1, args).output().expect("revenant runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: exit {:?}, stderr {stderr}", out.status.code());
        assert!(stderr.contains(needle), "{args:?}: the refusal does not name {needle}: {stderr}");
        assert!(!stderr.contains("cannot connect"), "{args:?}: connected before refusing: {stderr}");
    }
}
