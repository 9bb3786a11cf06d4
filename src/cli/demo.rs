//! `revenant demo`: a sandbox server (the test harness's code), a seeded table, a writer at a modest rate, and a
//! migration in the console with the cut-over postponed until the user presses `C`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use super::args::DemoArgs;
use super::{exit, headless, init_tracing};
use crate::console::{self, ConsoleOptions, Theme};
use crate::control::{self, ControlOptions};
use crate::engine::config::{ConnectionConfig, MigrationConfig, Secret};
use crate::engine::pipeline::migrate::{self, Outcome};
use crate::engine::{Command, Phase};
use crate::sandbox::{Flavor, Server};

pub async fn run(a: DemoArgs) -> Result<i32> {
    let flavor: Flavor = a.flavor.parse().map_err(|e: String| eyre!(e)).suggestion("use --flavor mariadb or --flavor mysql")?;
    let use_console = !a.headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let theme = if use_console { Some(Theme::select(a.theme.as_deref())?) } else { None };
    eprintln!("revenant demo: starting a sandbox {flavor} server ...");
    let server = Server::start(flavor).await.suggestion("run scripts/install-deps (or scripts/demo) to install the servers")?;
    eprintln!("  {} {} on 127.0.0.1:{}", flavor, server.version(), server.port);
    let mut c = server.conn().await?;
    c.query_drop("CREATE DATABASE demo").await?;
    c.query_drop(
        "CREATE TABLE demo.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64), c DATETIME, \
         d DECIMAL(10,2), e TEXT, KEY(a)) ENGINE=InnoDB",
    )
    .await?;
    seed(&mut c, a.rows).await?;
    let stop_writer = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_load(server.opts_for("demo"), a.write_rate.max(1), stop_writer.clone(), writes.clone()));

    let conn = ConnectionConfig { host: "127.0.0.1".into(), port: server.port, user: "root".into(), password: Secret::new(None), socket: None };
    let mut cfg = MigrationConfig::new(conn, "demo", "orders", &a.alter);
    cfg.execute = true;
    cfg.postpone_cut_over = theme.is_some();
    cfg.exact_rowcount = false;
    let socket = a.serve_socket_file.clone().unwrap_or_else(|| std::path::PathBuf::from("/tmp/gh-ost.demo.orders.sock"));
    init_tracing(theme.is_some(), "info");
    let (handle, join) = migrate::start(cfg);
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
    let printer = match theme {
        Some(theme) => {
            let opts = ConsoleOptions { theme, read_only: false, refresh_hz: 2.0, table_name_for_confirm: "orders".into() };
            let exit = console::run_console(handle.clone(), opts).await?;
            if exit == console::ConsoleExit::Detached {
                let _ = handle.send(Command::CutOver).await;
                Some(tokio::spawn(headless::print_status(handle.status.clone(), false, printer_stop.clone())))
            } else {
                None
            }
        }
        None => Some(tokio::spawn(headless::print_status(handle.status.clone(), false, printer_stop.clone()))),
    };
    let outcome = join.await.map_err(|e| eyre!("engine: {e}"))?;
    printer_stop.cancel();
    if let Some(p) = printer {
        let _ = p.await;
    }
    shutdown.cancel();
    let _ = control_task.await;
    stop_writer.store(true, Ordering::Relaxed);
    let _ = writer.await;
    let code = match outcome {
        Ok(Outcome::Done { stall_ms, .. }) => {
            let mut c = server.conn().await?;
            let (n_new,): (u64,) = c.query_first("SELECT COUNT(*) FROM demo.orders").await?.unwrap_or((0,));
            println!(
                "demo: demo.orders migrated ({n_new} rows; {} writes by the load meanwhile; writes stalled {stall_ms} ms at the cut-over). \
                 The original is kept as demo._orders_del. The sandbox server is stopped now.",
                writes.load(Ordering::Relaxed)
            );
            exit::OK
        }
        Ok(Outcome::Stopped { state }) => {
            println!("demo: stopped ({}); the sandbox is discarded", state.reason);
            exit::STOPPED
        }
        Ok(Outcome::DryRun { .. }) => exit::OK,
        Err(e) => {
            eprintln!("demo: the migration failed: {e:?}");
            exit::FAILED
        }
    };
    let _ = handle.snapshot().phase == Some(Phase::Done);
    drop(server);
    Ok(code)
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

/// A writer at `rate` writes per second: inserts, updates and deletes.
async fn write_load(opts: mysql_async::Opts, rate: u64, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) -> Result<()> {
    let mut c = mysql_async::Conn::new(opts).await?;
    let period = Duration::from_micros(1_000_000 / rate);
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let sql = match n % 4 {
            0 | 1 => "INSERT INTO orders (a, b, c, d, e) VALUES (FLOOR(RAND()*1000000), 'live', NOW(), RAND()*100, REPEAT('w', 100))".to_string(),
            2 => "UPDATE orders SET a = a + 1, d = d + 0.01 WHERE id = (SELECT id FROM (SELECT MAX(id) - FLOOR(RAND()*1000) AS id FROM orders) x)".to_string(),
            _ => "DELETE FROM orders WHERE id = (SELECT id FROM (SELECT MIN(id) + FLOOR(RAND()*1000) AS id FROM orders) x)".to_string(),
        };
        // A write that fails during the cut-over is retried by nobody: the demo only shows the load.
        if c.query_drop(sql).await.is_ok() {
            count.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(period).await;
    }
    Ok(())
}
