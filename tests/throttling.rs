//! Throttlers end to end on every selected flavour: each engages and releases with gh-ost's reason in the JSON
//! status (manual, flag file, max-load below the live value, throttle-query, throttle-http against a tiny server in
//! the test, replica lag made real by stopping a replica's SQL thread), an unreadable signal throttles (a bad query,
//! an HTTP server that went away, a replica whose server stopped), throttling stops only the copy while the binlog
//! is still applied, replica lag blocks the cut-over (and `unpostpone` says so), critical-load aborts resumably or
//! hibernates, and the thresholds change live and are read back.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{bail, ensure, Result};
use common::{each_flavor, seed_app_table, table_checksum, test_config, wait_phase, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::{Command, EngineHandle, Phase, Status};
use revenant::sandbox::Flavor;
use revenant::sandbox as topology;

const COLS: &[&str] = &["id", "a", "b"];

/// The throttle reason as the JSON status carries it.
fn json_reason(s: &Status) -> String {
    serde_json::to_value(s).ok().and_then(|v| v["throttle"]["reason"].as_str().map(str::to_string)).unwrap_or_default()
}

/// Waits (bounded) until the snapshot satisfies `pred`; the error shows the last reason and signals.
async fn wait_for(handle: &EngineHandle, what: &str, timeout: Duration, pred: impl Fn(&Status) -> bool) -> Result<Status> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let s = handle.snapshot();
        if pred(&s) {
            return Ok(s);
        }
        if s.phase.is_some_and(|p| p.is_terminal()) {
            bail!("migration ended ({:?}: {:?}) while waiting for {what}", s.phase, s.message);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}; throttle reason `{}`, signals {:?}", json_reason(&s), s.throttle.signals);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn engaged(handle: &EngineHandle, needle: &str) -> Result<String> {
    let s = wait_for(handle, &format!("throttle reason containing `{needle}`"), Duration::from_secs(20), |s| json_reason(s).contains(needle)).await?;
    ensure!(s.throttle.throttled, "reason `{}` but not throttled", json_reason(&s));
    Ok(json_reason(&s))
}

async fn released(handle: &EngineHandle, needle: &str) -> Result<()> {
    wait_for(handle, &format!("throttle reason without `{needle}`"), Duration::from_secs(20), |s| !json_reason(s).contains(needle)).await?;
    Ok(())
}

async fn set(handle: &EngineHandle, name: &str, value: &str) -> Result<String> {
    let r = handle.send(Command::Set { name: name.into(), value: value.into() }).await;
    ensure!(r.ok, "{name}={value} refused: {}", r.message);
    Ok(r.message)
}

async fn get(handle: &EngineHandle, name: &str) -> Result<String> {
    let r = handle.send(Command::Get { name: name.into() }).await;
    ensure!(r.ok, "{name}=? refused: {}", r.message);
    Ok(r.message)
}

/// A tiny HTTP server on 127.0.0.1 answering every request with the current `code`.
/// Port 0 picks a free port; the port is returned with the server task.
async fn http_server(port: u16, code: Arc<AtomicU16>) -> Result<(u16, tokio::task::JoinHandle<()>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    Ok((port, tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let code = code.load(Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(format!("HTTP/1.1 {code} Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes()).await;
            });
        }
    })))
}

/// gh-ost's --ignore-http-errors: a status other than 200 still throttles, an unreachable URL (or one slower than
/// --throttle-http-timeout-millis) does not; without the flag it throttles (fail closed, tested above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_http_errors_do_not_throttle_but_status_codes_do() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "items", 3000).await?;
        let http_code = Arc::new(AtomicU16::new(503));
        let (http_port, mut http) = http_server(0, http_code.clone()).await?;
        let mut cfg = test_config(&server, "app", "items", "ADD COLUMN c INT NOT NULL DEFAULT 3");
        cfg.run.throttle.throttle_http = Some(format!("http://127.0.0.1:{http_port}/throttle"));
        cfg.run.throttle.ignore_http_errors = true;
        cfg.run.throttle.throttle_http_interval = Duration::from_millis(50);
        cfg.run.throttle.throttle_http_timeout = Duration::from_millis(300);
        let (handle, join) = migrate::start(cfg);
        engaged(&handle, "http=503").await?;
        // The server goes away: the error is ignored, the throttle lifts and the signal says why.
        http.abort();
        let _ = (&mut http).await;
        released(&handle, "http").await?;
        let s = wait_for(&handle, "the ignored error in the signals", Duration::from_secs(20), |s| {
            s.throttle.signals.iter().any(|g| g.name == "throttle-http" && g.value.contains("ignored") && !g.throttling)
        })
        .await?;
        ensure!(!s.throttle.throttled || !json_reason(&s).contains("http"), "still throttled by http: {}", json_reason(&s));
        // A server that accepts and never answers: slower than the timeout, an error, ignored too.
        let silent = tokio::net::TcpListener::bind(("127.0.0.1", http_port)).await?;
        let hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = silent.accept().await {
                open.push(conn);
            }
        });
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(90)).await?;
        ensure!(handle.send(Command::CutOver).await.ok, "cut-over refused");
        let outcome = tokio::time::timeout(Duration::from_secs(90), join).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "outcome {outcome:?}");
        hold.abort();
        let mut c = server.conn().await?;
        let old = table_checksum(&mut c, "app", "_items_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "items", COLS).await?;
        ensure!(old == new && old.0 == 3000, "rows differ: old {old:?}, new {new:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_throttler_engages_and_releases_with_its_reason() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "items", 3000).await?;
        let dir = tempdir("throttle")?;
        let hold = dir.join("throttle.flag");
        std::fs::write(&hold, b"")?;
        let http_code = Arc::new(AtomicU16::new(200));
        let (http_port, mut http) = http_server(0, http_code.clone()).await?;
        let mut cfg = test_config(&server, "app", "items", "ADD COLUMN c INT NOT NULL DEFAULT 3");
        cfg.run.throttle.throttle_flag_file = Some(hold.clone());
        cfg.run.throttle.throttle_http = Some(format!("http://127.0.0.1:{http_port}/throttle"));
        let (handle, join) = migrate::start(cfg);
        wait_phase(&handle, Phase::Copy, Duration::from_secs(60)).await?;

        // Flag file: the copy waits from the start, while the applier keeps applying.
        engaged(&handle, "flag-file").await?;
        let mut c = server.conn().await?;
        let applied_before = handle.snapshot().binlog.events_applied;
        c.query_drop("INSERT INTO app.items (a, b) SELECT a, b FROM app.items ORDER BY id LIMIT 50").await?;
        let s = wait_for(&handle, "the 50 inserted rows applied", Duration::from_secs(20), |s| s.binlog.events_applied >= applied_before + 50).await?;
        ensure!(s.copy.rows_copied == 0, "the copy ran while throttled: {} rows", s.copy.rows_copied);

        // Manual.
        let r = handle.send(Command::Throttle).await;
        ensure!(r.ok, "throttle refused: {}", r.message);
        engaged(&handle, "commanded by user").await?;
        ensure!(handle.send(Command::NoThrottle).await.ok, "no-throttle refused");
        released(&handle, "commanded by user").await?;

        // max-load below the live value (this very connection counts in Threads_connected).
        let reply = handle.send(Command::Set { name: "max-load".into(), value: "Threads_running".into() }).await;
        ensure!(!reply.ok && reply.message.contains("Var=N"), "a bad max-load was not refused: {reply:?}");
        set(&handle, "max-load", "Threads_connected=1").await?;
        ensure!(get(&handle, "max-load").await? == "Threads_connected=1", "max-load=? reads back wrong");
        let reason = engaged(&handle, "max-load Threads_connected=").await?;
        let re = regex::Regex::new(r"max-load Threads_connected=(\d+) >= 1")?;
        let live: u64 = re.captures(&reason).and_then(|c| c[1].parse().ok()).unwrap_or(0);
        ensure!(live >= 1, "max-load reason not in gh-ost's wording: `{reason}`");
        set(&handle, "max-load", "").await?;
        released(&handle, "max-load").await?;

        // throttle-query: > 0 throttles, 0 releases, an error throttles (fail closed).
        set(&handle, "throttle-query", "SELECT 1").await?;
        engaged(&handle, "throttle-query").await?;
        set(&handle, "throttle-query", "SELECT 0").await?;
        released(&handle, "throttle-query").await?;
        set(&handle, "throttle-query", "SELECT v FROM app.no_such_table").await?;
        engaged(&handle, "throttle-query unreadable").await?;
        set(&handle, "throttle-query", "").await?;
        released(&handle, "throttle-query").await?;

        // throttle-http: non-200 throttles; a server that went away throttles; back to 200 releases.
        http_code.store(503, Ordering::Relaxed);
        engaged(&handle, "http=503").await?;
        http_code.store(200, Ordering::Relaxed);
        released(&handle, "http=").await?;
        http.abort();
        let _ = (&mut http).await;
        engaged(&handle, "http unreachable").await?;
        http = http_server(http_port, http_code.clone()).await?.1;
        released(&handle, "http").await?;
        // Set live (gh-ost's `throttle-http=`): cleared, the URL no longer counts; set again, it does.
        http_code.store(503, Ordering::Relaxed);
        engaged(&handle, "http=503").await?;
        set(&handle, "throttle-http", "").await?;
        released(&handle, "http").await?;
        ensure!(get(&handle, "throttle-http").await?.is_empty(), "throttle-http=? after clearing");
        let url = format!("http://127.0.0.1:{http_port}/again");
        set(&handle, "throttle-http", &url).await?;
        ensure!(get(&handle, "throttle-http").await? == url, "throttle-http=? reads back wrong");
        engaged(&handle, "http=503").await?;
        ensure!(!handle.send(Command::Set { name: "throttle-http".into(), value: "https://x/".into() }).await.ok, "https accepted");
        http_code.store(200, Ordering::Relaxed);
        released(&handle, "http").await?;

        // Other live settings read back; bad values are refused.
        set(&handle, "nice-ratio", "0.5").await?;
        ensure!(get(&handle, "nice-ratio").await? == "0.5", "nice-ratio=?");
        set(&handle, "nice-ratio", "0").await?;
        set(&handle, "max-lag-millis", "2000").await?;
        ensure!(get(&handle, "max-lag-millis").await? == "2000", "max-lag-millis=?");
        ensure!(!handle.send(Command::Set { name: "max-lag-millis".into(), value: "lots".into() }).await.ok, "bad max-lag-millis accepted");
        ensure!(!handle.send(Command::Set { name: "throttle-control-replicas".into(), value: "db2:0".into() }).await.ok, "bad replica accepted");

        // Lift the hold: the copy runs to the end and the migration completes with identical rows.
        std::fs::remove_file(&hold)?;
        released(&handle, "flag-file").await?;
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(90)).await?;
        ensure!(handle.send(Command::CutOver).await.ok, "cut-over refused");
        let outcome = tokio::time::timeout(Duration::from_secs(90), join).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "outcome {outcome:?}");
        let old = table_checksum(&mut c, "app", "_items_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "items", COLS).await?;
        ensure!(old == new && old.0 == 3050, "rows differ: old {old:?}, new {new:?}");
        http.abort();

        // critical-load met twice (interval 200 ms): a resumable stop, which --resume completes.
        seed_app_table(&server, "orders", 2000).await?;
        let mut cfg = test_config(&server, "app", "orders", "ADD COLUMN c INT NOT NULL DEFAULT 3");
        cfg.run.throttle.critical_load = revenant::engine::throttle::throttlers::parse_load("Threads_connected=1").map_err(color_eyre::eyre::Report::msg)?;
        cfg.run.throttle.critical_load_interval = Duration::from_millis(200);
        let outcome = tokio::time::timeout(Duration::from_secs(60), migrate::start(cfg.clone()).1).await???;
        match &outcome {
            Outcome::Stopped { state } => ensure!(
                state.reason.starts_with("critical-load met: Threads_connected=") && state.reason.ends_with(", >=1"),
                "critical-load stop reason: {}",
                state.reason
            ),
            other => bail!("critical-load did not stop the migration: {other:?}"),
        }
        cfg.run.throttle.critical_load.clear();
        cfg.run.resume = true;
        cfg.run.postpone_cut_over = false;
        let outcome = tokio::time::timeout(Duration::from_secs(90), migrate::start(cfg).1).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "resume after critical-load: {outcome:?}");
        let old = table_checksum(&mut c, "app", "_orders_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "orders", COLS).await?;
        ensure!(old == new && old.0 == 2000, "rows differ after the critical-load resume: old {old:?}, new {new:?}");

        // critical-load with --critical-load-hibernate-seconds: copy and apply pause instead of an abort; cleared
        // live, the migration continues once the hibernation is over.
        seed_app_table(&server, "events", 1000).await?;
        let mut cfg = test_config(&server, "app", "events", "ADD COLUMN c INT NOT NULL DEFAULT 3");
        cfg.run.throttle.critical_load = revenant::engine::throttle::throttlers::parse_load("Threads_connected=1").map_err(color_eyre::eyre::Report::msg)?;
        cfg.run.throttle.critical_load_hibernate = Duration::from_secs(2);
        cfg.run.postpone_cut_over = false;
        let (handle, join) = migrate::start(cfg);
        let s = wait_for(&handle, "critical-load hibernation", Duration::from_secs(30), |s| json_reason(s).contains("critical-load hibernation (critical-load met: Threads_connected=")).await?;
        ensure!(s.paused, "hibernation did not pause copy and apply");
        set(&handle, "critical-load", "").await?;
        ensure!(get(&handle, "critical-load").await?.is_empty(), "critical-load=? after clearing");
        let outcome = tokio::time::timeout(Duration::from_secs(90), join).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "after hibernation: {outcome:?}");
        let old = table_checksum(&mut c, "app", "_events_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "events", COLS).await?;
        ensure!(old == new && old.0 == 1000, "rows differ after the hibernation: old {old:?}, new {new:?}");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}

async fn stop_sql_thread(replica: &Server, start: bool) -> Result<()> {
    let mut c = replica.conn().await?;
    let verb = if start { "START" } else { "STOP" };
    match replica.flavor {
        Flavor::MariaDb => c.query_drop(format!("{verb} SLAVE SQL_THREAD")).await?,
        Flavor::MySql => c.query_drop(format!("{verb} REPLICA SQL_THREAD")).await?,
    }
    Ok(())
}

/// The name the primary lists a replica under (MariaDB reports `localhost`), found by its port among the signals.
async fn discovered_name(handle: &EngineHandle, port: u16) -> Result<String> {
    let suffix = format!(":{port}");
    let find = |s: &Status| {
        s.throttle.signals.iter().find(|g| g.name.starts_with("replica ") && g.name.ends_with(&suffix) && !g.throttling).map(|g| g.name.trim_start_matches("replica ").to_string())
    };
    let s = wait_for(handle, &format!("replica :{port} discovered and caught up"), Duration::from_secs(30), |s| find(s).is_some()).await?;
    Ok(find(&s).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_lag_throttles_blocks_the_cut_over_and_a_lost_replica_fails_closed() {
    each_flavor(|flavor| async move {
        let (primary, mut replicas) = topology::primary_with_replicas(flavor, 2).await?;
        let mut doomed = replicas.remove(1);
        let lagging = replicas.remove(0);
        seed_app_table(&primary, "items", 2000).await?;
        topology::wait_caught_up(&lagging, &primary, Duration::from_secs(30)).await?;
        topology::wait_caught_up(&doomed, &primary, Duration::from_secs(30)).await?;
        let dir = tempdir("lag")?;
        let hold = dir.join("throttle.flag");
        std::fs::write(&hold, b"")?;
        let mut cfg = test_config(&primary, "app", "items", "ADD COLUMN c INT NOT NULL DEFAULT 3");
        cfg.run.throttle.throttle_flag_file = Some(hold.clone());
        cfg.run.throttle.max_lag_millis = 1000;
        let (handle, join) = migrate::start(cfg);
        wait_phase(&handle, Phase::Copy, Duration::from_secs(60)).await?;

        // Both discovered from the primary (no --throttle-control-replicas), readable and under the threshold.
        let lagging_name = discovered_name(&handle, lagging.port).await?;
        let doomed_name = discovered_name(&handle, doomed.port).await?;

        // Real lag: the SQL thread stops, the heartbeat on the replica ages; the copy throttles.
        stop_sql_thread(&lagging, false).await?;
        let reason = engaged(&handle, &format!("{lagging_name} replica-lag=")).await?;
        ensure!(!reason.contains("unreadable"), "lag reason: {reason}");
        stop_sql_thread(&lagging, true).await?;
        released(&handle, "replica-lag").await?;

        // Named explicitly, read back; setting the list forgets the discovered replicas and finds them again. It is
        // named unlike the primary lists it, so its own signal line shows when the new list was taken up.
        let named_host = if lagging_name.starts_with("127.0.0.1:") { "localhost" } else { "127.0.0.1" };
        let named = format!("{named_host}:{}", lagging.port);
        set(&handle, "throttle-control-replicas", &named).await?;
        ensure!(get(&handle, "throttle-control-replicas").await? == named, "throttle-control-replicas=?");
        let all = [format!("replica {named}"), format!("replica {lagging_name}"), format!("replica {doomed_name}")];
        wait_for(&handle, "the named and the rediscovered replicas checked", Duration::from_secs(30), |s| {
            all.iter().all(|n| s.throttle.signals.iter().any(|g| &g.name == n && !g.throttling))
        })
        .await?;

        // A replica goes away: fail closed, it keeps throttling although the primary no longer lists it.
        doomed.stop();
        engaged(&handle, &format!("{doomed_name} replica-lag unreadable")).await?;
        // The operator sets the list again: the gone replica is forgotten (not listed any more): released.
        set(&handle, "throttle-control-replicas", &named).await?;
        released(&handle, "replica-lag").await?;

        // Copy done and ready (postponed); replica lag blocks the cut-over, and unpostpone says so.
        std::fs::remove_file(&hold)?;
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(90)).await?;
        stop_sql_thread(&lagging, false).await?;
        wait_for(&handle, "the cut-over blocked by replica lag", Duration::from_secs(20), |s| {
            s.cutover.blocked_reason.as_deref().is_some_and(|r| r.contains(&format!("replica {named} lag ")) && r.contains("> max-lag 1.0s"))
        })
        .await?;
        let reply = handle.send(Command::CutOver).await;
        ensure!(reply.ok && reply.message.contains("it waits: replica "), "unpostpone while a replica lags: {reply:?}");
        let s = wait_for(&handle, "the approval seen", Duration::from_secs(10), |s| !s.cutover.postponed).await?;
        ensure!(s.phase == Some(Phase::ReadyToCutOver), "the cut-over started while a replica lagged: {:?}", s.phase);
        stop_sql_thread(&lagging, true).await?;
        let outcome = tokio::time::timeout(Duration::from_secs(90), join).await???;
        ensure!(matches!(outcome, Outcome::Done { .. }), "outcome {outcome:?}");
        let mut c = primary.conn().await?;
        let old = table_checksum(&mut c, "app", "_items_del", COLS).await?;
        let new = table_checksum(&mut c, "app", "items", COLS).await?;
        ensure!(old == new && old.0 == 2000, "rows differ: old {old:?}, new {new:?}");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}

fn tempdir(tag: &str) -> Result<std::path::PathBuf> {
    let base = std::env::var("REVENANT_SANDBOX_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let d = base.join(format!("{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
