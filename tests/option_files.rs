//! Option files (`--conf`, my.cnf style) on the command line against a real server: a flag given wins over the
//! file even when it equals the default (`--host 127.0.0.1`), the file's values fill what no flag gives, includes
//! are followed, and a world-readable file holding a password is refused with the reason before anything connects.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Output};

use color_eyre::eyre::{ensure, Result};
use common::{each_flavor, seed_app_table, Server};

fn scratch(server: &Server) -> Result<PathBuf> {
    let base = std::env::var("REVENANT_SANDBOX_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let dir = base.join(format!("optfiles-{}-{}", std::process::id(), server.port));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A dry run of app.t with `args` (no --host/--port/--user unless given), HOME without a ~/.my.cnf.
fn dry_run(args: &[&str]) -> Result<Output> {
    Ok(Proc::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["migrate", "--headless", "--database", "app", "--table", "t", "--alter", "ADD COLUMN c INT"])
        .args(args)
        .env_remove("MYSQL_PWD")
        .env("HOME", "/nonexistent")
        .stdin(std::process::Stdio::null())
        .output()?)
}

fn passed(out: &Output) -> bool {
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("dry run: nothing was changed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_win_over_the_option_file_and_its_values_fill_the_rest() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "t", 10).await?;
        let dir = scratch(&server)?;
        let port = server.port.to_string();
        // The file points elsewhere; the command line's --host 127.0.0.1 (the default's value) and --port win.
        let conf = dir.join("elsewhere.cnf");
        write(&conf, "[client]\nuser = root\nhost = nosuchhost.invalid\nport = 1\n", 0o600)?;
        let out = dry_run(&["--host", "127.0.0.1", "--port", &port, "--conf", &conf.display().to_string()])?;
        ensure!(passed(&out), "explicit --host 127.0.0.1 lost to the file: {}", String::from_utf8_lossy(&out.stderr));
        // Without the flags, the file's values are used (through an !include, quoted): it reaches the server.
        write(&dir.join("inc.cnf"), &format!("[client]\nhost = \"127.0.0.1\"  # quoted\nport = {port}\n"), 0o600)?;
        let conf = dir.join("top.cnf");
        write(&conf, "[client]\nuser = root\nhost = nosuchhost.invalid\n!include inc.cnf\n", 0o600)?;
        let out = dry_run(&["--conf", &conf.display().to_string()])?;
        ensure!(passed(&out), "the file's host and port were not used: {}", String::from_utf8_lossy(&out.stderr));
        // A world-readable file with a password is refused before connecting, with the reason and no password.
        write(&conf, &format!("[client]\nuser = root\npassword = Sekr1t-pw\nhost = 127.0.0.1\nport = {port}\n"), 0o644)?;
        let out = dry_run(&["--conf", &conf.display().to_string()])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.code() == Some(2) && stderr.contains("holds a password and every local user can read it"), "{stderr}");
        ensure!(!stderr.contains("Sekr1t-pw") && !String::from_utf8_lossy(&out.stdout).contains("Sekr1t-pw"), "the password was shown");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}
