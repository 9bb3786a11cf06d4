//! One migration run of the crash, failover and memory tests, driven through the binary: a scratch directory
//! (the postpone and throttle flag files, the trace, the control socket, a hooks folder), removed on drop, and the
//! command line they share (status JSON on stdout, the fixture's trace and socket, no fail points unless set).

use std::path::PathBuf;
use std::process::{Child, Command as Proc, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, eyre, Result};

use super::Server;

/// The crash tests' pacing: small chunks that grow slowly, and a pause between them, so a kill finds a copy going.
pub const PACED: [&str; 10] =
    ["--chunk-size", "200", "--chunk-time-millis", "20", "--nice-ratio", "3", "--max-lag-millis", "10000", "--default-retries", "5"];

pub struct Fixture {
    pub dir: PathBuf,
    pub postpone: PathBuf,
    pub throttle: PathBuf,
    pub trace: PathBuf,
    pub socket: PathBuf,
    pub hooks: PathBuf,
}

impl Fixture {
    /// A fresh directory named after the test file (`kind`), the case (`tag`) and the server's port.
    pub fn new(kind: &str, tag: &str, port: u16) -> Result<Fixture> {
        let dir = std::env::temp_dir().join(format!("rvn-{kind}-{tag}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let hooks = dir.join("hooks");
        std::fs::create_dir_all(&hooks)?;
        Ok(Fixture {
            postpone: dir.join("postpone.flag"),
            throttle: dir.join("throttle.flag"),
            trace: dir.join("trace.log"),
            socket: dir.join("ctl.sock"),
            hooks,
            dir,
        })
    }

    pub fn trace_text(&self) -> String {
        std::fs::read_to_string(&self.trace).unwrap_or_default()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `revenant migrate` of `db.t` on `server` with `args` (the ALTER, chunking, ...), status JSON on stdout and both
/// outputs piped; `postponed`: the cut-over waits while `fx.postpone` exists (revenant creates it when missing).
pub fn migrate(server: &Server, db: &str, fx: &Fixture, postponed: bool, args: &[&str]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--database", db])
        .args(["--table", "t", "--execute", "--status-json"])
        .arg(format!("--serve-socket-file={}", fx.socket.display()))
        .args(args)
        .env("REVENANT_TRACE_FILE", &fx.trace)
        .env_remove("REVENANT_FAILPOINTS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if postponed {
        p.arg(format!("--postpone-cut-over-flag-file={}", fx.postpone.display()));
    }
    p
}

/// Drains the child's stdout on a thread; the receiver gets every line (the status JSON).
pub fn lines_of(child: &mut Child) -> Result<Receiver<String>> {
    use std::io::BufRead;
    let stdout = child.stdout.take().ok_or_else(|| eyre!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    Ok(rx)
}

/// Waits for a line containing `needle`.
pub fn wait_for_line(rx: &Receiver<String>, needle: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains(needle) => return Ok(()),
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => bail!("revenant ended before {needle}"),
        }
    }
    bail!("no {needle} within {timeout:?}")
}
