//! Every flag of gh-ost (read from `gh-ost --help` when the binary is here, else the checked-in list of gh-ost
//! 145799ee's flags) given to `revenant migrate` on a real server: honoured and no-op flags run the dry run,
//! refused ones are refused by name with what to do and change nothing; none reaches clap's "unexpected argument";
//! docs/gh-ost-compatibility.md says the same of each. gh-ost's runbook line runs against a replica (replica mode)
//! and on the primary; the two command lines of gh-ost's resume page resume a migration killed mid-copy.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Output};

use color_eyre::eyre::{ensure, eyre, Result};
use common::{each_flavor, exec_all, Server};
use mysql_async::prelude::Queryable;

/// gh-ost 145799ee's flags (`gh-ost --help`), each with a value to give it when it takes one. `{port}` is the
/// server's port, `{dir}` a scratch directory, `{conf}` a my.cnf file with user=root.
const GH_OST_FLAGS: &[(&str, Option<&str>)] = &[
    ("aliyun-rds", None), ("allow-master-master", None), ("allow-nullable-unique-key", None), ("allow-on-master", None),
    ("allow-setup-metadata-lock-instruments", None), ("allow-zero-in-date", None), ("alter", Some("ADD COLUMN w INT")),
    ("analyze-ghost-table-before-cutover", None), ("approve-renamed-columns", None), ("ask-pass", None),
    ("assume-master-host", Some("127.0.0.1:{port}")), ("assume-rbr", None), ("attempt-instant-ddl", None), ("azure", None),
    ("binlogsyncer-max-reconnect-attempts", Some("3")), ("charset", Some("utf8mb4,utf8,latin1")), ("check-flag", None),
    ("checkpoint", None), ("checkpoint-seconds", Some("300")), ("chunk-size", Some("1000")), ("concurrent-rowcount", None),
    ("conf", Some("{conf}")), ("critical-load", Some("Threads_running=1000")), ("critical-load-hibernate-seconds", Some("0")),
    ("critical-load-interval-millis", Some("0")), ("cut-over", Some("default")), ("cut-over-exponential-backoff", None),
    ("cut-over-lock-timeout-seconds", Some("3")), ("database", Some("shop")), ("debug", None), ("default-retries", Some("60")),
    ("discard-foreign-keys", None), ("dml-batch-size", Some("10")), ("exact-rowcount", None), ("execute", None),
    ("exponential-backoff-max-interval", Some("64")), ("force-named-cut-over", None), ("force-named-panic", None),
    ("force-table-names", Some("x")), ("gcp", None), ("gtid", None), ("heartbeat-interval-millis", Some("100")), ("help", None),
    ("hooks-hint", Some("ticket-1")), ("hooks-hint-owner", Some("dba")), ("hooks-hint-token", Some("t0k")),
    ("hooks-path", Some("{dir}")), ("hooks-status-interval", Some("60")), ("host", Some("127.0.0.1")), ("ignore-http-errors", None),
    ("include-triggers", None), ("initially-drop-ghost-table", None), ("initially-drop-old-table", None),
    ("initially-drop-socket-file", None), ("master-password", Some("x")), ("master-user", Some("x")),
    ("max-lag-millis", Some("1500")), ("max-load", Some("Threads_running=25")), ("migrate-on-replica", None),
    ("mysql-timeout", Some("1.5")), ("nice-ratio", Some("0.5")), ("ok-to-drop-table", None), ("old-table", Some("_orders_del")),
    ("panic-flag-file", Some("{dir}/panic.flag")), ("panic-on-warnings", None), ("password", Some("")), ("port", Some("{port}")),
    ("postpone-cut-over-flag-file", Some("{dir}/postpone.flag")), ("quiet", None), ("remove-trigger-suffix-if-exists", None),
    ("replica-server-id", Some("99999")), ("replication-lag-query", Some("SELECT 1")), ("resume", None), ("revert", None),
    ("runtime-metrics-interval", Some("10")), ("serve-socket-file", Some("{dir}/s.sock")), ("serve-tcp-port", Some("0")),
    ("skip-foreign-key-checks", None), ("skip-metadata-lock-check", None), ("skip-port-validation", None),
    ("skip-renamed-columns", None), ("skip-strict-mode", None), ("ssl", None), ("ssl-allow-insecure", None),
    ("ssl-ca", Some("{dir}/ca.pem")), ("ssl-cert", Some("{dir}/c.pem")), ("ssl-key", Some("{dir}/k.pem")), ("stack", None),
    ("statsd-addr", Some("127.0.0.1:8125")), ("statsd-tags", Some("env:test")), ("storage-engine", Some("innodb")),
    ("switch-to-rbr", None), ("table", Some("orders")), ("test-on-replica", None), ("test-on-replica-skip-replica-stop", None),
    ("throttle-additional-flag-file", Some("{dir}/t2.flag")), ("throttle-control-replicas", Some("127.0.0.1:{port}")),
    ("throttle-flag-file", Some("{dir}/t.flag")), ("throttle-http", Some("http://127.0.0.1:1/")),
    ("throttle-http-interval-millis", Some("100")), ("throttle-http-timeout-millis", Some("1000")),
    ("throttle-query", Some("SELECT 0")), ("timestamp-old-table", None), ("trigger-suffix", Some("_v2")), ("tungsten", None),
    ("user", Some("root")), ("verbose", None), ("version", None),
];

/// The flag names of `gh-ost --help` when gh-ost is here (GH_OST_BIN, or /work/shared/tools/gh-ost), else None.
fn help_flag_names() -> Option<Vec<String>> {
    let bin = std::env::var("GH_OST_BIN").unwrap_or_else(|_| "/work/shared/tools/gh-ost".into());
    let out = Proc::new(&bin).arg("--help").output().ok()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let names: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  -"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    (!names.is_empty()).then_some(names)
}

/// The verdict docs/gh-ost-compatibility.md gives each flag: `honoured`, `no-op` or `refused`.
fn documented_verdicts() -> Result<HashMap<String, String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/gh-ost-compatibility.md");
    let text = std::fs::read_to_string(path)?;
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells.get(1).and_then(|c| c.strip_prefix("`--")).and_then(|c| c.strip_suffix('`')).ok_or_else(|| eyre!("row {line}"))?;
        let verdict = cells.get(3).ok_or_else(|| eyre!("row {line}"))?.trim_matches('*').to_string();
        out.insert(name.to_string(), verdict);
    }
    Ok(out)
}

struct Scratch {
    port: u16,
    dir: PathBuf,
    conf: PathBuf,
}

impl Scratch {
    fn new(server: &Server, tag: &str) -> Result<Scratch> {
        let base = std::env::var("REVENANT_SANDBOX_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        let dir = base.join(format!("ghost-flags-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("my.cnf");
        std::fs::write(&conf, "[client]\nuser=root\n")?;
        Ok(Scratch { port: server.port, dir, conf })
    }

    fn value(&self, v: &str) -> String {
        v.replace("{port}", &self.port.to_string()).replace("{dir}", &self.dir.display().to_string()).replace("{conf}", &self.conf.display().to_string())
    }

    /// `revenant migrate` on the server, a dry run of shop.orders unless `extra` says otherwise.
    fn migrate(&self, extra: &[String]) -> Result<Output> {
        let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
        p.args(["migrate", "--host", "127.0.0.1", "--port", &self.port.to_string(), "--user", "root", "--headless"])
            .args(["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN w INT"])
            .args(extra)
            .env_remove("MYSQL_PWD")
            .stdin(std::process::Stdio::null());
        Ok(p.output()?)
    }
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// The one flag given as gh-ost runbooks do: `--name` or `--name=value`.
fn spelled(s: &Scratch, name: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("--{name}={}", s.value(v)),
        None => format!("--{name}"),
    }
}

/// Checks one flag's run against its documented verdict.
fn check_flag(name: &str, verdict: &str, out: &Output) -> Result<()> {
    let (stdout, stderr) = text(out);
    let code = out.status.code();
    ensure!(!stderr.contains("unexpected argument") && !stderr.contains("not a flag of"), "--{name} reached the unknown-flag error: {stderr}");
    match (verdict, name) {
        ("refused", _) => {
            ensure!(code == Some(2), "--{name}: refused should exit 2, got {code:?}: {stderr}");
            ensure!(stderr.contains(&format!("--{name} is a gh-ost flag that revenant does not implement")), "--{name}: not refused by name: {stderr}");
            ensure!(stderr.contains("nothing was changed"), "--{name}: the refusal does not say what happened: {stderr}");
        }
        (_, "help") => ensure!(code == Some(0) && stdout.contains("Usage: revenant migrate"), "--help: {code:?} {stdout}"),
        (_, "version") => ensure!(code == Some(0) && (stdout.starts_with("revenant-migrate ") || stdout.starts_with("revenant ")), "--version: {stdout}"),
        (_, "check-flag") => ensure!(code == Some(0) && !stdout.contains("dry run"), "--check-flag: {code:?} {stdout}{stderr}"),
        // Accepted (asked with --check-flag: a real run would prompt on the terminal).
        (_, "ask-pass") => ensure!(code == Some(0) && stdout.is_empty(), "--check-flag --ask-pass: {code:?} {stdout}{stderr}"),
        // Honoured, but this server serves no TLS the flag alone could verify (tests/tls.rs runs them against
        // servers that do): refused before anything changes, the reason naming --ssl.
        (_, n) if n.starts_with("ssl") => {
            ensure!(code == Some(2) && stderr.contains("--ssl"), "--{name} on a server without a verifiable TLS setup: {code:?} {stderr}")
        }
        // Honoured together (the run of all accepted flags below); alone each lacks its companion, and is refused
        // before anything changes as gh-ost refuses it ("--trigger-suffix must be used with --include-triggers").
        (_, "include-triggers" | "trigger-suffix" | "remove-trigger-suffix-if-exists") => ensure!(
            code == Some(2) && stderr.contains("--include-triggers") && stderr.contains("--trigger-suffix"),
            "--{name} alone: {code:?} {stderr}"
        ),
        // Honoured on a replica (tests/on_replica.rs); this server replicates from nobody: refused before anything
        // changes, as gh-ost refuses them on a primary, and the companion flag alone as gh-ost refuses it.
        (_, "test-on-replica" | "migrate-on-replica") => ensure!(
            code == Some(2) && stderr.contains("replicates from nobody") && stderr.contains(&format!("--{name}")),
            "--{name} on a server that is no replica: {code:?} {stderr}"
        ),
        (_, "test-on-replica-skip-replica-stop") => {
            ensure!(code == Some(2) && stderr.contains("requires --test-on-replica"), "--{name} alone: {code:?} {stderr}")
        }
        // Honoured as a pair on a migration run with --checkpoint (tests/revert.rs); alone each is refused
        // before anything changes, naming the other.
        (_, "revert") => ensure!(code == Some(2) && stderr.contains("--revert needs --old-table"), "--{name} alone: {code:?} {stderr}"),
        (_, "old-table") => ensure!(code == Some(2) && stderr.contains("--old-table is used only with --revert"), "--{name} alone: {code:?} {stderr}"),
        // Honoured with --statsd-addr (tests/statsd.rs, and the run of all accepted flags below); alone the tags
        // would do nothing: refused before anything changes, naming the companion.
        (_, "statsd-tags") => ensure!(code == Some(2) && stderr.contains("--statsd-tags needs --statsd-addr"), "--{name} alone: {code:?} {stderr}"),
        // Accepted, but there is no checkpoint to resume from: the run gets past the flags.
        (_, "resume") => ensure!(!stderr.contains("does not implement"), "--resume: {stderr}"),
        ("honoured" | "no-op", _) => {
            ensure!(code == Some(0) && stdout.contains("dry run: nothing was changed"), "--{name}: the dry run did not pass: {code:?} {stdout}{stderr}")
        }
        (other, _) => return Err(eyre!("--{name}: docs/gh-ost-compatibility.md gives an unknown verdict {other:?}")),
    }
    Ok(())
}

async fn shop_tables(c: &mut mysql_async::Conn) -> Result<Vec<String>> {
    Ok(c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='shop' ORDER BY 1").await?)
}

#[test]
fn the_checked_in_list_is_gh_osts_and_the_docs_cover_every_flag() {
    let listed: Vec<&str> = GH_OST_FLAGS.iter().map(|(n, _)| *n).collect();
    assert_eq!(listed.len(), 108, "gh-ost 145799ee lists 108 flags (106 and -help, -version)");
    if let Some(names) = help_flag_names() {
        assert_eq!(names, listed, "the checked-in list differs from this gh-ost's --help");
    }
    let docs = documented_verdicts().expect("docs/gh-ost-compatibility.md");
    for name in &listed {
        let v = docs.get(*name).unwrap_or_else(|| panic!("docs/gh-ost-compatibility.md has no row for --{name}"));
        assert!(["honoured", "no-op", "refused"].contains(&v.as_str()), "--{name}: verdict {v:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gh_ost_flag_is_honoured_accepted_or_refused_by_name() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(&mut c, "CREATE DATABASE shop;\nCREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))").await?;
        c.query_drop("INSERT INTO shop.orders (v) VALUES ('a'), ('b'), ('c')").await?;
        let s = Scratch::new(&server, flavor.name())?;
        let docs = documented_verdicts()?;
        let names: Vec<String> = help_flag_names().unwrap_or_else(|| GH_OST_FLAGS.iter().map(|(n, _)| n.to_string()).collect());
        let (mut accepted, mut refused) = (Vec::new(), 0);
        for name in names.iter().filter(|n| n.as_str() != "execute") {
            let value = GH_OST_FLAGS.iter().find(|(n, _)| n == name).ok_or_else(|| eyre!("--{name} is not in the checked-in list"))?.1;
            let verdict = docs.get(name).ok_or_else(|| eyre!("docs/gh-ost-compatibility.md has no row for --{name}"))?;
            let mut args = vec![spelled(&s, name, value)];
            if name == "ask-pass" {
                args.insert(0, "--check-flag".into());
            }
            let out = s.migrate(&args)?;
            check_flag(name, verdict, &out)?;
            // Without --quiet the dry run logs at info (so the check of --quiet can fail).
            if name == "verbose" {
                ensure!(text(&out).1.contains("INFO"), "--verbose: no info lines: {}", text(&out).1);
            }
            if name == "quiet" {
                ensure!(!text(&out).1.contains("INFO"), "--quiet still logs at info: {}", text(&out).1);
            }
            ensure!(shop_tables(&mut c).await? == ["orders"], "--{name} changed the server");
            if verdict == "refused" {
                refused += 1;
                // gh-ost's single-dash spelling is refused by name too.
                let single = spelled(&s, name, value).split_off(1);
                check_flag(name, verdict, &s.migrate(&[single])?)?;
            } else if !["help", "version", "check-flag", "ask-pass", "resume", "test-on-replica", "migrate-on-replica", "test-on-replica-skip-replica-stop"].contains(&name.as_str())
                && !name.starts_with("ssl")
            {
                accepted.push((name.clone(), value));
            }
        }
        // All accepted flags together, in gh-ost's single-dash spelling, with Go's `=true` / `=false` for switches.
        // (--skip-renamed-columns and --approve-renamed-columns exclude each other: the first is left out; --revert
        // and --old-table need a completed migration with a kept checkpoint: tests/revert.rs.)
        let together: Vec<String> = accepted
            .iter()
            .filter(|(n, _)| !["skip-renamed-columns", "revert", "old-table"].contains(&n.as_str()))
            .map(|(n, v)| match v {
                Some(v) => format!("-{n}={}", s.value(v)),
                None if n == "concurrent-rowcount" => format!("-{n}=false"),
                None => format!("-{n}=true"),
            })
            .collect();
        let out = s.migrate(&together)?;
        let (stdout, stderr) = text(&out);
        ensure!(out.status.success() && stdout.contains("dry run: nothing was changed"), "all accepted flags together ({together:?}): {stdout}{stderr}");
        // --check-flag answers 1 when a flag given is refused.
        let out = s.migrate(&["--check-flag".into(), "--tungsten".into()])?;
        ensure!(out.status.code() == Some(1), "--check-flag --tungsten: {:?}", text(&out));
        // --execute, last: it migrates.
        let out = s.migrate(&["--execute".into(), "--ok-to-drop-table".into(), format!("--serve-socket-file={}/x.sock", s.dir.display())])?;
        let (stdout, stderr) = text(&out);
        ensure!(out.status.success() && stdout.contains("Done: shop.orders migrated"), "--execute: {stdout}{stderr}");
        let cols: Vec<String> = c.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='orders' ORDER BY ORDINAL_POSITION").await?;
        ensure!(cols == ["id", "v", "w"], "after --execute: {cols:?}");
        eprintln!("[{}] {} flags accepted (alone and together), {refused} refused by name", flavor.name(), accepted.len());
        let _ = std::fs::remove_dir_all(&s.dir);
        Ok(())
    })
    .await;
}

/// gh-ost's runbook line (../shared/notes/gh-ost-runbook.md), pointed at a sandbox primary and its replica.
fn runbook(replica: u16, panic_flag: &Path, postpone_flag: &Path) -> Vec<String> {
    [
        "--max-load=Threads_running=25",
        "--critical-load=Threads_running=1000",
        "--chunk-size=1000",
        &format!("--throttle-control-replicas=127.0.0.1:{replica}"),
        "--max-lag-millis=1500",
        "--user=gh-ost",
        "--password=123456",
        "--database=shop",
        "--table=orders",
        "--verbose",
        "--alter=engine=innodb",
        "--switch-to-rbr",
        "--allow-master-master",
        "--cut-over=default",
        "--exact-rowcount",
        "--concurrent-rowcount",
        "--default-retries=120",
        &format!("--panic-flag-file={}", panic_flag.display()),
        &format!("--postpone-cut-over-flag-file={}", postpone_flag.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbook_line_runs_against_a_replica_in_replica_mode_and_on_the_primary() {
    each_flavor(|flavor| async move {
        let (primary, replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = &replicas[0];
        let mut c = primary.conn().await?;
        exec_all(&mut c, "CREATE DATABASE shop;\nCREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))").await?;
        for host in ["%", "localhost"] {
            c.query_drop(format!("CREATE USER 'gh-ost'@'{host}' IDENTIFIED BY '123456'")).await?;
            c.query_drop(format!("GRANT ALL PRIVILEGES ON *.* TO 'gh-ost'@'{host}'")).await?;
        }
        revenant::sandbox::wait_caught_up(replica, &primary, std::time::Duration::from_secs(30)).await?;
        let s = Scratch::new(&primary, &format!("runbook-{}", flavor.name()))?;
        let (panic_flag, postpone_flag) = (s.dir.join("ghost.panic.flag"), s.dir.join("ghost.postpone.flag"));
        let run = |host_port: u16, extra: &[&str]| {
            let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
            p.args(["migrate", "--headless", "--host=127.0.0.1", &format!("--port={host_port}")])
                .args(runbook(replica.port, &panic_flag, &postpone_flag))
                .args(extra)
                .env_remove("MYSQL_PWD");
            p.output()
        };
        let primary_addr = format!("127.0.0.1:{}", primary.port);
        let mut r = replica.conn().await?;
        // gh-ost's default topology: the runbook against a replica (read-only, as production keeps one) runs in
        // replica mode: the dry run names the primary whose table it would change (tests/replica_mode.rs migrates).
        let replica_mode = format!("the table is changed on its primary {primary_addr}");
        r.query_drop("SET GLOBAL read_only = 1").await?;
        let out = run(replica.port, &[])?;
        let (stdout, stderr) = text(&out);
        ensure!(out.status.success() && stdout.contains("dry run: nothing was changed") && stdout.contains(&replica_mode), "the runbook against the read-only replica: {stdout}{stderr}");
        // A writable replica needs no --allow-master-master either (its primary replicates from nobody).
        r.query_drop("SET GLOBAL read_only = 0").await?;
        let without: Vec<String> = runbook(replica.port, &panic_flag, &postpone_flag).into_iter().filter(|a| a != "--allow-master-master").collect();
        let out = Proc::new(env!("CARGO_BIN_EXE_revenant"))
            .args(["migrate", "--headless", "--host=127.0.0.1", &format!("--port={}", replica.port)])
            .args(&without)
            .env_remove("MYSQL_PWD")
            .output()?;
        let (stdout, stderr) = text(&out);
        ensure!(out.status.success() && stdout.contains(&replica_mode), "a writable replica without --allow-master-master: {stdout}{stderr}");
        // A user with only the privileges the README asks for (REPLICATION SLAVE, REPLICATION CLIENT and the
        // schema's) may not read the replica status on MariaDB (REPLICA MONITOR): a writable server still passes.
        for host in ["%", "localhost"] {
            c.query_drop(format!("CREATE USER 'limited'@'{host}' IDENTIFIED BY '123456'")).await?;
            c.query_drop(format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'limited'@'{host}'")).await?;
            c.query_drop(format!("GRANT ALL PRIVILEGES ON shop.* TO 'limited'@'{host}'")).await?;
        }
        let out = run(primary.port, &["--allow-on-master", "--user=limited"])?;
        let (stdout, stderr) = text(&out);
        ensure!(out.status.success() && stdout.contains("dry run: nothing was changed"), "the runbook on the primary as 'limited': {stdout}{stderr}");
        // On the primary, as gh-ost's docs give it for a primary (--allow-on-master): the dry run passes.
        let out = run(primary.port, &["--allow-on-master"])?;
        let (stdout, stderr) = text(&out);
        ensure!(out.status.success() && stdout.contains("dry run: nothing was changed"), "the runbook on the primary: {stdout}{stderr}");
        ensure!(shop_tables(&mut c).await? == ["orders"], "a dry run changed the primary");
        ensure!(shop_tables(&mut r).await? == ["orders"], "a dry run changed the replica");
        ensure!(!postpone_flag.exists(), "a dry run created the postpone flag file");
        // With --execute on the primary it migrates: the cut-over waits on the postpone flag file until it is removed.
        c.query_drop("INSERT INTO shop.orders (v) SELECT CONCAT('r', seq) FROM (SELECT 1 AS seq UNION SELECT 2 UNION SELECT 3) s").await?;
        let before = common::table_checksum(&mut c, "shop", "orders", &["id", "v"]).await?;
        let socket = format!("--serve-socket-file={}", s.dir.join("rb.sock").display());
        let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
        p.args(["migrate", "--headless", "--host=127.0.0.1", &format!("--port={}", primary.port)])
            .args(runbook(replica.port, &panic_flag, &postpone_flag))
            .args(["--allow-on-master", "--execute", "--ok-to-drop-table", socket.as_str()])
            .env_remove("MYSQL_PWD")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = p.spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| eyre!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let postponed = loop {
            match rx.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(line) if line.contains("postponing cut-over") => break true,
                Ok(line) => seen.push(line),
                Err(_) => break false,
            }
        };
        if !postponed {
            let _ = child.kill();
        }
        ensure!(postponed && postpone_flag.exists(), "the runbook's cut-over never waited on the flag file: {seen:?}");
        std::fs::remove_file(&postpone_flag)?;
        let status = child.wait()?;
        // Every line up to the end of output (the reader ends when the child closes stdout): try_iter raced it.
        let rest: Vec<String> = rx.iter().collect();
        ensure!(status.success() && rest.iter().any(|l| l.contains("Done: shop.orders migrated")), "the runbook with --execute: {status:?} {rest:?}");
        let after = common::table_checksum(&mut c, "shop", "orders", &["id", "v"]).await?;
        ensure!(before == after && before.0 == 3, "rows before {before:?}, after {after:?}");
        ensure!(shop_tables(&mut c).await? == ["orders"], "artifacts left on the primary");
        let _ = std::fs::remove_dir_all(&s.dir);
        Ok(())
    })
    .await;
}

/// gh-ost's resume page (doc/resume.md of 145799ee), its two command lines as given there, pointed at a sandbox
/// replica (root, no password): the first run with `--gtid --checkpoint --checkpoint-seconds=60 --execute`, killed
/// (kill -9) mid-copy; the second with `--resume` instead of the checkpoint flags.
fn resume_page(replica: u16, socket: &Path, resume: bool) -> Vec<String> {
    let mut line: Vec<String> = ["--chunk-size=100", "--host=127.0.0.1", "--user=root", "--database=mydb", "--table=mytable"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    line.push(format!("--port={replica}"));
    line.push("--alter=add column mycol varchar(20)".into());
    line.push("--gtid".into());
    match resume {
        false => line.extend(["--checkpoint".to_string(), "--checkpoint-seconds=60".to_string()]),
        true => line.push("--resume".into()),
    }
    line.push("--execute".into());
    line.push(format!("--serve-socket-file={}", socket.display()));
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resume_pages_command_lines_resume_a_killed_migration_on_a_replica() {
    each_flavor(|flavor| async move {
        let (primary, replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = &replicas[0];
        let mut c = primary.conn().await?;
        exec_all(&mut c, "CREATE DATABASE mydb;\nCREATE TABLE mydb.mytable (id INT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(40))").await?;
        c.query_drop(
            "INSERT INTO mydb.mytable (a, b) SELECT seq, CONCAT('row ', seq) FROM (SELECT @n := @n + 1 AS seq FROM \
             information_schema.COLUMNS x, information_schema.COLUMNS y, (SELECT @n := 0) z LIMIT 20000) s",
        )
        .await?;
        let before = common::table_checksum(&mut c, "mydb", "mytable", &["id", "a", "b"]).await?;
        revenant::sandbox::wait_caught_up(replica, &primary, std::time::Duration::from_secs(30)).await?;
        let s = Scratch::new(&primary, &format!("resume-page-{}", flavor.name()))?;
        let socket = s.dir.join("resume.sock");
        let run = |resume: bool| {
            let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
            p.args(["migrate", "--headless"]).args(resume_page(replica.port, &socket, resume)).env_remove("MYSQL_PWD").env_remove("REVENANT_FAILPOINTS");
            p.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
            p
        };
        // The first run, killed once its checkpoint (on the primary: replica mode) records copied chunks.
        let mut first = run(false).spawn()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let copied = loop {
            let n: Option<u64> = c.query_first("SELECT rows_copied FROM mydb._mytable_ghk WHERE id = 'copy'").await.unwrap_or(None);
            if n.is_some_and(|n| n >= 2000) || std::time::Instant::now() > deadline || first.try_wait()?.is_some() {
                break n.unwrap_or(0);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let _ = first.kill();
        let _ = first.wait();
        ensure!((2000..20000).contains(&copied), "the first run was not caught mid-copy: {copied} rows copied");
        // The second line resumes from the checkpoint and completes (no postpone flag: it cuts over).
        let out = run(true).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "the resume page's second line failed: {stderr}");
        let old = common::table_checksum(&mut c, "mydb", "_mytable_del", &["id", "a", "b"]).await?;
        let new = common::table_checksum(&mut c, "mydb", "mytable", &["id", "a", "b"]).await?;
        ensure!(old == before && new == before, "rows before {before:?}, old table {old:?}, new table {new:?}");
        let cols: Vec<String> = c.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'mydb' AND TABLE_NAME = 'mytable' ORDER BY ORDINAL_POSITION").await?;
        ensure!(cols == ["id", "a", "b", "mycol"], "the new table's columns: {cols:?}");
        // The first line's --checkpoint holds for the resumed run too: the checkpoint table is kept for --revert.
        let kept: Option<u64> = c.query_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'mydb' AND TABLE_NAME = '_mytable_ghk'").await?;
        ensure!(kept == Some(1), "the checkpoint table of a --checkpoint migration is kept after its resumed swap");
        let _ = std::fs::remove_dir_all(&s.dir);
        Ok(())
    })
    .await;
}

#[test]
fn a_flag_of_neither_revenant_nor_gh_ost_is_named_with_the_closest_one() {
    // Port 1: nothing listens, and nothing is tried: the flags are refused first.
    let out = Proc::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["migrate", "--port", "1", "--database", "shop", "--tabel", "orders", "--alter", "ADD COLUMN w INT"])
        .output()
        .expect("run revenant");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tabel is not a flag of `revenant migrate`, nor one of gh-ost's"), "{stderr}");
    assert!(stderr.contains("did you mean --table?") && !stderr.contains("unexpected argument"), "{stderr}");
    // gh-ost's flags are refused by name on move-tables as well.
    let out = Proc::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["move-tables", "--port", "1", "--database", "shop", "--tables", "a", "--target-host", "h", "-tungsten"])
        .output()
        .expect("run revenant");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tungsten is a gh-ost flag that revenant does not implement"), "{stderr}");
}

#[test]
fn a_migrate_flag_given_to_move_tables_is_named_as_such() {
    let out = Proc::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["move-tables", "--port", "1", "--database", "shop", "--tables", "a", "--target-host", "h", "--cut-over=default"])
        .output()
        .expect("run revenant");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--cut-over is a flag of `revenant migrate`, not of `revenant move-tables`"), "{stderr}");
}

#[test]
fn an_unquoted_alter_is_named_as_a_stray_value_and_single_dash_unknown_flags_whole() {
    let out = Proc::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["migrate", "--port", "1", "--database", "shop", "--table", "orders", "--alter", "ADD", "COLUMN", "w", "INT"])
        .output()
        .expect("run revenant");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'COLUMN' is not a flag, and no flag before it takes a value") && stderr.contains("quote a value"), "{stderr}");
    let out = Proc::new(env!("CARGO_BIN_EXE_revenant")).args(["migrate", "--port", "1", "-tabel=orders"]).output().expect("run revenant");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tabel is not a flag of `revenant migrate`"), "{stderr}");
}
