//! The control socket against a fake engine (a task owning the command receiver and the status sender).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use revenant::control::{self, parse_text_command, ControlOptions, TextCommand};
use revenant::engine::status::{CommandRequest, TargetInfo};
use revenant::engine::{Command, CommandReply, EngineHandle, Phase, Status};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

struct FakeEngine {
    handle: EngineHandle,
    status: watch::Sender<Status>,
    received: Arc<Mutex<Vec<Command>>>,
}

impl FakeEngine {
    fn received(&self) -> Vec<Command> {
        self.received.lock().expect("lock").clone()
    }
}

fn status_fixture() -> Status {
    let mut s = Status {
        target: TargetInfo {
            host: "db1:3306".into(),
            database: "shop".into(),
            table: "orders".into(),
            alter: "ADD COLUMN note TEXT".into(),
            flavor: "mysql".into(),
            version: "8.0.36".into(),
            ghost_table: "_orders_gho".into(),
            old_table: "_orders_del".into(),
            ..Default::default()
        },
        phase: Some(Phase::Copy),
        elapsed_seconds: 125.0,
        elapsed_copy_seconds: 120.0,
        ..Default::default()
    };
    s.copy.rows_copied = 500;
    s.copy.rows_estimate = 1000;
    s.copy.chunk_size = 1000;
    s.binlog.read_file = "binlog.000007".into();
    s.binlog.read_pos = 4242;
    s.binlog.events_applied = 77;
    s.binlog.backlog_capacity = 1000;
    s.max_lag_seconds = 1.5;
    s
}

fn fake_engine() -> FakeEngine {
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<CommandRequest>(16);
    let (status_tx, status_rx) = watch::channel(status_fixture());
    let received = Arc::new(Mutex::new(Vec::new()));
    let rec = received.clone();
    tokio::spawn(async move {
        while let Some(req) = cmd_rx.recv().await {
            rec.lock().expect("lock").push(req.command.clone());
            let reply = match &req.command {
                Command::Checkpoint => CommandReply::ok("checkpoint written at 3e11fa47:1-100"),
                // As the engine: the bare value.
                Command::Get { .. } => CommandReply::ok("1000"),
                Command::Set { name, value } => CommandReply::ok(format!("{name} set to {value}")),
                Command::CutOver => CommandReply::refused("not ready to cut over (phase copy)"),
                other => CommandReply::ok(format!("{other:?} done")),
            };
            let _ = req.reply.send(reply);
        }
    });
    FakeEngine { handle: EngineHandle { commands: cmd_tx, status: status_rx }, status: status_tx, received }
}

fn socket_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let p = std::env::temp_dir().join(format!("rvn-{}-{tag}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

async fn wait_for_socket(path: &PathBuf) {
    for _ in 0..200 {
        if UnixStream::connect(path).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("socket {} never came up", path.display());
}

struct Server {
    path: PathBuf,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<color_eyre::Result<()>>,
}

async fn start(engine: &FakeEngine, opts: ControlOptions, tag: &str) -> Server {
    let path = socket_path(tag);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(control::serve_with(engine.handle.clone(), path.clone(), None, opts, cancel.clone()));
    wait_for_socket(&path).await;
    Server { path, cancel, task }
}

async fn text(path: &PathBuf, line: &str) -> String {
    let mut s = UnixStream::connect(path).await.expect("connect");
    s.write_all(format!("{line}\n").as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await.expect("answer in time").expect("read");
    out
}

#[tokio::test]
async fn every_valid_text_command_reaches_the_engine() {
    let engine = fake_engine();
    let srv = start(&engine, ControlOptions::new("orders"), "valid").await;
    let cases: Vec<(&str, Command)> = vec![
        ("throttle", Command::Throttle),
        ("pause", Command::Throttle),
        ("no-throttle", Command::NoThrottle),
        ("resume", Command::NoThrottle),
        ("checkpoint", Command::Checkpoint),
        ("verify", Command::Verify),
        ("unpostpone", Command::CutOver),
        ("panic", Command::Abort),
        ("chunk-size=500", Command::Set { name: "chunk-size".into(), value: "500".into() }),
        ("dml-batch-size=20", Command::Set { name: "dml-batch-size".into(), value: "20".into() }),
        ("max-lag-millis=1500", Command::Set { name: "max-lag-millis".into(), value: "1500".into() }),
        ("nice-ratio=0.5", Command::Set { name: "nice-ratio".into(), value: "0.5".into() }),
        (
            "max-load=Threads_running=25,Threads_connected=500",
            Command::Set { name: "max-load".into(), value: "Threads_running=25,Threads_connected=500".into() },
        ),
        ("critical-load=Threads_running=1000", Command::Set { name: "critical-load".into(), value: "Threads_running=1000".into() }),
        (
            "throttle-query=select count(*) > 10 from meta.busy",
            Command::Set { name: "throttle-query".into(), value: "select count(*) > 10 from meta.busy".into() },
        ),
        (
            "throttle-control-replicas=r1:3306,r2",
            Command::Set { name: "throttle-control-replicas".into(), value: "r1:3306,r2".into() },
        ),
        (
            "postpone-cut-over-flag-file=/tmp/postpone.flag",
            Command::Set { name: "postpone-cut-over-flag-file".into(), value: "/tmp/postpone.flag".into() },
        ),
        ("chunk-size=?", Command::Get { name: "chunk-size".into() }),
        ("max-load=?", Command::Get { name: "max-load".into() }),
    ];
    for (line, _) in &cases {
        let out = text(&srv.path, line).await;
        assert!(out.ends_with('\n'), "{line}: {out:?}");
    }
    // As gh-ost, a setting changed, `throttle` and `no-throttle` answer with the status block, whose header reads
    // the live settings from the engine.
    let header_reads = || control::ghost_status::HEADER_SETTINGS.iter().map(|n| Command::Get { name: n.to_string() });
    let mut expected: Vec<Command> = Vec::new();
    for (_, c) in cases {
        let with_status = matches!(c, Command::Set { .. } | Command::Throttle | Command::NoThrottle);
        expected.push(c);
        if with_status {
            expected.extend(header_reads());
        }
    }
    assert_eq!(engine.received(), expected);

    // The engine's answers come back as text; a refusal is an ERROR line.
    assert_eq!(text(&srv.path, "checkpoint").await, "checkpoint written at 3e11fa47:1-100\n");
    assert_eq!(text(&srv.path, "chunk-size=?").await, "1000\n");
    let set = text(&srv.path, "chunk-size=500").await;
    assert!(set.starts_with("# Migrating `shop`.`orders`") && set.contains("\n# chunk-size: 1000; max-lag-millis: 1000ms;"), "{set}");
    assert_eq!(text(&srv.path, "unpostpone").await, "ERROR: not ready to cut over (phase copy)\n");
    srv.cancel.cancel();
    srv.task.await.expect("join").expect("serve");
    assert!(!srv.path.exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn invalid_values_are_refused_loudly_and_never_sent() {
    let engine = fake_engine();
    let srv = start(&engine, ControlOptions::new("orders"), "invalid").await;
    let bad = [
        ("chunk-size=abc", "chunk-size"),
        ("chunk-size=-5", "chunk-size"),
        ("chunk-size=0", "greater than 0"),
        ("chunk-size", "needs a value"),
        ("dml-batch-size=1.5", "dml-batch-size"),
        ("max-lag-millis=-1", "max-lag-millis"),
        ("max-lag-millis=fast", "max-lag-millis"),
        ("nice-ratio=-0.1", "nice-ratio"),
        ("nice-ratio=NaN", "nice-ratio"),
        ("max-load=Threads_running", "Var=N"),
        ("max-load=Threads_running=lots", "not a whole number"),
        ("max-load=Threads running=5", "not a status variable"),
        ("critical-load=Threads_running=-3", "critical-load"),
        ("throttle-control-replicas=r1:99999", "port"),
        ("throttle-control-replicas=r1:3306,,r2", "host[:port]"),
        ("frobnicate", "unknown command"),
        ("throttle=now", "takes no argument"),
    ];
    for (line, needle) in bad {
        let out = text(&srv.path, line).await;
        assert!(out.starts_with("ERROR: "), "{line} should be refused: {out:?}");
        assert!(out.contains(needle), "{line}: {out:?} should mention {needle}");
    }
    assert!(engine.received().is_empty(), "nothing invalid reached the engine: {:?}", engine.received());
    srv.cancel.cancel();
}

#[tokio::test]
async fn help_status_and_sup() {
    let engine = fake_engine();
    let srv = start(&engine, ControlOptions::new("orders"), "info").await;
    let help = text(&srv.path, "help").await;
    for word in ["status", "sup", "throttle", "no-throttle", "unpostpone", "panic", "chunk-size=", "max-load=", "=?"] {
        assert!(help.contains(word), "help mentions {word}: {help}");
    }
    let sup = text(&srv.path, "sup").await;
    assert_eq!(sup.lines().count(), 1, "{sup}");
    assert!(sup.starts_with("Copy: 500/1000 50.0%; Applied: 77; Backlog: 0/1000; Time: 2m05s(total), 2m00s(copy)"), "{sup}");
    assert!(sup.contains("streamer: binlog.000007:4242"), "{sup}");
    assert!(sup.contains("State: migrating"), "{sup}");
    let status = text(&srv.path, "status").await;
    assert!(status.contains("# Migrating `shop`.`orders`; Ghost table is `shop`.`_orders_gho`"), "{status}");
    assert!(status.lines().count() > 3);
    assert!(status.trim_end().ends_with(sup.trim_end()), "status ends with the sup line");
    assert!(status.contains("\n# Migrating db1:3306; inspecting db1:3306; executing on "), "{status}");
    assert!(status.contains("\n# Migration started at "), "{status}");
    assert!(status.contains(&format!("\n# Serving on unix socket: {}\n", srv.path.display())), "{status}");
    assert_eq!(text(&srv.path, "coordinates").await, "binlog.000007:4242\n");
    assert_eq!(text(&srv.path, "applier").await, "Host: db1:3306, Version: 8.0.36\n");
    assert_eq!(text(&srv.path, "inspector").await, "Host: db1:3306, Version: 8.0.36\n");
    assert!(text(&srv.path, "replication-lag-query=?").await.contains("deprecated"));
    assert!(text(&srv.path, "cpu-profile=30s").await.starts_with("ERROR: cpu-profile"));
    assert!(engine.received().iter().all(|c| matches!(c, Command::Get { .. })), "status only reads: {:?}", engine.received());
    srv.cancel.cancel();
}

#[tokio::test]
async fn named_cut_over_and_panic() {
    // Without the force flags, a bare command works and a wrong name is refused (gh-ost's courtesy check).
    let engine = fake_engine();
    let srv = start(&engine, ControlOptions::new("orders"), "named1").await;
    assert!(text(&srv.path, "unpostpone orders").await.starts_with("ERROR: not ready"), "reached the engine");
    assert!(text(&srv.path, "unpostpone=orders").await.starts_with("ERROR: not ready"));
    let wrong = text(&srv.path, "unpostpone customers").await;
    assert!(wrong.starts_with("ERROR: refused") && wrong.contains("customers"), "{wrong}");
    assert!(text(&srv.path, "panic shop.orders").await.starts_with("Abort done"));
    assert!(text(&srv.path, "panic=customers").await.starts_with("ERROR: refused"));
    assert_eq!(engine.received(), vec![Command::CutOver, Command::CutOver, Command::Abort]);
    srv.cancel.cancel();

    let engine = fake_engine();
    let opts = ControlOptions { table: "orders".into(), force_named_cut_over: true, force_named_panic: true, ..ControlOptions::default() };
    let srv = start(&engine, opts, "named2").await;
    let bare = text(&srv.path, "unpostpone").await;
    assert!(bare.starts_with("ERROR: refused") && bare.contains("--force-named-cut-over"), "{bare}");
    let bare = text(&srv.path, "panic").await;
    assert!(bare.starts_with("ERROR: refused") && bare.contains("--force-named-panic"), "{bare}");
    assert!(text(&srv.path, "panic other").await.starts_with("ERROR: refused"));
    assert!(engine.received().is_empty());
    assert!(text(&srv.path, "unpostpone orders").await.starts_with("ERROR: not ready"));
    assert!(text(&srv.path, "panic orders").await.starts_with("Abort done"));
    assert_eq!(engine.received(), vec![Command::CutOver, Command::Abort]);
    srv.cancel.cancel();
}

#[test]
fn parser_is_reusable_without_a_socket() {
    let opts = ControlOptions::new("shop.orders");
    assert_eq!(parse_text_command("  sup ", &opts), Ok(TextCommand::Sup));
    assert_eq!(parse_text_command("info", &opts), Ok(TextCommand::Status));
    assert_eq!(parse_text_command("help", &opts), Ok(TextCommand::Help));
    assert_eq!(parse_text_command("unpostpone orders", &opts), Ok(TextCommand::Engine(Command::CutOver)));
    assert_eq!(parse_text_command("unpostpone \"orders\"", &opts), Ok(TextCommand::Engine(Command::CutOver)));
    assert_eq!(
        parse_text_command("throttle-query=\"select 1\"", &opts),
        Ok(TextCommand::Engine(Command::Set { name: "throttle-query".into(), value: "select 1".into() }))
    );
    assert_eq!(
        parse_text_command("max-load=", &opts),
        Ok(TextCommand::Engine(Command::Set { name: "max-load".into(), value: String::new() })),
        "an empty load map clears it"
    );
    assert!(parse_text_command("", &opts).is_err());
}

#[tokio::test]
async fn socket_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let engine = fake_engine();
    let srv = start(&engine, ControlOptions::new("orders"), "mode").await;
    let mode = std::fs::metadata(&srv.path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    srv.cancel.cancel();
}

#[tokio::test]
async fn stale_socket_is_replaced_but_a_live_one_is_refused() {
    let engine = fake_engine();
    // Stale: a socket file nobody listens on any more.
    let path = socket_path("stale");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(control::serve(engine.handle.clone(), path.clone(), None, "orders".into(), cancel.clone()));
    wait_for_socket(&path).await;
    assert!(text(&path, "sup").await.starts_with("Copy: "));

    // Live: a second server on the same path is refused and leaves the first one alone.
    let second = control::serve(engine.handle.clone(), path.clone(), None, "orders".into(), CancellationToken::new()).await;
    let err = format!("{:?}", second.expect_err("a live socket must be refused"));
    assert!(err.contains("listening"), "{err}");
    assert!(text(&path, "sup").await.starts_with("Copy: "), "the first server still answers");
    cancel.cancel();
    task.await.expect("join").expect("serve");

    // Not a socket: refused, file untouched.
    let path = socket_path("file");
    std::fs::write(&path, "precious").expect("write");
    let r = control::serve(engine.handle.clone(), path.clone(), None, "orders".into(), CancellationToken::new()).await;
    assert!(format!("{:?}", r.expect_err("not a socket")).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "precious");
    let _ = std::fs::remove_file(&path);
}

/// `--serve-tcp-port`: without the token (from the 0600 file next to the socket) a command is refused and never
/// reaches the engine; with it the same text protocol works, and `status` names the token file.
#[tokio::test]
async fn tcp_listener_needs_the_token_then_speaks_the_same_protocol() {
    let engine = fake_engine();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let path = socket_path("tcp");
    let cancel = CancellationToken::new();
    tokio::spawn(control::serve(engine.handle.clone(), path.clone(), Some(port), "orders".into(), cancel.clone()));
    wait_for_socket(&path).await;
    let tcp = |lines: String| async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("tcp connect");
        s.write_all(lines.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    };
    let token_file = PathBuf::from(format!("{}.token", path.display()));
    for attempt in ["throttle\n".to_string(), "token=wrong\nthrottle\n".to_string(), "token=\nthrottle\n".to_string()] {
        let out = tcp(attempt.clone()).await;
        assert!(out.starts_with("ERROR: refused: this TCP control port needs the token"), "{attempt:?}: {out}");
        assert!(out.contains(&token_file.display().to_string()), "the refusal names the token file: {out}");
    }
    assert_eq!(engine.received(), vec![], "nothing reached the engine without the token");
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&token_file).expect("token file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "only the owner can read the token");
    let token = std::fs::read_to_string(&token_file).expect("read token");
    assert_eq!(token.trim().len(), 64);
    let throttled = tcp(format!("token={}\nthrottle\n", token.trim())).await;
    assert!(throttled.starts_with("# Note: ") && throttled.contains("\n# Migrating `shop`.`orders`"), "{throttled}");
    let changes: Vec<Command> = engine.received().into_iter().filter(|c| !matches!(c, Command::Get { .. })).collect();
    assert_eq!(changes, vec![Command::Throttle]);
    let status = tcp(format!("token={}\nstatus\n", token.trim())).await;
    assert!(status.contains(&format!("its token is in {}", token_file.display())), "{status}");
    cancel.cancel();
    for _ in 0..100 {
        if !token_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!token_file.exists(), "the token file is removed at the end");
}

/// A socket path that another user made (here: a socket chowned to nobody) is refused and left alone; a socket
/// whose file is not ours is refused by `attach`.
#[tokio::test]
async fn a_squatted_socket_is_refused_and_attach_checks_the_owner() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to make a file of another user");
        return;
    }
    let engine = fake_engine();
    let path = socket_path("squat");
    // Squatted while nobody listens (a stale socket of ours would be replaced) and while someone listens.
    use std::os::unix::fs::MetadataExt;
    for listening in [false, true] {
        let squatter = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown");
        let squatter = listening.then_some(squatter);
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            control::serve(engine.handle.clone(), path.clone(), None, "orders".into(), CancellationToken::new()),
        )
        .await
        .unwrap_or_else(|_| panic!("listening={listening}: the squatted path was adopted (serve is running on it)"));
        let err = format!("{:?}", r.expect_err("a squatted path is refused"));
        assert!(err.contains("belongs to another user (uid 65534)"), "listening={listening}: {err}");
        assert_eq!(std::fs::symlink_metadata(&path).expect("still there").uid(), 65534, "left as it was");
        drop(squatter);
        let _ = std::fs::remove_file(&path);
    }

    // A symlink at the path is not followed.
    let target = socket_path("squat-target");
    std::os::unix::fs::symlink(&target, &path).expect("symlink");
    let r = control::serve(engine.handle.clone(), path.clone(), None, "orders".into(), CancellationToken::new()).await;
    assert!(format!("{:?}", r.expect_err("symlink")).contains("not a socket"));
    assert!(!target.exists(), "nothing was created through the symlink");
    let _ = std::fs::remove_file(&path);

    // attach: our server, but the socket file belongs to someone else.
    let srv = start(&engine, ControlOptions::new("orders"), "attach-owner").await;
    assert!(control::attach(srv.path.clone()).await.is_ok(), "our own socket attaches");
    std::os::unix::fs::chown(&srv.path, Some(65534), Some(65534)).expect("chown");
    let err = format!("{:?}", control::attach(srv.path.clone()).await.map(|_| ()).expect_err("refused"));
    assert!(err.contains("not to you") && err.contains("refusing to attach"), "{err}");
    srv.cancel.cancel();
}

/// The JSON protocol: `--force-named-cut-over` / `--force-named-panic` hold (the line's `table` must name the
/// table), and live values are checked as strictly as the flags.
#[tokio::test]
async fn json_commands_are_checked_like_text_ones() {
    let engine = fake_engine();
    let opts = ControlOptions { force_named_cut_over: true, force_named_panic: true, ..ControlOptions::new("orders") };
    let srv = start(&engine, opts, "json-named").await;
    let stream = UnixStream::connect(&srv.path).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"{\"hello\":\"revenant-jsonl\",\"version\":1}\n").await.expect("hello");
    let _hello = read_json(&mut reader).await;
    let _status = read_json(&mut reader).await;
    let send = |line: String| line + "\n";
    let foreign = std::env::temp_dir().join(format!("rvn-foreign-flag-{}", std::process::id()));
    std::fs::write(&foreign, b"theirs").expect("write");
    let is_root = unsafe { libc::geteuid() } == 0;
    if is_root {
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).expect("chown");
    }
    let lines = [
        (1, r#"{"id":1,"command":{"command":"cut-over"}}"#.to_string(), false, "--force-named-cut-over"),
        (2, r#"{"id":2,"command":{"command":"abort"}}"#.to_string(), false, "--force-named-panic"),
        (3, r#"{"id":3,"command":{"command":"cut-over"},"table":"other"}"#.to_string(), false, "migrated table is `orders`"),
        (4, r#"{"id":4,"command":{"command":"set","name":"throttle-query","value":"DELETE FROM shop.orders"}}"#.to_string(), false, "single read-only SELECT"),
        (5, r#"{"id":5,"command":{"command":"set","name":"throttle-query","value":"SELECT 1; DROP TABLE shop.orders"}}"#.to_string(), false, "second statement"),
        (6, format!(r#"{{"id":6,"command":{{"command":"set","name":"postpone-cut-over-flag-file","value":"{}"}}}}"#, foreign.display()), !is_root, "another user"),
        (7, r#"{"id":7,"command":{"command":"set","name":"postpone-cut-over-flag-file","value":"relative/path"}}"#.to_string(), false, "absolute path"),
        (8, r#"{"id":8,"command":{"command":"cut-over"},"table":"orders"}"#.to_string(), false, "not ready"),
    ];
    for (_, line, _, _) in &lines {
        write.write_all(send(line.clone()).as_bytes()).await.expect("write");
    }
    let mut replies = std::collections::HashMap::new();
    while replies.len() < lines.len() {
        let v = read_json(&mut reader).await;
        if let Some(r) = v.get("reply") {
            replies.insert(r["id"].as_u64().expect("id"), (r["ok"].as_bool().expect("ok"), r["message"].as_str().unwrap_or("").to_string()));
        }
    }
    for (id, _, ok, needle) in &lines {
        if *id == 6 && !is_root {
            continue;
        }
        let (got_ok, msg) = &replies[id];
        assert_eq!(*got_ok, *ok, "line {id}: {msg}");
        assert!(msg.contains(needle), "line {id}: {msg}");
    }
    // Only the named cut-over reached the engine (which refused it: not ready).
    assert_eq!(engine.received(), vec![Command::CutOver]);
    assert_eq!(std::fs::read(&foreign).expect("read"), b"theirs");
    let _ = std::fs::remove_file(&foreign);
    srv.cancel.cancel();
}

async fn read_json(reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>) -> serde_json::Value {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await.expect("line in time").expect("read");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad json {line:?}: {e}"))
}

#[tokio::test]
async fn json_lines_stream_and_commands() {
    let engine = fake_engine();
    let srv = start(&engine, ControlOptions::new("shop.orders"), "jsonl").await;
    let stream = UnixStream::connect(&srv.path).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"{\"hello\":\"revenant-jsonl\",\"version\":1}\n").await.expect("hello");
    let hello = read_json(&mut reader).await;
    assert_eq!(hello["hello"], "revenant-jsonl");
    assert_eq!(hello["version"], 1);
    assert_eq!(hello["table"], "shop.orders");
    let first = read_json(&mut reader).await;
    assert_eq!(first["status"]["copy"]["rows_copied"], 500);

    // Every snapshot change is streamed.
    engine.status.send_modify(|s| {
        s.copy.rows_copied = 600;
        s.sequence = 2;
    });
    let next = read_json(&mut reader).await;
    assert_eq!(next["status"]["copy"]["rows_copied"], 600);
    assert_eq!(next["status"]["sequence"], 2);

    // Commands are answered with their id.
    write
        .write_all(b"{\"id\":7,\"command\":{\"command\":\"set\",\"name\":\"chunk-size\",\"value\":\"250\"}}\n")
        .await
        .expect("cmd");
    let reply = read_json(&mut reader).await;
    assert_eq!(reply["reply"]["id"], 7);
    assert_eq!(reply["reply"]["ok"], true);
    assert_eq!(reply["reply"]["message"], "chunk-size set to 250");

    // Structured commands are validated like text ones.
    write
        .write_all(b"{\"id\":8,\"command\":{\"command\":\"set\",\"name\":\"chunk-size\",\"value\":\"-1\"}}\n")
        .await
        .expect("cmd");
    let reply = read_json(&mut reader).await;
    assert_eq!(reply["reply"]["id"], 8);
    assert_eq!(reply["reply"]["ok"], false);

    write.write_all(b"{\"id\":9,\"command\":{\"command\":\"warp\"}}\n").await.expect("cmd");
    let reply = read_json(&mut reader).await;
    assert_eq!(reply["reply"]["id"], 9);
    assert_eq!(reply["reply"]["ok"], false);
    assert!(reply["reply"]["message"].as_str().is_some_and(|m| m.contains("invalid command line")));
    assert_eq!(engine.received(), vec![Command::Set { name: "chunk-size".into(), value: "250".into() }]);
    srv.cancel.cancel();
}

#[tokio::test]
async fn read_only_json_connection_refuses_commands() {
    let engine = fake_engine();
    let srv = start(&engine, ControlOptions::new("orders"), "ro").await;
    let handle = control::attach_with(srv.path.clone(), true).await.expect("attach");
    let reply = handle.send(Command::Throttle).await;
    assert!(!reply.ok);
    assert!(reply.message.contains("read-only"), "{}", reply.message);
    assert!(engine.received().is_empty());
    srv.cancel.cancel();
}

#[tokio::test]
async fn two_attached_clients_both_follow_and_command() {
    let engine = fake_engine();
    let srv = start(&engine, ControlOptions::new("orders"), "attach").await;
    let a = control::attach(srv.path.clone()).await.expect("attach a");
    let b = control::attach(srv.path.clone()).await.expect("attach b");
    assert_eq!(a.snapshot(), status_fixture());
    assert_eq!(b.snapshot(), status_fixture());

    let mut a_rx = a.status.clone();
    let mut b_rx = b.status.clone();
    engine.status.send_modify(|s| {
        s.phase = Some(Phase::ReadyToCutOver);
        s.cutover.postponed = true;
        s.sequence = 5;
    });
    for rx in [&mut a_rx, &mut b_rx] {
        tokio::time::timeout(Duration::from_secs(5), async {
            while rx.borrow_and_update().sequence != 5 {
                rx.changed().await.expect("still connected");
            }
        })
        .await
        .expect("snapshot reached the client");
        assert_eq!(rx.borrow().phase, Some(Phase::ReadyToCutOver));
        assert!(rx.borrow().cutover.postponed);
    }

    let (ra, rb) = tokio::join!(a.send(Command::Checkpoint), b.send(Command::Get { name: "nice-ratio".into() }));
    assert_eq!(ra, CommandReply::ok("checkpoint written at 3e11fa47:1-100"));
    assert_eq!(rb, CommandReply::ok("1000"));
    let mut got = engine.received();
    got.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(got, vec![Command::Checkpoint, Command::Get { name: "nice-ratio".into() }]);

    // When the server goes away, the attached status watch closes and commands are refused.
    srv.cancel.cancel();
    srv.task.await.expect("join").expect("serve");
    tokio::time::timeout(Duration::from_secs(5), async {
        while a_rx.changed().await.is_ok() {}
    })
    .await
    .expect("watch closes");
    let r = a.send(Command::Throttle).await;
    assert!(!r.ok, "{r:?}");
}
