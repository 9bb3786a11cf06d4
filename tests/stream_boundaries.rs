//! The binlog streamer on real servers: transaction boundaries (SAVEPOINT, XA COMMIT / ROLLBACK / ONE PHASE),
//! positions that never cover a prepared XA transaction, table names under lower_case_table_names=1, DDL and
//! statement-format DML on the original stopping the run, and a stalled connection being replaced.

mod common;
mod move_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use color_eyre::eyre::{bail, eyre, Result};
use common::{each_flavor, exec_all, finish_after_ready, table_checksum, test_config, wait_phase, Flavor, Server, Writer};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate;
use revenant::engine::plan::schema::read_table;
use revenant::engine::stream::binlog::{self, current_position, BinlogPosition, StreamConfig, StreamItem, StreamerState, Transaction, WatchedTable};
use revenant::engine::stream::gtid::{Gtid, GtidSet};
use revenant::engine::stream::queue;
use revenant::engine::Phase;
use revenant::sandbox::ServerOptions;
use tokio_util::sync::CancellationToken;

/// A streamer on `db.t` from `start`, through `port` (the server's, or a proxy's).
struct Streamer {
    rx: queue::QueueRx,
    state: Arc<Mutex<StreamerState>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<()>>,
}

async fn streamer(server: &Server, port: u16, db: &str, start: BinlogPosition) -> Result<Streamer> {
    let mut c = server.conn().await?;
    let info = read_table(&mut c, db, "t").await?.ok_or_else(|| eyre!("{db}.t missing"))?;
    let opts = mysql_async::OptsBuilder::from_opts(server.opts_for(db)).tcp_port(port);
    let cfg = StreamConfig {
        opts: opts.into(),
        mariadb: server.flavor == Flavor::MariaDb,
        client_server_id: 777_000 + u32::from(port % 1000),
        start,
        watched: vec![WatchedTable { database: db.into(), table: "t".into(), columns: info.columns }],
        retry_for: Duration::from_secs(30),
    };
    let (tx, rx) = queue::channel(1000, queue::QUEUE_BYTES);
    let state = Arc::new(Mutex::new(StreamerState::default()));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(binlog::run(cfg, tx, state.clone(), cancel.clone()));
    Ok(Streamer { rx, state, cancel, task })
}

impl Streamer {
    /// Transactions with row changes, until `n` of them arrived or `timeout` passed.
    async fn transactions(&mut self, n: usize, timeout: Duration) -> Vec<Transaction> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(StreamItem::Transaction(t))) if !t.changes.is_empty() => out.push(t),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        out
    }

    async fn stop(self) -> Result<()> {
        self.cancel.cancel();
        self.task.await?
    }
}

async fn seed(server: &Server) -> Result<()> {
    let mut c = server.conn().await?;
    exec_all(&mut c, "CREATE DATABASE app;\nCREATE TABLE app.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64));\n\
        INSERT INTO app.t (a, b) VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four')").await
}

async fn here(server: &Server) -> Result<BinlogPosition> {
    current_position(&mut server.conn().await?, server.flavor == Flavor::MariaDb).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_transaction_streams_whole_with_its_gtid() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server).await?;
        let mut s = streamer(&server, server.port, "app", here(&server).await?).await?;
        let mut c = server.conn().await?;
        exec_all(&mut c, "BEGIN;\nUPDATE app.t SET a = a + 10 WHERE id = 1;\nSAVEPOINT s;\nUPDATE app.t SET a = a + 10 WHERE id = 2;\nCOMMIT").await?;
        let txns = s.transactions(2, Duration::from_secs(4)).await;
        let shape: Vec<(Option<String>, usize)> = txns.iter().map(|t| (t.gtid.as_ref().map(Gtid::to_string), t.changes.len())).collect();
        assert_eq!(txns.len(), 1, "[{flavor}] one transaction, not split at the SAVEPOINT: {shape:?}");
        let g = txns[0].gtid.clone().ok_or_else(|| eyre!("[{flavor}] the transaction lost its GTID"))?;
        assert_eq!(txns[0].changes.len(), 2, "[{flavor}] both updates in it: {shape:?}");
        assert!(GtidSet::parse(flavor == Flavor::MariaDb, &txns[0].position.gtid_set)?.contains_gtid(&g));
        s.stop().await
    })
    .await;
}

/// The position right after a statement (MySQL gtid_executed / MariaDB gtid_binlog_pos), as a set.
async fn executed(server: &Server) -> Result<GtidSet> {
    let p = here(server).await?;
    GtidSet::parse(server.flavor == Flavor::MariaDb, &p.gtid_set)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_xa_is_never_covered_and_a_restart_from_the_position_still_gets_its_rows() {
    each_flavor(|flavor| async move {
        let mariadb = flavor == Flavor::MariaDb;
        let server = Server::start(flavor).await?;
        seed(&server).await?;
        let mut s = streamer(&server, server.port, "app", here(&server).await?).await?;
        let before = executed(&server).await?;
        let mut xa = server.conn().await?;
        exec_all(&mut xa, "XA START 'p1';\nUPDATE app.t SET a = 100 WHERE id = 3;\nXA END 'p1';\nXA PREPARE 'p1'").await?;
        let after_prepare = executed(&server).await?;
        let mut c = server.conn().await?;
        c.query_drop("UPDATE app.t SET a = 200 WHERE id = 4").await?;
        let txns = s.transactions(1, Duration::from_secs(4)).await;
        assert_eq!(txns.len(), 1, "[{flavor}] the plain update arrives while the XA is prepared");
        let held = txns[0].position.clone();
        let held_set = GtidSet::parse(mariadb, &held.gtid_set)?;
        assert!(!held_set.contains(&after_prepare), "[{flavor}] position {} covers the pending PREPARE ({after_prepare})", held.gtid_set);
        assert!(held_set.contains(&before), "[{flavor}] position {} lost history", held.gtid_set);
        s.stop().await?;
        // As after a crash with that checkpoint: a new stream from the held position, then the XA commits.
        let mut again = streamer(&server, server.port, "app", held).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        xa.query_drop("XA COMMIT 'p1'").await?;
        let txns = again.transactions(3, Duration::from_secs(4)).await;
        let xa_rows: Vec<&Transaction> = txns.iter().filter(|t| t.changes.iter().any(|ch| format!("{:?}", ch.after).contains("100"))).collect();
        assert_eq!(xa_rows.len(), 1, "[{flavor}] the XA's row arrives once, at its commit: {:?}", txns.iter().map(|t| &t.gtid).collect::<Vec<_>>());
        let done = GtidSet::parse(mariadb, &xa_rows[0].position.gtid_set)?;
        assert!(done.contains(&executed(&server).await?), "[{flavor}] after the commit the position covers everything");
        again.stop().await
    })
    .await;
}

/// Runs XA transactions on app.t until stopped: commit, rollback and one-phase commit in turn.
fn xa_writer(server: &Server, stop: Arc<AtomicU64>) -> tokio::task::JoinHandle<Result<u64>> {
    let opts = server.opts_for("app");
    tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(opts).await?;
        let mut n = 0u64;
        while stop.load(Ordering::Relaxed) == 0 {
            let x = format!("'xa{n}'");
            let id = 1 + n % 40;
            c.query_drop(format!("XA START {x}")).await?;
            c.query_drop(format!("UPDATE app.t SET a = a + 1000, b = 'xa {n}' WHERE id = {id}")).await?;
            c.query_drop(format!("INSERT INTO app.t (a, b) VALUES ({n}, 'xa insert {n}')")).await?;
            c.query_drop(format!("XA END {x}")).await?;
            match n % 3 {
                0 | 1 => {
                    c.query_drop(format!("XA PREPARE {x}")).await?;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let end = if n.is_multiple_of(3) { "COMMIT" } else { "ROLLBACK" };
                    c.query_drop(format!("XA {end} {x}")).await?;
                }
                _ => c.query_drop(format!("XA COMMIT {x} ONE PHASE")).await?,
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(n)
    })
}

/// Waits until the migration is past Setup (its binlog start position read), in whatever phase.
async fn past_setup(handle: &revenant::engine::EngineHandle, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let phase = handle.status.borrow().phase;
        match phase {
            Some(Phase::Copy | Phase::Catchup | Phase::ReadyToCutOver) => return Ok(()),
            Some(p) if p.is_terminal() => bail!("the migration ended in {p:?}"),
            _ => {}
        }
        if tokio::time::Instant::now() > deadline {
            bail!("still in {phase:?} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xa_commit_and_rollback_under_a_writer_leave_identical_tables() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        common::seed_app_table(&server, "t", 3000).await?;
        let writer = Writer::start(&server, "app", "t", &["a", "b"], true).await?;
        let mut cfg = test_config(&server, "app", "t", "ADD COLUMN f INT NOT NULL DEFAULT 7");
        cfg.run.chunk_size = 200;
        let (handle, join) = migrate::start(cfg);
        // XA transactions start once the start position was read: one prepared before it cannot be followed
        // (the assembler stops the run for it, see what_cannot_be_read_or_placed_stops_the_run).
        let copying = past_setup(&handle, Duration::from_secs(60)).await;
        let stop = Arc::new(AtomicU64::new(0));
        let xa = xa_writer(&server, stop.clone());
        let ready = match copying {
            Ok(()) => wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await,
            Err(e) => Err(e),
        };
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(1, Ordering::Relaxed);
        let xas = xa.await??;
        writer.stop().await?;
        finish_after_ready(&handle, join, ready).await?;
        assert!(xas >= 6, "[{flavor}] only {xas} XA transactions ran");
        let mut c = server.conn().await?;
        let old = table_checksum(&mut c, "app", "_t_del", &["id", "a", "b"]).await?;
        let new = table_checksum(&mut c, "app", "t", &["id", "a", "b"]).await?;
        assert_eq!(old, new, "[{flavor}] rows differ after {xas} XA transactions");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_case_table_names_match_under_lower_case_table_names() {
    each_flavor(|flavor| async move {
        // MySQL fixes it at --initialize: the sandbox then initialises this server's own data directory.
        let opts = ServerOptions { extra_args: vec!["--lower-case-table-names=1".into()], ..Default::default() };
        let server = Server::start_with(flavor, opts).await?;
        let mut c = server.conn().await?;
        let lower: Option<u64> = c.query_first("SELECT @@lower_case_table_names").await?;
        assert_eq!(lower, Some(1), "[{flavor}] the server runs with lower_case_table_names={lower:?}");
        common::seed_app_table(&server, "Orders", 2000).await?;
        let writer = Writer::start(&server, "app", "Orders", &["a", "b"], true).await?;
        let mut cfg = test_config(&server, "app", "Orders", "ADD COLUMN f INT NOT NULL DEFAULT 7");
        cfg.run.retry_for = Duration::from_secs(5);
        let (handle, join) = migrate::start(cfg);
        let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(60)).await;
        let ops = writer.stop().await?;
        // A migration that never gets ready (the row events dropped by name) would be awaited for ever.
        tokio::time::timeout(Duration::from_secs(90), finish_after_ready(&handle, join, ready))
            .await
            .map_err(|_| eyre!("[{flavor}] the migration neither got ready nor ended: {:?}", handle.status.borrow().message))??;
        let old = table_checksum(&mut c, "app", "_orders_del", &["id", "a", "b"]).await?;
        let new = table_checksum(&mut c, "app", "orders", &["id", "a", "b"]).await?;
        assert_eq!(old, new, "[{flavor}] rows differ ({ops} writer ops)");
        Ok(())
    })
    .await;
}

/// Starts a migration of app.t that waits at the postponed cut-over, runs `sql` on the original, and returns the
/// migration's error (it must stop).
async fn run_and_change_original(server: &Server, sql: &str) -> Result<String> {
    common::seed_app_table(server, "t", 500).await?;
    let (handle, join) = migrate::start(test_config(server, "app", "t", "ADD COLUMN f INT NOT NULL DEFAULT 7"));
    wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(60)).await?;
    let mut c = server.conn().await?;
    exec_all(&mut c, sql).await?;
    match tokio::time::timeout(Duration::from_secs(20), join).await {
        Err(_) => bail!("the migration went on after: {sql}"),
        Ok(r) => match r? {
            Ok(outcome) => bail!("the migration ended {outcome:?} after: {sql}"),
            Err(e) => Ok(format!("{e:#}")),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_behind_a_comment_on_the_original_stops_the_run() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let err = run_and_change_original(&server, "/* app deploy */ ALTER TABLE app.t ADD COLUMN z INT").await?;
        assert!(err.contains("was changed during the run") && err.contains("ALTER TABLE"), "[{flavor}] {err}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_format_dml_on_the_original_stops_the_run() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let sql = "SET SESSION binlog_format = 'STATEMENT';\nUPDATE app.t SET a = a + 1 WHERE id = 1";
        let err = run_and_change_original(&server, sql).await?;
        assert!(err.contains("binlog_format=ROW") && err.contains("app.t"), "[{flavor}] {err}");
        Ok(())
    })
    .await;
}

/// A TCP proxy in front of the server whose `stall()` makes every connection open at that moment stop forwarding
/// (both ways, sockets kept open: a half-open connection as a dead network leaves it); later connections work.
struct Proxy {
    port: u16,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: u16) -> Result<Proxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let generation = Arc::new(AtomicU64::new(0));
        let gen = generation.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else { continue };
                let mine = gen.load(Ordering::SeqCst);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, gen.clone(), mine));
                tokio::spawn(pump(sr, cw, gen.clone(), mine));
            }
        });
        Ok(Proxy { port, generation })
    }

    fn stall(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, gen: Arc<AtomicU64>, mine: u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(Duration::from_millis(100), from.read(&mut buf)).await {
            Err(_) => 0,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        if gen.load(Ordering::SeqCst) != mine {
            // Stalled: hold both sockets open and forward nothing, forever.
            let _keep = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if n > 0 && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_binlog_connection_is_replaced_from_the_last_position() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server).await?;
        let proxy = Proxy::start(server.port).await?;
        let mut s = streamer(&server, proxy.port, "app", here(&server).await?).await?;
        let mut c = server.conn().await?;
        c.query_drop("UPDATE app.t SET a = 11 WHERE id = 1").await?;
        assert_eq!(s.transactions(1, Duration::from_secs(5)).await.len(), 1, "[{flavor}] through the proxy");
        proxy.stall();
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.query_drop("UPDATE app.t SET a = 12 WHERE id = 2").await?;
        let started = std::time::Instant::now();
        let txns = s.transactions(1, Duration::from_secs(20)).await;
        assert_eq!(txns.len(), 1, "[{flavor}] nothing arrived within 20 s of the stall");
        let waited = started.elapsed();
        let last_error = s.state.lock().map(|st| st.last_error.clone()).unwrap_or_default().unwrap_or_default();
        assert!(last_error.contains("no binlog event and no heartbeat"), "[{flavor}] {last_error}");
        eprintln!("[{flavor}] stalled stream replaced; the change arrived {waited:?} after it was written");
        s.stop().await
    })
    .await;
}

/// The migration binary on app.t (status JSON on stdout), cut-over postponed by `flag` when given.
#[cfg(feature = "failpoints")]
fn revenant(server: &Server, dir: &std::path::Path, flag: Option<&std::path::Path>, extra: &[&str]) -> std::process::Command {
    let mut p = std::process::Command::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--database", "app"])
        .args(["--table", "t", "--alter", "ADD COLUMN f INT NOT NULL DEFAULT 1", "--execute", "--status-json"])
        .args(["--chunk-size", "200", "--dml-batch-size", "1", "--default-retries", "1"])
        .arg(format!("--serve-socket-file={}", dir.join("ctl.sock").display()))
        .args(extra)
        .env_remove("REVENANT_FAILPOINTS")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(f) = flag {
        p.arg(format!("--postpone-cut-over-flag-file={}", f.display()));
    }
    p
}

/// Waits for a status line containing `needle` on the child's stdout (drained on a thread).
#[cfg(feature = "failpoints")]
fn wait_for_status(child: &mut std::process::Child, needle: &str, timeout: Duration) -> Result<()> {
    common::run::wait_for_line(&common::run::lines_of(child)?, needle, timeout)
}

/// Issue 13.1's case: a SAVEPOINT inside a transaction, --dml-batch-size 1, the process killed before the commit
/// of the second row batch, resumed: the rows must match. (When the old streamer split the transaction at the
/// SAVEPOINT and the halves fell into two batches, the kill lost the second half; whether they did depended on
/// timing, which is why a_savepoint_transaction_streams_whole_with_its_gtid checks the split itself.)
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_transaction_killed_between_row_batches_resumes_exactly() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        common::seed_app_table(&server, "t", 2000).await?;
        let dir = std::env::temp_dir().join(format!("rvn-savepoint-{}-{}", std::process::id(), server.port));
        std::fs::create_dir_all(&dir)?;
        let flag = dir.join("postpone.flag");
        let mut cmd = revenant(&server, &dir, Some(&flag), &[]);
        cmd.env("REVENANT_FAILPOINTS", "apply-rows-before-commit=exit@2");
        let mut child = cmd.spawn()?;
        wait_for_status(&mut child, "\"phase\":\"ready-to-cut-over\"", Duration::from_secs(120))?;
        let mut c = server.conn().await?;
        exec_all(&mut c, "BEGIN;\nUPDATE app.t SET a = a + 1000 WHERE id = 1;\nSAVEPOINT s;\nUPDATE app.t SET a = a + 1000 WHERE id = 2;\nCOMMIT").await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.query_drop("UPDATE app.t SET a = a + 1000 WHERE id = 3").await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                bail!("[{flavor}] the fail point never killed the run");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(!status.success(), "[{flavor}] the run ended cleanly instead of at the fail point");
        let _ = std::fs::remove_file(&flag);
        let out = revenant(&server, &dir, None, &["--resume"]).output()?;
        assert!(out.status.success(), "[{flavor}] resume failed: {}", String::from_utf8_lossy(&out.stderr));
        let old = table_checksum(&mut c, "app", "_t_del", &["id", "a", "b"]).await?;
        let new = table_checksum(&mut c, "app", "t", &["id", "a", "b"]).await?;
        assert_eq!(old, new, "[{flavor}] rows differ after the kill between row batches and the resume");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}

/// MySQL's compressed transactions (binlog_transaction_compression=ON) are read through and applied; MariaDB's
/// compressed events (log_bin_compress=ON), which the client cannot read, stop the run with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_binlog_events_are_applied_or_stop_the_run() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        common::seed_app_table(&server, "t", 500).await?;
        let (handle, join) = migrate::start(test_config(&server, "app", "t", "ADD COLUMN f INT NOT NULL DEFAULT 7"));
        let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(60)).await;
        let mut c = server.conn().await?;
        if flavor == Flavor::MySql {
            exec_all(&mut c, "SET SESSION binlog_transaction_compression = ON;\nUPDATE app.t SET a = a + 5 WHERE id <= 50;\n\
                DELETE FROM app.t WHERE id = 60;\nINSERT INTO app.t (a, b) VALUES (7, 'compressed')").await?;
            let zstd: Option<u64> = c.query_first("SELECT SUM(TRANSACTION_COUNTER) FROM performance_schema.binary_log_transaction_compression_stats \
                WHERE LOG_TYPE = 'BINARY' AND COMPRESSION_TYPE = 'ZSTD'").await?;
            assert!(zstd.unwrap_or(0) >= 3, "[{flavor}] the transactions were not compressed ({zstd:?})");
            tokio::time::sleep(Duration::from_millis(1500)).await;
            finish_after_ready(&handle, join, ready).await?;
            let old = table_checksum(&mut c, "app", "_t_del", &["id", "a", "b"]).await?;
            let new = table_checksum(&mut c, "app", "t", &["id", "a", "b"]).await?;
            assert_eq!(old, new, "[{flavor}] rows differ after compressed transactions");
            return Ok(());
        }
        ready?;
        exec_all(&mut c, "SET GLOBAL log_bin_compress_min_len = 10;\nSET GLOBAL log_bin_compress = ON").await?;
        let mut w = server.conn().await?;
        w.query_drop("UPDATE app.t SET b = REPEAT('x', 60) WHERE id <= 20").await?;
        let r = tokio::time::timeout(Duration::from_secs(20), join).await.map_err(|_| eyre!("[{flavor}] the run went on"))??;
        let err = format!("{:#}", r.err().ok_or_else(|| eyre!("[{flavor}] the migration succeeded"))?);
        assert!(err.contains("compressed rows event") && err.contains("log_bin_compress"), "[{flavor}] {err}");
        Ok(())
    })
    .await;
}

/// MySQL's partial JSON updates (binlog_row_value_options=PARTIAL_JSON) carry a diff, not the value: the run stops
/// at once with the reason (it used to retry the same event for the whole retry window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_json_update_stops_the_run_at_once() {
    each_flavor(|flavor| async move {
        if flavor == Flavor::MariaDb {
            eprintln!("[mariadb] skipped: MariaDB has no partial JSON row events");
            return Ok(());
        }
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(&mut c, "CREATE DATABASE app;\nCREATE TABLE app.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, j JSON);\n\
            INSERT INTO app.t (a, j) VALUES (1, '{\"k\": 1, \"pad\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}'), (2, '{\"k\": 2}')").await?;
        let mut cfg = test_config(&server, "app", "t", "ADD COLUMN f INT NOT NULL DEFAULT 7");
        cfg.run.retry_for = Duration::from_secs(60);
        let (handle, join) = migrate::start(cfg);
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(60)).await?;
        exec_all(&mut c, "SET SESSION binlog_row_value_options = 'PARTIAL_JSON';\nUPDATE app.t SET j = JSON_SET(j, '$.k', 5) WHERE id = 1").await?;
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(20), join).await.map_err(|_| eyre!("[{flavor}] the run went on"))??;
        let err = format!("{:#}", r.err().ok_or_else(|| eyre!("[{flavor}] the migration succeeded"))?);
        assert!(err.contains("partial JSON") && err.contains("binlog_row_value_options"), "[{flavor}] {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "[{flavor}] stopped only after {:?}", started.elapsed());
        Ok(())
    })
    .await;
}

/// Issue 13.3 for move-tables: `--tables Orders,Items` on servers with lower_case_table_names=1 (the tables are
/// stored as orders/items): the row events must be applied, not dropped by name, before the drain completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_tables_named_in_other_case_under_lower_case_table_names() {
    each_flavor(|flavor| async move {
        let opts = ServerOptions { extra_args: vec!["--lower-case-table-names=1".into()], ..Default::default() };
        let source = Server::start_with(flavor, opts.clone()).await?;
        let target = Server::start_with(flavor, opts).await?;
        move_support::seed(&source, &target, "shop", 800).await?;
        let w1 = move_support::AppWriter::start(&source, "shop", "orders", 5).await?;
        let w2 = move_support::AppWriter::start(&source, "shop", "items", 9).await?;
        let mut cfg = move_support::move_config(&source, &target, "shop");
        cfg.tables = vec!["Orders".into(), "Items".into()];
        let (handle, join) = revenant::engine::pipeline::move_tables::start(cfg);
        let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(90)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (ok1, _) = w1.stop().await?;
        let (ok2, _) = w2.stop().await?;
        ready?;
        let applied = handle.snapshot().binlog.events_applied;
        assert!(applied > 0, "[{flavor}] no row event applied ({ok1} + {ok2} writes on the source)");
        let reply = handle.send(revenant::engine::Command::CutOver).await;
        assert!(reply.ok, "[{flavor}] {}", reply.message);
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        assert!(matches!(outcome, revenant::engine::pipeline::move_tables::MoveOutcome::Done { .. }), "[{flavor}] {outcome:?}");
        move_support::verify_moved(&source, &target, "shop").await?;
        Ok(())
    })
    .await;
}
