//! Out-of-range numbers on the command line and in `--config` TOML are refused with exit 2, naming the flag,
//! before anything changes on the server: never an overflow panic, never a run with an absurd interval.

mod common;

use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

use common::{each_flavor, exec_all, Server};
use mysql_async::prelude::Queryable;

/// Runs `p` for at most `limit`; a run still going after it is killed (and reported as such).
fn run_bounded(mut p: Proc, limit: Duration) -> color_eyre::Result<(Option<i32>, String)> {
    let mut child = p.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let started = Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            return Ok((None, format!("still running after {limit:?}: {}", String::from_utf8_lossy(&out.stderr))));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    Ok((out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
}

const HUGE: &str = "4611686018427387904";
const MAX: &str = "18446744073709551615";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_numbers_are_refused_by_name_before_anything_changes() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(&mut c, "CREATE DATABASE shop;\nCREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))").await?;
        c.query_drop("INSERT INTO shop.orders (v) VALUES ('a'), ('b'), ('c')").await?;
        let base = std::env::var("REVENANT_SANDBOX_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        let dir = base.join(format!("cli-numbers-{}-{}", std::process::id(), flavor.name()));
        std::fs::create_dir_all(&dir)?;
        let hooks = dir.join("hooks");
        std::fs::create_dir_all(&hooks)?;
        let hooks_arg = format!("--hooks-path={}", hooks.display());
        let toml = |name: &str, body: &str| -> color_eyre::Result<String> {
            let f = dir.join(name);
            std::fs::write(&f, body)?;
            Ok(format!("--config={}", f.display()))
        };
        let cut_over_toml = toml("cut.toml", &format!("cut-over-lock-timeout-seconds = {HUGE}\n"))?;
        let hibernate_toml = toml("hib.toml", "critical-load = \"Threads_running=1\"\ncritical-load-hibernate-seconds = 9223372036854775807\n")?;
        let negative_toml = toml("neg.toml", "hook-timeout-seconds = -1\n")?;
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["--cut-over-lock-timeout-seconds", HUGE], "--cut-over-lock-timeout-seconds"),
            (vec!["--critical-load", "Threads_running=1", "--critical-load-hibernate-seconds", MAX], "--critical-load-hibernate-seconds"),
            (vec!["--critical-load", "Threads_running=1", "--critical-load-interval-millis", MAX], "--critical-load-interval-millis"),
            (vec![hooks_arg.as_str(), "--hooks-status-interval", MAX], "--hooks-status-interval"),
            (vec![hooks_arg.as_str(), "--hook-timeout-seconds", MAX], "--hook-timeout-seconds"),
            (vec!["--throttle-http", "http://127.0.0.1:1/", "--throttle-http-interval-millis", MAX], "--throttle-http-interval-millis"),
            (vec!["--retry-seconds", MAX], "--retry-seconds"),
            (vec!["--chunk-time-millis", MAX], "--chunk-time-millis"),
            (vec!["--heartbeat-interval-millis", MAX], "--heartbeat-interval-millis"),
            (vec!["--checkpoint-seconds", MAX], "--checkpoint-seconds"),
            (vec!["--copy-threads", "0"], "--copy-threads"),
            (vec!["--copy-threads", "65"], "--copy-threads"),
            (vec!["--apply-threads", "0"], "--apply-threads"),
            (vec!["--mysql-timeout=-1"], "--mysql-timeout"),
            (vec!["--mysql-timeout", "3601"], "--mysql-timeout"),
            (vec![cut_over_toml.as_str()], "--cut-over-lock-timeout-seconds"),
            (vec![hibernate_toml.as_str()], "--critical-load-hibernate-seconds"),
            (vec![negative_toml.as_str()], "--hook-timeout-seconds"),
        ];
        for (extra, needle) in &cases {
            let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
            p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"])
                .args(["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN w INT", "--execute"])
                .args(extra)
                .env_remove("MYSQL_PWD");
            let (code, all) = run_bounded(p, Duration::from_secs(60))?;
            color_eyre::eyre::ensure!(code == Some(2), "{extra:?}: exit {code:?}, not 2: {all}");
            color_eyre::eyre::ensure!(all.contains(needle), "{extra:?}: the refusal does not name {needle}: {all}");
            color_eyre::eyre::ensure!(!all.contains("panicked"), "{extra:?}: panicked: {all}");
            let tables: Vec<String> = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='shop' ORDER BY 1").await?;
            color_eyre::eyre::ensure!(tables == ["orders"], "{extra:?}: the server was changed: {tables:?}");
        }
        let cols: Vec<String> = c.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='orders' ORDER BY ORDINAL_POSITION").await?;
        color_eyre::eyre::ensure!(cols == ["id", "v"], "the table was migrated: {cols:?}");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}

/// `--mysql-timeout`: a server that takes the TCP connection and never answers (a listener nobody accepts on) is
/// given up on after the timeout, as a lost connection (retried for --retry-seconds), and the run ends by itself
/// naming the flag; nothing is written anywhere. Without the flag the same run would wait for the handshake.
#[test]
fn a_server_that_never_answers_is_given_up_on_after_the_mysql_timeout() -> color_eyre::Result<()> {
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = silent.local_addr()?.port().to_string();
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &port, "--user", "root", "--headless"])
        .args(["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN w INT"])
        .args(["--mysql-timeout", "1.5", "--retry-seconds", "1"])
        .env_remove("MYSQL_PWD");
    let started = Instant::now();
    let (code, all) = run_bounded(p, Duration::from_secs(90))?;
    let took = started.elapsed();
    color_eyre::eyre::ensure!(code.is_some_and(|c| c != 0), "exit {code:?}: {all}");
    color_eyre::eyre::ensure!(all.contains("within --mysql-timeout (1.5 s)"), "the error does not name the timeout: {all}");
    color_eyre::eyre::ensure!(took >= Duration::from_millis(1500), "gave up after {took:?}, before the timeout");
    drop(silent);
    Ok(())
}
