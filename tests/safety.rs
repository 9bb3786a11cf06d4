//! What revenant promises about safety (docs/security.md), checked on real servers: no second statement ever
//! runs (not from `--alter`, not on any connection revenant opens), `--throttle-query` is a single read-only
//! SELECT, the control socket is the owner's alone, flag and state files are never someone else's, and output
//! carries no escape codes unless it goes to a terminal.

mod common;

use std::process::Command as Proc;

use common::{conn_config, each_flavor, exec_all, Server};
use mysql_async::prelude::Queryable;

fn revenant(server: &Server, extra: &[&str]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"]);
    p.args(extra).env_remove("MYSQL_PWD");
    p
}

async fn tables(c: &mut mysql_async::Conn, db: &str) -> color_eyre::Result<Vec<String>> {
    Ok(c.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? ORDER BY 1", (db,)).await?)
}

async fn shop(server: &Server) -> color_eyre::Result<mysql_async::Conn> {
    let mut c = server.conn().await?;
    exec_all(
        &mut c,
        "CREATE DATABASE shop;\nCREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20));\n\
         CREATE TABLE shop.victim (id INT PRIMARY KEY)",
    )
    .await?;
    c.query_drop("INSERT INTO shop.orders (v) VALUES ('a'), ('b'), ('c')").await?;
    Ok(c)
}

fn output_text(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Issue 14: `--alter "ADD COLUMN c INT; DROP TABLE shop.victim"` without `--execute` dropped shop.victim and
/// then said "dry run: nothing was changed". Now it is refused before connecting, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_statement_in_the_alter_is_refused_and_changes_nothing() {
    each_flavor(|_flavor| async move {
        let server = Server::start(_flavor).await?;
        let mut c = shop(&server).await?;
        let before = tables(&mut c, "shop").await?;
        for alter in ["ADD COLUMN c INT; DROP TABLE shop.victim", "ADD COLUMN c INT;DROP TABLE shop.victim;", "ADD COLUMN c INT -- x\n; DROP TABLE shop.victim"] {
            for execute in [false, true] {
                let mut args = vec!["--database", "shop", "--table", "orders", "--alter", alter];
                if execute {
                    args.push("--execute");
                }
                let out = revenant(&server, &args).output()?;
                let (stdout, stderr) = output_text(&out);
                assert_eq!(out.status.code(), Some(2), "{alter:?} execute={execute}: {stdout}{stderr}");
                assert!(stderr.contains("one ALTER"), "{alter:?}: the reason is given: {stderr}");
                assert!(!stdout.contains("nothing was changed"), "{stdout}");
                assert_eq!(tables(&mut c, "shop").await?, before, "{alter:?} execute={execute}: nothing changed");
            }
        }
        // Refused before connecting: the same refusal with a port nothing listens on.
        let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
        p.args(["migrate", "--host", "127.0.0.1", "--port", "1", "--user", "root", "--headless"])
            .args(["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN c INT; DROP TABLE shop.victim"]);
        let (stdout, stderr) = output_text(&p.output()?);
        assert!(stderr.contains("one ALTER") && !stderr.contains("connect"), "{stdout}{stderr}");
        Ok(())
    })
    .await;
}

/// mysql_async always asks for CLIENT_MULTI_STATEMENTS; revenant's copy (vendor/mysql_async) asks only on
/// request, so a second statement on any connection revenant opens is a syntax error and runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_statement_on_a_revenant_connection_fails_and_drops_nothing() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = shop(&server).await?;
        let mut rc = mysql_async::Conn::new(conn_config(&server).opts()).await?;
        let e = rc.query_drop("SELECT 1; DROP TABLE shop.victim").await.expect_err("a second statement is refused");
        assert!(e.to_string().contains("syntax"), "{e}");
        let e = rc.query_drop("SELECT 1;DROP TABLE shop.victim").await.expect_err("also without a space");
        assert!(e.to_string().contains("syntax"), "{e}");
        assert!(tables(&mut c, "shop").await?.contains(&"victim".to_string()), "shop.victim is still there");
        // A trailing `;` alone is still one statement.
        let one: Option<i64> = rc.query_first("SELECT 1;").await?;
        assert_eq!(one, Some(1));
        // The sandbox's own (test) connections too: the server refuses unless multi-statements are asked for.
        let e = c.query_drop("SELECT 1; DROP TABLE shop.victim").await.expect_err("test connections refuse as well");
        assert!(e.to_string().contains("syntax"), "{e}");
        // The control: asking for multi-statements does run the second statement (so the refusal above is real).
        let opts = mysql_async::OptsBuilder::from_opts(conn_config(&server).opts()).multi_statements(true);
        let mut multi = mysql_async::Conn::new(opts).await?;
        multi.query_drop("SELECT 1; DROP TABLE shop.victim").await?;
        assert!(!tables(&mut c, "shop").await?.contains(&"victim".to_string()), "with multi-statements on it runs");
        Ok(())
    })
    .await;
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chown_nobody(p: &std::path::Path) {
    std::os::unix::fs::chown(p, Some(65534), Some(65534)).expect("chown to nobody");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rvn-safety-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// `--execute` with a socket path another user made, a flag file of another user, or a throttle query that is not
/// one read-only SELECT: refused with exit 2 before anything changes (no ghost, changelog or checkpoint table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squatted_socket_foreign_flag_file_and_bad_throttle_query_are_refused_before_anything_changes() {
    if !is_root() {
        eprintln!("skipped: needs root to make files of another user");
        return;
    }
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = shop(&server).await?;
        let before = tables(&mut c, "shop").await?;
        let d = scratch(&format!("refusals-{flavor}"));
        let base = ["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN c INT", "--execute"];

        // A squatted socket: a socket of nobody's at the path.
        let sock = d.join("ctl.sock");
        let squatter = std::os::unix::net::UnixListener::bind(&sock)?;
        chown_nobody(&sock);
        let sock_arg = format!("--serve-socket-file={}", sock.display());
        let out = revenant(&server, &[&base[..], &[sock_arg.as_str()]].concat()).output()?;
        let (stdout, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
        assert!(stderr.contains("belongs to another user (uid 65534)"), "{stderr}");
        assert_eq!(tables(&mut c, "shop").await?, before, "squatted socket: nothing changed");
        drop(squatter);

        // A flag file of another user, for each flag-file flag.
        let theirs = d.join("theirs.flag");
        std::fs::write(&theirs, b"theirs")?;
        chown_nobody(&theirs);
        let own_sock = format!("--serve-socket-file={}", d.join("own.sock").display());
        for flag in ["--postpone-cut-over-flag-file", "--throttle-flag-file", "--throttle-additional-flag-file", "--panic-flag-file"] {
            let arg = format!("{flag}={}", theirs.display());
            let out = revenant(&server, &[&base[..], &[arg.as_str(), own_sock.as_str()]].concat()).output()?;
            let (stdout, stderr) = output_text(&out);
            assert_eq!(out.status.code(), Some(2), "{flag}: {stdout}{stderr}");
            assert!(stderr.contains("belongs to another user (uid 65534"), "{flag}: {stderr}");
            assert_eq!(tables(&mut c, "shop").await?, before, "{flag}: nothing changed");
        }
        // A symlink as the postpone flag file is not followed.
        let link = d.join("link.flag");
        std::os::unix::fs::symlink(d.join("nowhere"), &link)?;
        let arg = format!("--postpone-cut-over-flag-file={}", link.display());
        let out = revenant(&server, &[&base[..], &[arg.as_str(), own_sock.as_str()]].concat()).output()?;
        assert_eq!(out.status.code(), Some(2), "{:?}", output_text(&out));
        assert!(!d.join("nowhere").exists(), "nothing created through the symlink");
        assert_eq!(std::fs::read(&theirs)?, b"theirs", "their file is untouched");

        // A throttle query that writes, or holds a second statement.
        for q in ["DELETE FROM shop.victim", "SELECT 1; DROP TABLE shop.victim", "SELECT * FROM shop.orders INTO OUTFILE '/tmp/x'"] {
            let arg = format!("--throttle-query={q}");
            let out = revenant(&server, &[&base[..], &[arg.as_str(), own_sock.as_str()]].concat()).output()?;
            let (stdout, stderr) = output_text(&out);
            assert_eq!(out.status.code(), Some(2), "{q}: {stdout}{stderr}");
            assert!(stderr.contains("single read-only SELECT"), "{q}: {stderr}");
            assert_eq!(tables(&mut c, "shop").await?, before, "{q}: nothing changed");
        }
        let _ = std::fs::remove_dir_all(&d);
        Ok(())
    })
    .await;
}

/// NO_COLOR, and output into pipes: no escape codes in the error report, the log lines or the status lines; logs
/// go to stderr and status lines to stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_into_pipes_and_with_no_color_has_no_escape_codes() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let _c = shop(&server).await?;
        for no_color in [false, true] {
            // A refusal (error report + log lines) and a dry run (status lines + plan).
            for alter in ["ADD COLUMN c NOSUCHTYPE", "ADD COLUMN c INT"] {
                let mut p = revenant(&server, &["--database", "shop", "--table", "orders", "--alter", alter]);
                if no_color {
                    p.env("NO_COLOR", "1");
                }
                let out = p.output()?;
                let (stdout, stderr) = output_text(&out);
                assert!(!stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'), "no_color={no_color} {alter}: {stdout:?} {stderr:?}");
                assert!(stderr.contains("phase: preflight"), "log lines on stderr: {stderr}");
                assert!(!stdout.contains("phase: preflight"), "no log lines on stdout: {stdout}");
                if alter.ends_with("INT") {
                    assert!(stdout.contains("dry run: nothing was changed"), "{stdout}");
                } else {
                    assert!(stderr.contains("rejects the ALTER"), "{stderr}");
                }
            }
        }
        Ok(())
    })
    .await;
}

/// A stop's `--state-file` is written 0600 and never through a symlink or over another user's file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_file_is_private_and_never_follows_a_symlink() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        common::seed_app_table(&server, "big", 20_000).await?;
        let d = scratch(&format!("state-{flavor}"));
        let run = |state: std::path::PathBuf| {
            let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
            p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"])
                .args(["--database", "app", "--table", "big", "--alter", "ADD COLUMN c INT", "--execute", "--postpone-cut-over"])
                .args(["--chunk-size", "100", "--nice-ratio", "5"])
                .arg(format!("--serve-socket-file={}", d.join("s.sock").display()))
                .arg(format!("--state-file={}", state.display()))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            p
        };
        let stop_after = |child: std::process::Child| async move {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            // SAFETY: a plain kill(2) of our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
            Ok::<_, color_eyre::Report>(out)
        };
        let state = d.join("state.json");
        let out = stop_after(run(state.clone()).spawn()?).await?;
        assert_eq!(out.status.code(), Some(3), "{:?}", output_text(&out));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&state)?.permissions().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(&state)?.contains("resume_command"));

        // Resumed with the state file replaced by a symlink: the stop refuses to write through it.
        let target = d.join("elsewhere");
        std::fs::remove_file(&state)?;
        std::os::unix::fs::symlink(&target, &state)?;
        let mut p = run(state.clone());
        p.arg("--resume");
        let out = stop_after(p.spawn()?).await?;
        let (stdout, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(3), "still a stop with a checkpoint: {stdout}{stderr}");
        assert!(stderr.contains("not writing --state-file") && stderr.contains("symbolic link"), "{stderr}");
        assert!(!target.exists(), "nothing written through the symlink");
        assert!(stdout.contains("resume_command"), "the state went to stdout instead: {stdout}");
        let _ = std::fs::remove_dir_all(&d);
        Ok(())
    })
    .await;
}

/// The throttle query runs in a read-only transaction: a stored function that writes (which the word check cannot
/// see) fails there and writes nothing; the same call outside such a transaction does write (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throttle_query_cannot_write_even_through_a_function() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = shop(&server).await?;
        c.query_drop(
            "CREATE FUNCTION shop.sneaky() RETURNS INT DETERMINISTIC BEGIN INSERT INTO shop.victim VALUES (7); RETURN 1; END",
        )
        .await?;
        let q = revenant::engine::throttle::query::check_throttle_query("SELECT shop.sneaky()").map_err(color_eyre::eyre::Report::msg)?;
        let mut rc = mysql_async::Conn::new(conn_config(&server).opts()).await?;
        let e = revenant::engine::throttle::query::read_only_first(&mut rc, &q).await.expect_err("the write is refused");
        assert!(e.to_ascii_lowercase().contains("read only") || e.to_ascii_lowercase().contains("read-only"), "{e}");
        let n: Option<u64> = c.query_first("SELECT COUNT(*) FROM shop.victim").await?;
        assert_eq!(n, Some(0), "nothing was written");
        // The connection is usable afterwards (the transaction ended).
        assert_eq!(revenant::engine::throttle::query::read_only_first(&mut rc, "SELECT 5").await.map_err(color_eyre::eyre::Report::msg)?, Some("5".into()));
        let v: Option<i64> = rc.query_first("SELECT shop.sneaky()").await?;
        assert_eq!(v, Some(1));
        let n: Option<u64> = c.query_first("SELECT COUNT(*) FROM shop.victim").await?;
        assert_eq!(n, Some(1), "outside a read-only transaction the function writes");
        Ok(())
    })
    .await;
}

/// A throttle or panic flag file that another user creates while the migration runs neither throttles nor stops
/// it (they could otherwise hold or abort any migration); the same files of our own do (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_files_of_another_user_neither_throttle_nor_stop_a_running_migration() {
    if !is_root() {
        eprintln!("skipped: needs root to make files of another user");
        return;
    }
    each_flavor(|flavor| async move {
        use revenant::engine::pipeline::migrate::{self, Outcome};
        use revenant::engine::Phase;
        use std::time::Duration;
        let server = Server::start(flavor).await?;
        // Enough rows that the copy (nice ratio 20) lasts a few seconds: with two copy workers 3,000 rows were
        // copied between two status snapshots, and the wait for the copy phase missed it.
        common::seed_app_table(&server, "items", 30_000).await?;
        let d = scratch(&format!("running-flags-{flavor}"));
        let (hold, panic) = (d.join("throttle.flag"), d.join("panic.flag"));
        let mut cfg = common::test_config(&server, "app", "items", "ADD COLUMN c INT");
        cfg.run.throttle.throttle_flag_file = Some(hold.clone());
        cfg.run.throttle.panic_flag_file = Some(panic.clone());
        cfg.run.throttle.nice_ratio = 20.0;
        let (handle, join) = migrate::start(cfg);
        common::wait_phase(&handle, Phase::Copy, Duration::from_secs(60)).await?;
        for f in [&hold, &panic] {
            std::fs::write(f, b"")?;
            chown_nobody(f);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let s = handle.snapshot();
        assert!(!s.throttle.throttled, "another user's throttle flag throttled: {:?}", s.throttle);
        assert!(s.phase.is_some_and(|p| !p.is_terminal()), "another user's panic flag stopped it: {:?}", s.phase);
        // Our own throttle flag file throttles.
        std::fs::remove_file(&hold)?;
        std::fs::write(&hold, b"")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !handle.snapshot().throttle.throttled {
            assert!(std::time::Instant::now() < deadline, "our own flag file did not throttle");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(handle.snapshot().throttle.reason.contains("flag-file"));
        // Our own panic flag file stops it (resumably).
        std::fs::remove_file(&panic)?;
        std::fs::write(&panic, b"")?;
        let r = tokio::time::timeout(Duration::from_secs(30), join).await??;
        assert!(!matches!(r, Ok(Outcome::Done { .. })), "our panic flag stopped it: {r:?}");
        let _ = std::fs::remove_dir_all(&d);
        Ok(())
    })
    .await;
}
