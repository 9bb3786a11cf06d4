//! `--attempt-instant-ddl`: before any ghost table, ask the server for the ALTER with `ALGORITHM=INSTANT` (a
//! metadata-only change, as gh-ost does with the same flag). The server either does it at once, and the run is done
//! without a copy, or refuses (the ALTER needs a rebuild, or the metadata lock was not granted within
//! `--cut-over-lock-timeout-seconds`); then nothing changed and the migration runs as usual.

use std::time::Instant;

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::config::MigrationConfig;
use crate::engine::sql::qualified;

/// The statement tried (the ALTER was checked as one clause list before, so it adds no statement).
pub fn statement(cfg: &MigrationConfig) -> String {
    format!("ALTER TABLE {} {}, ALGORITHM=INSTANT", qualified(&cfg.database, &cfg.table), cfg.alter.trim())
}

/// Tries the ALTER in place: `Some(milliseconds)` when the server did it, `None` when it refused (logged).
pub async fn attempt(opts: &mysql_async::Opts, cfg: &MigrationConfig) -> Result<Option<u64>> {
    let mut c = crate::engine::connection::connect(opts.clone()).await.wrap_err("connecting for the instant DDL attempt")?;
    if cfg.run.writes.allow_zero_in_date {
        crate::engine::sql::allow_zero_dates(&mut c).await?;
    }
    // The metadata lock is waited for no longer than a cut-over's: writers queue behind a waiting ALTER.
    c.query_drop(format!("SET SESSION lock_wait_timeout = {}", cfg.run.cut_over_lock_timeout.as_secs().max(1)))
        .await
        .wrap_err("setting the instant DDL's lock wait timeout")?;
    let sql = statement(cfg);
    let started = Instant::now();
    match c.query_drop(&sql).await {
        Ok(()) => {
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!("{}.{} altered in place with ALGORITHM=INSTANT in {ms} ms: no copy needed", cfg.database, cfg.table);
            Ok(Some(ms))
        }
        Err(mysql_async::Error::Server(e)) => {
            tracing::info!(
                "the server did not alter {}.{} instantly ({} {}): migrating with a ghost table",
                cfg.database,
                cfg.table,
                e.code,
                e.message
            );
            Ok(None)
        }
        Err(e) => Err(e).wrap_err("the instant DDL attempt lost its connection (check the table's definition, then run again)"),
    }
}
