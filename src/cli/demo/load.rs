//! The demo's write load: inserts, updates and deletes by random key at a steady rate over a few connections,
//! as an application would write, so the console shows events applied, backlog and lag moving.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

/// Connections the load writes over (each at its share of the rate).
const WRITERS: u64 = 4;

/// What the load did.
#[derive(Debug, Default)]
pub struct LoadCounts {
    pub inserts: AtomicU64,
    pub updates: AtomicU64,
    pub deletes: AtomicU64,
    /// Writes the server refused (e.g. while the cut-over holds its lock past the session's lock wait timeout).
    pub errors: AtomicU64,
}

impl LoadCounts {
    pub fn writes(&self) -> u64 {
        self.inserts.load(Ordering::Relaxed) + self.updates.load(Ordering::Relaxed) + self.deletes.load(Ordering::Relaxed)
    }
}

/// Writes `rate` statements per second to `orders` until `stop`: half inserts, a third updates, the rest deletes,
/// updates and deletes by a random id between the table's lowest id and its highest at the start.
pub async fn run(opts: mysql_async::Opts, rate: u64, stop: CancellationToken, counts: Arc<LoadCounts>) -> Result<()> {
    let mut c = crate::engine::connection::connect(opts.clone()).await.wrap_err("connecting the demo's write load")?;
    let (lo, hi): (u64, u64) = c.query_first("SELECT COALESCE(MIN(id), 1), COALESCE(MAX(id), 1) FROM orders").await?.unwrap_or((1, 1));
    drop(c);
    let per_writer = (rate / WRITERS).max(1);
    let mut writers = Vec::new();
    for n in 0..WRITERS {
        let (opts, stop, counts) = (opts.clone(), stop.clone(), counts.clone());
        writers.push(tokio::spawn(async move { writer(opts, per_writer, (lo, hi), n, stop, counts).await }));
    }
    for w in writers {
        w.await.wrap_err("a demo writer panicked")??;
    }
    Ok(())
}

/// One connection writing `rate` statements per second.
async fn writer(opts: mysql_async::Opts, rate: u64, ids: (u64, u64), n: u64, stop: CancellationToken, counts: Arc<LoadCounts>) -> Result<()> {
    let mut c = crate::engine::connection::connect(opts).await.wrap_err("connecting a demo writer")?;
    let mut rng = StdRng::seed_from_u64(0x5eed + n);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let id = rng.gen_range(ids.0..=ids.1);
        let roll = rng.gen_range(0..6);
        let (result, counter) = match roll {
            0..=2 => (
                c.exec_drop(
                    "INSERT INTO orders (a, b, c, d, e) VALUES (?, 'live', NOW(), ?, REPEAT('w', 100))",
                    (rng.gen_range(0..1_000_000u32), rng.gen_range(0..10_000u32) as f64 / 100.0),
                )
                .await,
                &counts.inserts,
            ),
            3 | 4 => (c.exec_drop("UPDATE orders SET a = a + 1, d = d + 0.01 WHERE id = ?", (id,)).await, &counts.updates),
            _ => (c.exec_drop("DELETE FROM orders WHERE id = ?", (id,)).await, &counts.deletes),
        };
        // A write refused during the cut-over is not retried: the demo only shows the load.
        match result {
            Ok(()) => counter.fetch_add(1, Ordering::Relaxed),
            Err(_) => counts.errors.fetch_add(1, Ordering::Relaxed),
        };
    }
}
