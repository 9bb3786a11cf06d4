//! Figures for docs/benchmarks.md (ignored by default; scripts/bench-verify runs it): the verification's time as
//! a share of the copy's on a seeded table (BENCH_VERIFY_ROWS, 1,000,000), and the verification lock's length
//! against the cut-over's stall. One flavour per run (REVENANT_TEST_FLAVORS). BENCH_VERIFY_TABLE picks the table:
//! `items` (the harness's narrow `id, a, b`, the default) or `bench` (scripts/bench's `bench.t`: the same columns,
//! key and seed formulas, about 234 MiB for a million rows). BENCH_VERIFY_BUFFER_POOL sets the servers'
//! innodb_buffer_pool_size (the harness leaves the default, 128 MiB). Measurement only.

mod common;

use std::time::Duration;

use color_eyre::eyre::ensure;
use common::{each_flavor, seed_app_table, test_config, Server};
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::Phase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-verify"]
async fn verification_share_of_the_copy() {
    each_flavor(|flavor| async move {
        let rows: u32 = std::env::var("BENCH_VERIFY_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        // BENCH_VERIFY_BUFFER_POOL (e.g. 1G): the servers' innodb_buffer_pool_size; default the harness's (128 MiB).
        let server = match std::env::var("BENCH_VERIFY_BUFFER_POOL") {
            Ok(size) => {
                let opts = revenant::sandbox::ServerOptions { extra_args: vec![format!("--innodb-buffer-pool-size={size}")], ..Default::default() };
                Server::start_with(flavor, opts).await?
            }
            Err(_) => Server::start(flavor).await?,
        };
        let table = std::env::var("BENCH_VERIFY_TABLE").unwrap_or_else(|_| "items".into());
        match table.as_str() {
            "bench" => seed_bench_table(&server, rows).await?,
            _ => seed_app_table(&server, "items", rows).await?,
        }
        let mut cfg = test_config(&server, "app", "items", "ADD COLUMN f INT");
        cfg.run.chunk_size = 1000;
        cfg.run.postpone_cut_over = false;
        let (handle, join) = migrate::start(cfg);
        let outcome = tokio::time::timeout(Duration::from_secs(7200), join).await???;
        let Outcome::Done { stall_ms, .. } = outcome else { color_eyre::eyre::bail!("outcome {outcome:?}") };
        let s = handle.snapshot();
        let secs = |p: Phase| s.phase_seconds.iter().filter(|(q, _)| *q == p).map(|(_, t)| t).sum::<f64>();
        let (copy, verify) = (secs(Phase::Copy), secs(Phase::Verify));
        ensure!(verify > 0.0, "no verify phase: {:?}", s.phase_seconds);
        println!(
            "BENCH {flavor} table={table} rows={rows} copy_s={copy:.2} verify_s={verify:.2} share={:.1}% verify_lock_ms={} cutover_stall_ms={stall_ms} result={:?}",
            100.0 * verify / copy.max(0.001),
            s.verify.last_lock_ms.unwrap_or(0),
            s.verify.last_result
        );
        Ok(())
    })
    .await;
}

/// scripts/bench's `bench.t` as `app.items`: its columns, its secondary key and its seed formulas (numbers from a
/// 0..99,999 table, strings from SHA2), in steps of 100,000 rows.
async fn seed_bench_table(server: &Server, rows: u32) -> color_eyre::Result<()> {
    use mysql_async::prelude::Queryable;
    let mut c = server.conn().await?;
    c.query_drop("CREATE DATABASE IF NOT EXISTS app").await?;
    c.query_drop(
        "CREATE TABLE app.items (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64), c DATETIME, d DECIMAL(10,2), e TEXT, KEY (a)) \
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )
    .await?;
    let digits = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL \
                  SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
    c.query_drop("CREATE TABLE app.n (i INT PRIMARY KEY) ENGINE=InnoDB").await?;
    c.query_drop(format!(
        "INSERT INTO app.n SELECT d1.d + 10 * d2.d + 100 * d3.d + 1000 * d4.d + 10000 * d5.d FROM {digits} d1, {digits} d2, {digits} d3, {digits} d4, {digits} d5"
    ))
    .await?;
    let mut lo = 1u32;
    while lo <= rows {
        let hi = (lo + 99_999).min(rows);
        c.query_drop(format!(
            "INSERT INTO app.items (id, a, b, c, d, e) \
             SELECT seq, (seq * 2654435761) % 1000003, CONCAT(LEFT(SHA2(seq, 256), 32), LEFT(SHA2(seq + 1, 256), seq % 33)), \
                    '2020-01-01 00:00:00' + INTERVAL ((seq * 7919) % 126144000) SECOND, ((seq * 104729) % 10000000) / 100, \
                    CONCAT(SHA2(seq * 3, 256), LEFT(SHA2(seq * 5, 256), 32), LPAD(seq % 10000, 4, '0')) \
             FROM (SELECT {lo} + i AS seq FROM app.n WHERE i <= {}) s ORDER BY seq",
            hi - lo
        ))
        .await?;
        lo = hi + 1;
    }
    c.query_drop("DROP TABLE app.n").await?;
    c.query_drop("ANALYZE TABLE app.items").await?;
    Ok(())
}
