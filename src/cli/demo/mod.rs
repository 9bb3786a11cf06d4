//! `revenant demo`: a private sandbox server (the test harness's code, root with a random password in a 0600
//! file), a seeded table, a write load (inserts, updates, deletes at `--write-rate` per second), and a migration in
//! the console with the cut-over postponed until the user presses `C`. Ctrl-C (or SIGTERM) stops the migration at
//! its next safe point; the server and its files go with the demo.

mod load;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use super::args::DemoArgs;
use super::{exit, headless, init_tracing, stop_on_signals};
use crate::console::{self, ConsoleOptions, Theme};
use crate::control::{self, ControlOptions};
use crate::engine::config::{ConnectionConfig, MigrationConfig, Secret};
use crate::engine::pipeline::migrate::{self, Outcome};
use crate::engine::{Command, EngineHandle};
use crate::sandbox::{Flavor, Server, ServerOptions};
use load::LoadCounts;

pub async fn run(a: DemoArgs) -> Result<i32> {
    let flavor: Flavor = a.flavor.parse().map_err(|e: String| eyre!(e)).suggestion("use --flavor mariadb or --flavor mysql")?;
    let use_console = !a.headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let theme = if use_console { Some(Theme::select(a.theme.as_deref())?) } else { None };
    let server = start_sandbox(flavor, a.rows).await?;
    let load_stop = CancellationToken::new();
    let counts = Arc::new(LoadCounts::default());
    let load = tokio::spawn(load::run(server.opts_for("demo"), a.write_rate.max(1), load_stop.clone(), counts.clone()));

    let conn = ConnectionConfig {
        host: "127.0.0.1".into(),
        port: server.port,
        user: "root".into(),
        password: Secret::new(server.root_password().map(str::to_string)),
        socket: None,
        tls: None,
        gtid_domain_id: None,
    };
    let mut cfg = MigrationConfig::new(conn, "demo", "orders", &a.alter);
    cfg.run.execute = true;
    cfg.run.postpone_cut_over = theme.is_some() || a.postpone_cut_over;
    cfg.exact_rowcount = false;
    let socket = a.serve_socket_file.clone().unwrap_or_else(|| std::path::PathBuf::from("/tmp/gh-ost.demo.orders.sock"));
    init_tracing(theme.is_some(), "info");
    let (handle, join) = migrate::start(cfg);
    let signals = stop_on_signals(handle.clone());
    let shutdown = CancellationToken::new();
    let control_task = {
        let (h, sd, p) = (handle.clone(), shutdown.clone(), socket.clone());
        tokio::spawn(async move {
            if let Err(e) = control::serve_with(h, p, None, ControlOptions::new("orders"), sd).await {
                tracing::error!("control socket: {e:#}");
            }
        })
    };
    let printer_stop = CancellationToken::new();
    let printer = watch(&handle, theme, &printer_stop).await?;
    let outcome = join.await.map_err(|e| eyre!("engine: {e}"))?;
    printer_stop.cancel();
    if let Some(p) = printer {
        let _ = p.await;
    }
    signals.abort();
    shutdown.cancel();
    let _ = control_task.await;
    load_stop.cancel();
    if let Ok(Err(e)) = load.await {
        eprintln!("demo: the write load stopped early: {e:#}");
    }
    let code = report(&server, outcome, &counts).await?;
    drop(server);
    Ok(code)
}

/// Starts the private sandbox server and seeds `demo.orders`.
async fn start_sandbox(flavor: Flavor, rows: u64) -> Result<Server> {
    eprintln!("revenant demo: starting a sandbox {flavor} server ...");
    let server = Server::start_with(flavor, ServerOptions { private: true, ..Default::default() })
        .await
        .suggestion("run scripts/install-deps (or scripts/demo) to install the servers")?;
    eprintln!("  {} {} on 127.0.0.1:{}", flavor, server.version(), server.port);
    if let Some(file) = server.password_file() {
        eprintln!("  root's password is in {} (readable by you only; the server goes when the demo ends)", file.display());
    }
    let mut c = server.conn().await?;
    c.query_drop("CREATE DATABASE demo").await?;
    c.query_drop(
        "CREATE TABLE demo.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64), c DATETIME, \
         d DECIMAL(10,2), e TEXT, KEY(a)) ENGINE=InnoDB",
    )
    .await?;
    seed(&mut c, rows).await?;
    Ok(server)
}

/// The console (until it quits or detaches) or status lines on stdout; a detached console approves the cut-over.
async fn watch(
    handle: &EngineHandle,
    theme: Option<Theme>,
    printer_stop: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(theme) = theme else {
        return Ok(Some(tokio::spawn(headless::print_status(handle.status.clone(), false, printer_stop.clone()))));
    };
    let opts = ConsoleOptions { theme, read_only: false, refresh_hz: 2.0, table_name_for_confirm: "orders".into() };
    if console::run_console(handle.clone(), opts).await? != console::ConsoleExit::Detached {
        return Ok(None);
    }
    let _ = handle.send(Command::CutOver).await;
    Ok(Some(tokio::spawn(headless::print_status(handle.status.clone(), false, printer_stop.clone()))))
}

/// Says how the demo ended; the exit code.
async fn report(server: &Server, outcome: Result<Outcome>, counts: &LoadCounts) -> Result<i32> {
    use std::sync::atomic::Ordering::Relaxed;
    let load = format!(
        "{} writes by the load ({} inserts, {} updates, {} deletes; {} refused)",
        counts.writes(),
        counts.inserts.load(Relaxed),
        counts.updates.load(Relaxed),
        counts.deletes.load(Relaxed),
        counts.errors.load(Relaxed)
    );
    Ok(match outcome {
        Ok(Outcome::Done { stall_ms, .. }) => {
            let mut c = server.conn().await?;
            let (n_new,): (u64,) = c.query_first("SELECT COUNT(*) FROM demo.orders").await?.unwrap_or((0,));
            println!(
                "demo: demo.orders migrated ({n_new} rows; {load}; writes stalled {stall_ms} ms at the cut-over). \
                 The original is kept as demo._orders_del. The sandbox server is stopped now."
            );
            exit::OK
        }
        Ok(Outcome::Stopped { state }) => {
            println!("demo: stopped ({}; {load}); the sandbox server and its files are removed", state.reason);
            exit::STOPPED
        }
        Ok(Outcome::DryRun { .. } | Outcome::AlteredInstantly { .. } | Outcome::TestedOnReplica { .. }) => exit::OK,
        Err(e) => {
            eprintln!("demo: the migration failed: {e:?}");
            exit::FAILED
        }
    })
}

/// Seeds `rows` rows by doubling (about 100-byte `e` values).
async fn seed(c: &mut mysql_async::Conn, rows: u64) -> Result<()> {
    let started = Instant::now();
    eprintln!("  seeding {rows} rows ...");
    c.query_drop(
        "INSERT INTO demo.orders (a, b, c, d, e) VALUES (1, 'seed', NOW(), 1.00, REPEAT('x', 100))",
    )
    .await?;
    let mut have: u64 = 1;
    while have < rows {
        let take = (rows - have).min(have);
        c.query_drop(format!(
            "INSERT INTO demo.orders (a, b, c, d, e) SELECT FLOOR(RAND()*1000000), CONCAT('order ', id + {have}), \
             NOW() - INTERVAL FLOOR(RAND()*1000000) SECOND, ROUND(RAND()*10000, 2), REPEAT(CHAR(97 + id % 26), 100) \
             FROM demo.orders ORDER BY id LIMIT {take}"
        ))
        .await
        .wrap_err("seeding the demo table")?;
        have += take;
    }
    c.query_drop("ANALYZE TABLE demo.orders").await?;
    eprintln!("  seeded in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
