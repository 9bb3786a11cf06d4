//! `revenant demo` as a user runs it (headless, the cut-over postponed), on both flavours: its server admits
//! no one without the password kept in a 0600 file; its write load keeps events flowing; Ctrl-C (SIGINT) stops it
//! resumably (exit 3) and takes the server and its files away; with the cut-over approved on the control socket
//! it finishes with the load's rows in the migrated table.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, eyre, Result};
use common::{each_flavor, Flavor};

/// A demo run: the child, its stderr lines and its status lines (stdout), as they come.
struct Demo {
    child: Child,
    err: Receiver<String>,
    out: Receiver<String>,
    socket: PathBuf,
}

fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn start_demo(flavor: Flavor, sandbox: &Path, rows: u64) -> Result<Demo> {
    let socket = sandbox.join("demo.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["demo", "--headless", "--postpone-cut-over", "--flavor", flavor.name(), "--rows", &rows.to_string()])
        .arg(format!("--serve-socket-file={}", socket.display()))
        .env("REVENANT_SANDBOX_DIR", sandbox)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let err = lines_of(child.stderr.take().ok_or_else(|| eyre!("no stderr"))?);
    let out = lines_of(child.stdout.take().ok_or_else(|| eyre!("no stdout"))?);
    Ok(Demo { child, err, out, socket })
}

/// The first line from `rx` that `pick` maps to Some, within `secs`.
fn wait_for<T>(rx: &Receiver<String>, secs: u64, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(v) = pick(&line) {
                return Ok(v);
            }
            seen.push(line);
        }
    }
    bail!("never saw {what}; saw:\n{}", seen.join("\n"))
}

/// The number after `Applied: ` in a status line.
fn applied(line: &str) -> Option<u64> {
    line.split("Applied: ").nth(1)?.split(';').next()?.trim().parse().ok()
}

/// Port and password file of the demo's server, from its start-up lines.
fn server_of(demo: &Demo) -> Result<(u16, PathBuf)> {
    let port = wait_for(&demo.err, 120, "the server's port", |l| l.split("on 127.0.0.1:").nth(1)?.trim().parse::<u16>().ok())?;
    let file = wait_for(&demo.err, 30, "the password file", |l| {
        Some(PathBuf::from(l.split("root's password is in ").nth(1)?.split(" (").next()?))
    })?;
    Ok((port, file))
}

async fn refused_without_password(port: u16) -> bool {
    let opts = mysql_async::OptsBuilder::default().ip_or_hostname("127.0.0.1").tcp_port(port).user(Some("root")).prefer_socket(false);
    mysql_async::Conn::new(opts).await.is_err()
}

fn socket_command(socket: &Path, command: &str) -> Result<String> {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.write_all(format!("{command}\n").as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Entries left in the sandbox directory other than the control socket's.
fn leftovers(sandbox: &Path) -> Vec<String> {
    std::fs::read_dir(sandbox)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<String>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|n: &String| n.starts_with("revenant-sandbox"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_is_private_loaded_and_stops_clean_on_ctrl_c() {
    each_flavor(|flavor| async move {
        let sandbox = tempdir(flavor, "int")?;
        let mut demo = start_demo(flavor, &sandbox, 20_000)?;
        let (port, file) = server_of(&demo)?;
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the password file is the owner's only");
        assert!(refused_without_password(port).await, "root without the password is refused");
        let password = std::fs::read_to_string(&file)?;
        // At the postponed gate the load keeps writing: events are applied while it waits.
        let first = wait_for(&demo.out, 120, "the postponed gate", |l| l.contains("postponing cut-over").then(|| applied(l)).flatten())?;
        wait_for(&demo.out, 60, "more events applied at the gate", |l| applied(l).filter(|n| *n >= first + 100))?;
        // SAFETY: kill(2) on the child we spawned.
        unsafe { libc::kill(demo.child.id() as libc::pid_t, libc::SIGINT) };
        let status = demo.child.wait()?;
        assert_eq!(status.code(), Some(3), "Ctrl-C stops resumably");
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(port)
            .user(Some("root"))
            .pass(Some(password))
            .prefer_socket(false);
        assert!(mysql_async::Conn::new(opts).await.is_err(), "the server is gone with the demo");
        if flavor == Flavor::MariaDb {
            assert_eq!(leftovers(&sandbox), Vec::<String>::new(), "the sandbox's files are removed");
        }
        assert!(!file.exists(), "the password file went with the server");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_cut_over_approved_on_the_socket_keeps_the_load_rows() {
    each_flavor(|flavor| async move {
        let sandbox = tempdir(flavor, "cut")?;
        let mut demo = start_demo(flavor, &sandbox, 20_000)?;
        server_of(&demo)?;
        wait_for(&demo.out, 120, "the postponed gate", |l| l.contains("postponing cut-over").then_some(()))?;
        // gh-ost's socket commands, answered as gh-ost answers them (a real engine behind the socket).
        let set = socket_command(&demo.socket, "chunk-size=1500")?;
        assert!(set.contains("\n# chunk-size: 1500; max-lag-millis: 1500ms; dml-batch-size: "), "{set}");
        assert!(set.lines().last().is_some_and(|l| l.starts_with("Copy: ")), "{set}");
        assert_eq!(socket_command(&demo.socket, "chunk-size=?")?, "1500\n");
        let at = socket_command(&demo.socket, "coordinates")?;
        assert!(at.starts_with("mysql-bin.") && at.trim_end().rsplit(':').next().is_some_and(|p| p.parse::<u64>().is_ok()), "{at}");
        assert!(socket_command(&demo.socket, "applier")?.starts_with("Host: 127.0.0.1:"));
        let reply = socket_command(&demo.socket, "unpostpone")?;
        let done = wait_for(&demo.out, 120, "the end", |l| l.starts_with("demo: ").then(|| l.to_string()))?;
        let status = demo.child.wait()?;
        assert!(status.success(), "{reply} {done}");
        // "demo.orders migrated (N rows; W writes by the load (I inserts, ...": the rows are the seed plus the
        // load's net inserts, at least the seed minus its deletes.
        let writes: u64 = done.split("rows; ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).ok_or_else(|| eyre!("{done}"))?;
        assert!(writes >= 100, "a load a DBA recognises wrote more than a handful: {done}");
        assert!(done.contains("migrated"), "{done}");
        Ok(())
    })
    .await;
}

/// A fresh directory for one demo's sandbox.
fn tempdir(flavor: Flavor, what: &str) -> Result<PathBuf> {
    let base = std::env::var("REVENANT_SANDBOX_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let dir = base.join(format!("demo-{}-{what}-{}", flavor.name(), std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
