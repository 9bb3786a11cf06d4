//! migrate's index step (`--defer-secondary-indexes`, on by default): the ghost is created without its plain
//! secondary indexes (`plan::indexes` says which), so the copy writes to a table with its primary and unique keys
//! only; after the copy the missing indexes are added in one in-place ALTER (`ALGORITHM=INPLACE, LOCK=NONE`: the
//! server sorts the rows once instead of inserting into every index row by row) while the applier keeps writing to
//! the ghost. What is missing is always read from the ghost itself against the new structure, so a resume (after
//! a kill during the build too: the server finishes or rolls back the ALTER on its own) adds what is still missing,
//! whatever the flags of the first run were.

use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::config::MigrationConfig;
use crate::engine::failpoint;
use crate::engine::pipeline::gate::{self, Interrupted};
use crate::engine::pipeline::runtime::RunContext;
use crate::engine::pipeline::tasks::Running;
use crate::engine::plan::indexes::{self, IndexDef};
use crate::engine::plan::preflight::Plan;
use crate::engine::sql::qualified;

/// ER_DUP_KEYNAME: the index exists (an ALTER of an earlier, killed run finished meanwhile).
const DUPLICATE_KEY_NAME: u16 = 1061;
/// ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON): the server cannot add these indexes in place without a lock.
const NOT_ONLINE: [u16; 2] = [1845, 1846];

/// The indexes of the new structure the ghost lacks now.
pub(super) async fn missing(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, plan: &Plan) -> Result<Vec<IndexDef>> {
    let q = qualified(&cfg.database, &cfg.ghost_table());
    let row: Option<(String, String)> = conn.query_first(format!("SHOW CREATE TABLE {q}")).await.wrap_err_with(|| format!("reading the definition of {q}"))?;
    Ok(indexes::missing(&plan.new_structure.create_statement, &row.map(|r| r.1).unwrap_or_default()))
}

/// A new run: drops the deferred indexes from the ghost just created (empty, so at once).
pub(super) async fn defer(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, plan: &Plan) -> Result<()> {
    let deferred = indexes::deferrable(&plan.new_structure.create_statement);
    if deferred.is_empty() {
        return Ok(());
    }
    let q = qualified(&cfg.database, &cfg.ghost_table());
    conn.query_drop(indexes::drop_statement(&q, &deferred)).await.wrap_err("creating the ghost without its secondary indexes")?;
    let names: Vec<String> = deferred.into_iter().map(|d| d.name).collect();
    tracing::info!("the ghost is created without {} secondary index(es) ({}); they are added after the copy, in place", names.len(), names.join(", "));
    Ok(())
}

/// The index step: adds what the ghost lacks, in place, while the applier runs; a stop (or a task that ends)
/// interrupts the ALTER (KILL QUERY: the server rolls it back; a resume adds the indexes again).
pub(super) async fn build(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, ctx: &RunContext, plan: &Plan, running: &mut Running) -> Result<std::result::Result<(), Interrupted>> {
    let started = Instant::now();
    let mut online = true;
    for _attempt in 0..4 {
        let todo = missing(conn, cfg, plan).await?;
        if todo.is_empty() {
            break;
        }
        let names: Vec<String> = todo.iter().map(|d| d.name.clone()).collect();
        ctx.shared.with(|i| {
            i.status.indexes.deferred = names.clone();
            i.status.indexes.building = true;
        });
        tracing::info!("adding {} secondary index(es) to the ghost{}: {}", names.len(), if online { " in place (LOCK=NONE)" } else { "" }, names.join(", "));
        let stmt = indexes::add_statement(&qualified(&cfg.database, &cfg.ghost_table()), &todo, online);
        match run_interruptible(conn, cfg, ctx, running, stmt, started).await? {
            Ran::Done => break,
            Ran::Interrupted(i) => {
                ctx.shared.with(|s| s.status.indexes.building = false);
                return Ok(Err(i));
            }
            Ran::Failed(e) => match e.code {
                DUPLICATE_KEY_NAME => tracing::info!("an index exists already (an earlier run's ALTER finished): reading the ghost again"),
                c if NOT_ONLINE.contains(&c) && online => {
                    tracing::warn!("the server cannot add the indexes in place without a lock ({}): adding them with its default algorithm; the applier waits meanwhile", e.message);
                    online = false;
                }
                _ => return Err(mysql_async::Error::Server(e)).wrap_err("adding the secondary indexes to the ghost"),
            },
        }
    }
    let left = missing(conn, cfg, plan).await?;
    if !left.is_empty() {
        let names: Vec<String> = left.into_iter().map(|d| d.name).collect();
        color_eyre::eyre::bail!("the ghost still lacks the index(es) {} after four attempts to add them", names.join(", "));
    }
    let secs = started.elapsed().as_secs_f64();
    ctx.shared.with(|i| {
        i.status.indexes.building = false;
        i.status.indexes.build_seconds = Some(secs);
    });
    tracing::info!("secondary indexes added in {secs:.1}s");
    Ok(Ok(()))
}

/// How one ALTER ended.
enum Ran {
    Done,
    Interrupted(Interrupted),
    Failed(mysql_async::ServerError),
}

/// Runs `stmt` on `conn`, watching for a stop or an ended task meanwhile (then the ALTER is killed).
async fn run_interruptible(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, ctx: &RunContext, running: &mut Running, stmt: String, started: Instant) -> Result<Ran> {
    let id = conn.id();
    let alter = conn.query_drop(stmt);
    tokio::pin!(alter);
    let mut ticks = 0u64;
    let result = loop {
        tokio::select! {
            r = &mut alter => break r,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                ticks += 1;
                if ticks == 3 {
                    failpoint::hit("index-build-running")?;
                }
                ctx.shared.with(|i| i.status.indexes.build_seconds = Some(started.elapsed().as_secs_f64()));
                if let Some(i) = gate::interrupted(ctx, running).await {
                    kill_query(cfg, id).await;
                    let _ = alter.await;
                    return Ok(Ran::Interrupted(i));
                }
            }
        }
    };
    match result {
        Ok(()) => Ok(Ran::Done),
        Err(mysql_async::Error::Server(e)) => Ok(Ran::Failed(e)),
        Err(e) => Err(e).wrap_err("adding the secondary indexes to the ghost"),
    }
}

/// Kills the ALTER from a connection of its own (best effort: the stop goes on either way).
async fn kill_query(cfg: &MigrationConfig, id: u32) {
    match crate::engine::connection::connect(cfg.source.opts()).await {
        Ok(mut c) => {
            if let Err(e) = c.query_drop(format!("KILL QUERY {id}")).await {
                tracing::warn!("could not interrupt the index build (connection {id}): {e}");
            }
            let _ = c.disconnect().await;
        }
        Err(e) => tracing::warn!("could not interrupt the index build (connection {id}): {e}"),
    }
}
