//! A copy chunk and the applier must never wait for each other until the server's lock wait timeout. On MariaDB
//! (innodb_autoinc_lock_mode=1) a chunk's INSERT ... SELECT holds the ghost's AUTO-INC table lock to its end; when
//! it waits for a row an applier transaction holds and that transaction waits for the AUTO-INC lock, the server
//! does not detect the cycle. Seen under scripts/bench's writer: both waited the whole 50 s timeout, twice in
//! three runs. Here the server's timeout is raised to 20 minutes, so such a cycle would hold the run far past the
//! test's bound: the migration (two copy workers, two apply writers, a writer inserting at the table's end)
//! must end by itself with identical tables. Both flavours (MySQL's default lock mode takes no table lock).

mod common;

use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use color_eyre::eyre::{bail, ensure, Result};
use common::run::{lines_of, migrate, wait_for_line, Fixture};
use common::{each_flavor, seed, stderr_of, table_checksum, Server};
use mysql_async::prelude::Queryable;

/// Writers on `connections` connections, as fast as they go: an INSERT at the table's end (AUTO_INCREMENT), then
/// an UPDATE of a row by primary key, each autocommit. Returns the stop flag, the op counter and the tasks.
async fn writers(server: &Server, connections: usize, rows: u64) -> Result<(Arc<AtomicBool>, Arc<AtomicU64>, Vec<tokio::task::JoinHandle<Result<()>>>)> {
    let (stop, ops) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for w in 0..connections {
        let mut conn = server.conn_db("lw").await?;
        let (stop, ops) = (stop.clone(), ops.clone());
        tasks.push(tokio::spawn(async move {
            let mut n: u64 = w as u64;
            while !stop.load(Ordering::Relaxed) {
                conn.query_drop(format!("INSERT INTO t (a, b, c, d) VALUES ({n}, 'w', NOW(6), 2.5)")).await?;
                conn.query_drop(format!("UPDATE t SET a = a + 1 WHERE id = {}", 1 + (n * 7919) % rows)).await?;
                ops.fetch_add(2, Ordering::Relaxed);
                n += connections as u64;
            }
            Ok(())
        }));
    }
    Ok((stop, ops, tasks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_and_the_applier_never_wait_for_each_other_until_the_lock_timeout() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server, "lw", 200_000).await?;
        let mut c = server.conn().await?;
        c.query_drop("SET GLOBAL innodb_lock_wait_timeout = 1200").await?;
        let fx = Fixture::new("lockwait", "autoinc", server.port)?;
        std::fs::write(&fx.postpone, b"")?;
        let (stop, counter, tasks) = writers(&server, 3, 200_000).await?;
        let args = ["--alter", "ADD COLUMN f INT", "--copy-threads", "2", "--apply-threads", "2", "--chunk-size", "5000"];
        let mut child = migrate(&server, "lw", &fx, true, &args).spawn()?;
        let rx = lines_of(&mut child)?;
        let ready = wait_for_line(&rx, "\"phase\":\"ready-to-cut-over\"", Duration::from_secs(300));
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await??;
        }
        let ops = counter.load(Ordering::Relaxed);
        if let Err(e) = ready {
            let _ = child.kill();
            bail!("{flavor}: the run did not reach the cut-over ({ops} writer ops): {e:#}\n{}", stderr_of(&mut child));
        }
        std::fs::remove_file(&fx.postpone)?;
        let status = child.wait()?;
        ensure!(status.success(), "{flavor}: {}", stderr_of(&mut child));
        let cols = ["id", "a", "b", "c", "d"];
        let (old, new) = (table_checksum(&mut c, "lw", "_t_del", &cols).await?, table_checksum(&mut c, "lw", "t", &cols).await?);
        ensure!(old == new, "{flavor}: the tables differ after {ops} writer ops");
        eprintln!("[{flavor}] {ops} writer ops, {} rows", old.0);
        Ok(())
    })
    .await;
}
