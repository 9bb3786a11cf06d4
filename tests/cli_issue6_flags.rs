//! The command line's throttling, hooks and metrics flags: gh-ost's names are accepted (no longer refused), bad
//! values are refused with exit 2 before anything is changed, and a real run with them (gh-ost's single-dash
//! spelling included) completes, its on-success hook seeing no password.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command as Proc;

use common::{each_flavor, exec_all, Server};
use mysql_async::prelude::Queryable;

fn migrate(port: u16, extra: &[&str]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &port.to_string(), "--user", "root", "--headless"]);
    p.args(["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN w INT"]);
    p.args(extra).env_remove("MYSQL_PWD");
    p
}

#[test]
fn bad_throttle_hook_and_metrics_values_are_refused_before_connecting() {
    // Port 1: nothing listens; every refusal must come before a connection is tried.
    let cases: &[(&[&str], &str)] = &[
        (&["--max-load", "Threads_running"], "--max-load"),
        (&["--critical-load", "Threads_running=lots"], "--critical-load"),
        (&["--throttle-control-replicas", "db2:0"], "--throttle-control-replicas"),
        (&["--throttle-http", "https://lb/throttle"], "--throttle-http"),
        (&["--throttle-http", "http://lb/throttle", "--throttle-http-timeout-millis", "0"], "--throttle-http-timeout-millis"),
        (&["--hooks-path", "/nonexistent/revenant-hooks"], "--hooks-path"),
        (&["--metrics-addr", "localhost"], "--metrics-addr"),
    ];
    for (args, needle) in cases {
        let out = migrate(1, args).arg("--execute").output().expect("run revenant");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: exit {:?}, stderr {stderr}", out.status.code());
        assert!(stderr.contains(needle), "{args:?}: the refusal does not name {needle}: {stderr}");
        assert!(!stderr.contains("cannot connect"), "{args:?}: connected before refusing: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_the_new_flags_completes_and_hooks_see_no_password() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(&mut c, "CREATE DATABASE shop;\nCREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))").await?;
        c.query_drop("INSERT INTO shop.orders (v) VALUES ('a'), ('b'), ('c')").await?;
        for host in ["%", "localhost"] {
            c.query_drop(format!("CREATE USER 'mig'@'{host}' IDENTIFIED BY 'Secr3t-hook-pw'")).await?;
            c.query_drop(format!("GRANT ALL PRIVILEGES ON *.* TO 'mig'@'{host}'")).await?;
        }
        let base = std::env::var("REVENANT_SANDBOX_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        let hooks = base.join(format!("cli-hooks-{}-{}", std::process::id(), flavor.name()));
        std::fs::create_dir_all(&hooks)?;
        let env_file = hooks.join("success.env");
        let script = hooks.join("gh-ost-on-success");
        std::fs::write(&script, format!("#!/bin/sh\nenv > {}\n", env_file.display()))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        let hooks_arg = format!("-hooks-path={}", hooks.display());
        let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
        p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "mig", "--headless"])
            .args(["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN w INT", "--execute", "--ok-to-drop-table"])
            .args([hooks_arg.as_str(), "-hooks-hint=ticket-7", "--hooks-status-interval", "1", "--hook-timeout-seconds", "10"])
            .args(["--max-load", "Threads_running=100000", "--critical-load", "Threads_running=200000", "--critical-load-interval-millis", "100"])
            .args(["--metrics-addr", "127.0.0.1:0", "--nice-ratio", "0.1"])
            // Nothing listens on port 1: without --ignore-http-errors this run would stay throttled.
            .args(["--throttle-http", "http://127.0.0.1:1/throttle", "--ignore-http-errors"])
            .args(["--throttle-http-timeout-millis", "200", "-throttle-http-interval-millis=50"])
            .env("MYSQL_PWD", "Secr3t-hook-pw");
        let out = p.output()?;
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        color_eyre::eyre::ensure!(out.status.success(), "migration with the new flags: {all}");
        let env = std::fs::read_to_string(&env_file)?;
        color_eyre::eyre::ensure!(env.contains("GH_OST_HOOKS_HINT=ticket-7") && env.contains("GH_OST_TABLE_NAME=orders"), "on-success env: {env}");
        color_eyre::eyre::ensure!(!env.contains("Secr3t-hook-pw") && !env.contains("MYSQL_PWD"), "the password reached the hook: {env}");
        let cols: Vec<String> = c.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='orders' ORDER BY ORDINAL_POSITION").await?;
        color_eyre::eyre::ensure!(cols == ["id", "v", "w"], "columns after the run: {cols:?}");
        let _ = std::fs::remove_dir_all(&hooks);
        Ok(())
    })
    .await;
}
