//! The row copy reads the original table without locks (READ COMMITTED) and relies on the delete log: a row the
//! application deletes while its chunk is being copied must not come back in the ghost table. A writer deletes and
//! re-inserts random rows as fast as it can through the whole copy; the oracle compares `_t_del` with the new
//! table over every column, and the trace shows that chunks did find and remove such rows (so the race happened).
//! Once with one copy worker and once with two (`--copy-threads 2`: each worker keeps its own delete-log cursor).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::Result;
use common::{each_flavor, exec_all, finish_after_ready, table_checksum, test_config, wait_phase, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate;
use revenant::engine::Phase;

const ROWS: u64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_deleted_during_their_chunk_stay_deleted() {
    let trace = std::env::temp_dir().join(format!("revenant-lockless-trace-{}", std::process::id()));
    // This test binary holds this one test: nothing else traces into the file.
    std::env::set_var("REVENANT_TRACE_FILE", &trace);
    each_flavor(|flavor| {
        let trace = trace.clone();
        async move {
            // Rows removed again by the delete check over both runs: the race is timing-dependent, and one run of
            // the two may miss it (seen once in CI: 0 with one worker, tables identical).
            let mut raced = 0u64;
            for threads in [1usize, 2] {
                let db = format!("app{threads}");
                let _ = std::fs::remove_file(&trace);
                let server = Server::start(flavor).await?;
                let mut c = server.conn().await?;
                exec_all(&mut c, &format!("CREATE DATABASE {db};\nCREATE TABLE {db}.del (id BIGINT PRIMARY KEY, a INT, pad CHAR(200))")).await?;
                // The recursion limit is named differently on each flavour; one of the two fails.
                c.query_drop("SET SESSION cte_max_recursion_depth = 1000000").await.ok();
                c.query_drop("SET SESSION max_recursive_iterations = 1000000").await.ok();
                c.query_drop(format!(
                    "INSERT INTO {db}.del (id, a, pad) WITH RECURSIVE s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {ROWS}) \
                     SELECT n, n % 1000, CONCAT('seed ', n) FROM s"
                ))
                .await?;

                // Deletes (70%) of random rows a little ahead of the copy (the ghost's highest committed id is where the
                // chunk in flight starts), and re-inserts (30%) of rows deleted before; no pause.
                let stop = Arc::new(AtomicBool::new(false));
                let (deletes, reinserts) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
                let mut wc = server.conn_db(&db).await?;
                let (s, d, r) = (stop.clone(), deletes.clone(), reinserts.clone());
                let writer = tokio::spawn(async move {
                    let mut seed: u64 = 0x2545F4914F6CDD1D;
                    let mut front = 0u64;
                    let mut deleted: Vec<u64> = Vec::new();
                    let mut n = 0u64;
                    while !s.load(Ordering::Relaxed) {
                        if n % 20 == 0 {
                            let max: Result<Option<Option<u64>>, _> = wc.query_first("SELECT MAX(id) FROM _del_gho").await;
                            front = max.ok().flatten().flatten().unwrap_or(0);
                        }
                        n += 1;
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        if (seed >> 32) % 10 < 7 || deleted.is_empty() {
                            let id = 1 + (front + (seed >> 8) % 20_000) % ROWS;
                            wc.query_drop(format!("DELETE FROM del WHERE id = {id}")).await?;
                            if wc.affected_rows() > 0 {
                                d.fetch_add(1, Ordering::Relaxed);
                                deleted.push(id);
                            }
                        } else {
                            let id = deleted.swap_remove(((seed >> 8) % deleted.len() as u64) as usize);
                            wc.query_drop(format!("INSERT IGNORE INTO del (id, a, pad) VALUES ({id}, -1, 'again')")).await?;
                            r.fetch_add(wc.affected_rows(), Ordering::Relaxed);
                        }
                    }
                    Ok::<_, color_eyre::eyre::Report>(())
                });
                tokio::time::sleep(Duration::from_millis(200)).await;

                let mut cfg = test_config(&server, &db, "del", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
                cfg.copy_threads = Some(threads);
                let (handle, join) = migrate::start(cfg);
                let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(300)).await;
                stop.store(true, Ordering::Relaxed);
                writer.await??;
                finish_after_ready(&handle, join, ready).await?;

                let cols = ["id", "a", "pad"];
                let old = table_checksum(&mut c, &db, "_del_del", &cols).await?;
                let new = table_checksum(&mut c, &db, "del", &cols).await?;
                let (deleted, reinserted) = (deletes.load(Ordering::Relaxed), reinserts.load(Ordering::Relaxed));
                let lines = std::fs::read_to_string(&trace).unwrap_or_default();
                let removed: u64 = lines
                    .lines()
                    .filter(|l| l.split_whitespace().nth(1).is_some_and(|k| k.starts_with("chunk-recheck")))
                    .filter_map(|l| l.rsplit("removed=").next().and_then(|n| n.trim().parse::<u64>().ok()))
                    .sum();
                eprintln!(
                    "[{flavor}, {threads} copy workers] {deleted} rows deleted, {reinserted} re-inserted during the run; {removed} copied rows removed again by the delete check; {} rows at the end",
                    old.0
                );
                assert_eq!(old, new, "_del_del and del differ after the migration ({deleted} deletes, {reinserted} re-inserts)");
                assert!(deleted > 200, "the writer deleted only {deleted} rows: the test proves little");
                raced += removed;
                let second_slice = lines.lines().any(|l| l.split_whitespace().nth(1) == Some("chunk-commit#2"));
                assert_eq!(second_slice, threads > 1, "chunks of a second slice committed exactly when two workers copied");
            }
            if cfg!(feature = "failpoints") {
                assert!(raced > 0, "no chunk ever removed a row deleted under it: the race this test is about never happened");
            }
            Ok(())
        }
    })
    .await;
}
