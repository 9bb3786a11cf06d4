//! TLS to the server (issue 14 item 2), on servers of both flavours that serve certificates the harness makes and
//! refuse plain connections (`require_secure_transport=ON`): a migration under a writer completes over TLS (every
//! connection of the engine uses it, or the server would refuse it); a wrong CA is refused with a clear message
//! before anything changes; `--ssl-allow-insecure` connects without verification and says so; an option file's
//! `ssl-ca` / `ssl-mode` are honoured; a move-tables run between two such servers with different CAs (the target's
//! own TLS settings) completes under a writer.

mod common;
mod move_support;

use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Output};
use std::time::Duration;

use color_eyre::eyre::{ensure, Result};
use common::{each_flavor, migrate_with_writer, seed_app_table, Flavor, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::config::{TlsConfig, TlsVerify};
use revenant::sandbox::ServerOptions;

async fn tls_server(flavor: Flavor) -> Result<Server> {
    Server::start_with(flavor, ServerOptions { tls: Some(common::tls::server_tls()?), ..Default::default() }).await
}

/// The server refuses a connection without TLS (so whatever connected did use TLS), naming the reason.
async fn refuses_plain(server: &Server) -> Result<()> {
    let plain = mysql_async::Conn::new(server.plain_opts()).await;
    let err = match plain {
        Ok(_) => color_eyre::eyre::bail!("{server:?} accepted a connection without TLS"),
        Err(e) => e.to_string(),
    };
    ensure!(err.contains(plain_refusal(server.flavor)), "{server:?}: unexpected refusal of a plain connection: {err}");
    // The same account connects over TLS: only the transport differs.
    server.conn().await?.disconnect().await?;
    Ok(())
}

/// How the server refuses a plain connection under require_secure_transport=ON: MySQL says so (3159); MariaDB
/// 10.11 answers with "Access denied" (1045) for an account that connects over TLS without any password.
fn plain_refusal(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MySql => "insecure transport",
        Flavor::MariaDb => "Access denied",
    }
}

/// A scratch directory for PEM and option files, under the sandbox directory.
fn scratch(server: &Server, tag: &str) -> Result<PathBuf> {
    let base = std::env::var("REVENANT_SANDBOX_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let dir = base.join(format!("tls-{}-{tag}-{}", std::process::id(), server.port));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `revenant migrate` of app.t on the server, headless, with `extra` flags.
fn migrate_cli(server: &Server, extra: &[&str]) -> Result<Output> {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"])
        .args(["--database", "app", "--table", "t", "--alter", "ADD COLUMN c INT"])
        .args(extra)
        .env_remove("MYSQL_PWD")
        .env("HOME", "/nonexistent")
        .stdin(std::process::Stdio::null());
    Ok(p.output()?)
}

async fn app_tables(server: &Server) -> Result<Vec<String>> {
    let mut c = server.conn().await?;
    Ok(c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='app' ORDER BY 1").await?)
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_under_a_writer_completes_over_tls_to_a_server_that_requires_it() {
    each_flavor(|flavor| async move {
        let server = tls_server(flavor).await?;
        refuses_plain(&server).await?;
        seed_app_table(&server, "t", 3000).await?;
        let ca = server.tls_ca_file();
        let ops = migrate_with_writer(&server, "app", "t", "ADD COLUMN c INT", &["a", "b"], &["id", "a", "b"], &["id", "a", "b"], |cfg| {
            cfg.source.tls = Some(TlsConfig { ca: ca.clone(), cert: None, key: None, verify: TlsVerify::Identity });
        })
        .await?;
        ensure!(ops > 0, "the writer made no writes: the test proves nothing");
        // The harness's own connection is encrypted too (it reads the session's cipher).
        let mut c = server.conn().await?;
        let cipher: Option<(String, String)> = c.query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'").await?;
        ensure!(cipher.is_some_and(|(_, v)| !v.is_empty()), "no TLS cipher on the session");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_refused_before_anything_changes_and_the_right_one_connects() {
    each_flavor(|flavor| async move {
        let server = tls_server(flavor).await?;
        seed_app_table(&server, "t", 100).await?;
        let dir = scratch(&server, "ca")?;
        let wrong = dir.join("wrong-ca.pem");
        std::fs::write(&wrong, common::tls::unrelated_ca_pem()?)?;
        let right = server.tls_ca_file().unwrap_or_default();

        let out = migrate_cli(&server, &["--execute", "--ssl", "--ssl-ca", &path_str(&wrong)])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success(), "a wrong CA was accepted: {stderr}");
        ensure!(stderr.contains("cannot connect to 127.0.0.1"), "no connection failure named: {stderr}");
        ensure!(stderr.contains("UnknownIssuer"), "the reason (unknown issuer) is not given: {stderr}");
        ensure!(stderr.contains("--ssl-ca must name the CA"), "no suggestion about --ssl-ca: {stderr}");
        ensure!(app_tables(&server).await? == ["t"], "the refused run changed the server: {:?}", app_tables(&server).await?);

        // Without TLS the server refuses revenant, and the hint names --ssl.
        let out = migrate_cli(&server, &[])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success() && stderr.contains(plain_refusal(flavor)) && stderr.contains("needs --ssl"), "plain: {stderr}");

        // The right CA: the dry run passes, verified (chain and name 127.0.0.1).
        let out = migrate_cli(&server, &["--ssl", "--ssl-ca", &path_str(&right)])?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success() && stdout.contains("dry run: nothing was changed"), "right CA: {stdout}{}", String::from_utf8_lossy(&out.stderr));

        // The same from an option file's [client] ssl-ca and ssl-mode (the client's keys).
        let conf = dir.join("my.cnf");
        std::fs::write(&conf, format!("[client]\nuser = root\nssl-ca = {}\nssl-mode = VERIFY_IDENTITY\n", right.display()))?;
        let out = migrate_cli(&server, &["--conf", &path_str(&conf)])?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success() && stdout.contains("dry run: nothing was changed"), "--conf ssl-ca: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        ensure!(app_tables(&server).await? == ["t"], "a dry run changed the server");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_allow_insecure_connects_without_verification_and_says_so() {
    each_flavor(|flavor| async move {
        let server = tls_server(flavor).await?;
        seed_app_table(&server, "t", 100).await?;
        // Without a CA the test CA is unknown (only the built-in web roots are trusted): verified TLS fails...
        let out = migrate_cli(&server, &["--ssl"])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success() && stderr.contains("UnknownIssuer"), "--ssl without the CA: {stderr}");
        // ...and --ssl-allow-insecure skips the verification, with a warning that says so.
        let out = migrate_cli(&server, &["--ssl", "--ssl-allow-insecure"])?;
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        ensure!(out.status.success() && stdout.contains("dry run: nothing was changed"), "--ssl-allow-insecure: {stdout}{stderr}");
        ensure!(stderr.contains("without verification") && stderr.contains("NOT checked"), "no warning that nothing was verified: {stderr}");
        // gh-ost's rule: it requires --ssl.
        let out = migrate_cli(&server, &["--ssl-allow-insecure"])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.code() == Some(2) && stderr.contains("--ssl-allow-insecure requires --ssl"), "alone: {stderr}");
        ensure!(app_tables(&server).await? == ["t"], "a dry run changed the server");
        Ok(())
    })
    .await;
}

fn verified(server: &Server) -> Option<TlsConfig> {
    Some(TlsConfig { ca: server.tls_ca_file(), cert: None, key: None, verify: TlsVerify::Identity })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_between_two_tls_only_servers_with_different_cas_completes_under_a_writer() {
    use revenant::engine::pipeline::move_tables::{self, MoveOutcome};
    each_flavor(|flavor| async move {
        // Each server has its own CA: the source's CA does not verify the target, so the target's own setting is used.
        let source = tls_server(flavor).await?;
        let target = tls_server(flavor).await?;
        refuses_plain(&target).await?;
        move_support::seed(&source, &target, "shop", 800).await?;
        let writer = move_support::AppWriter::start(&source, "shop", "orders", 7).await?;
        let mut cfg = move_support::move_config(&source, &target, "shop");
        cfg.source.tls = verified(&source);
        cfg.target.tls = verified(&target);
        let (handle, join) = move_tables::start(cfg);
        let ready = common::wait_phase(&handle, revenant::engine::Phase::ReadyToCutOver, Duration::from_secs(120)).await;
        if let Err(e) = ready {
            let r = join.await?;
            return Err(e.wrap_err(format!("move result: {r:?}")));
        }
        let reply = handle.send(revenant::engine::Command::CutOver).await;
        ensure!(reply.ok, "cut-over refused: {}", reply.message);
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        ensure!(matches!(outcome, MoveOutcome::Done { .. }), "outcome {outcome:?}");
        let (ok, _) = writer.stop().await?;
        ensure!(ok > 0, "the writer made no writes: the test proves nothing");
        let counts = move_support::verify_moved(&source, &target, "shop").await?;
        eprintln!("[{flavor}] moved {counts:?} rows over TLS (two CAs), {ok} writes");
        Ok(())
    })
    .await;
}
