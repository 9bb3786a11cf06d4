//! migrate's side of the resume table: what exists on the server (`t`, `_t_del` as sentry or table, `_t_gho`),
//! turned into a [`Resume`] decision by the pure [`resume_from`]; then the checks that need the preflight's plan
//! (the same ALTER, the same original, a binary log still there) before a run continues.

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::checkpoint::{self, CheckpointState};
use crate::engine::config::MigrationConfig;
use crate::engine::cutover::swap;
use crate::engine::pipeline::commands::watermark_text;
use crate::engine::pipeline::resume::{resume_from, CheckpointFacts, Observed, OldTable, Resume, RunKind};
use crate::engine::plan::preflight::{refuse, Plan};
use crate::engine::plan::schema;
use crate::engine::sql::qualified;
use crate::engine::stream::gtid::GtidSet;

impl From<&CheckpointState> for CheckpointFacts {
    fn from(st: &CheckpointState) -> Self {
        CheckpointFacts {
            phase: st.phase.clone(),
            cutover_started: st.cutover_started,
            cutover_complete: st.cutover_complete,
            drain_gtid: st.drain_gtid.clone(),
        }
    }
}

async fn exists(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<bool> {
    Ok(schema::read_table(conn, db, table).await?.is_some())
}

/// What exists now.
async fn observe(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<Observed> {
    let db = &cfg.database;
    let old = match exists(conn, db, &cfg.old_table()).await? {
        false => OldTable::Absent,
        true if swap::is_sentry(conn, db, &cfg.old_table()).await? => OldTable::Sentry,
        true => OldTable::Table,
    };
    Ok(Observed { original: exists(conn, db, &cfg.table).await?, old, ghost: exists(conn, db, &cfg.ghost_table()).await? })
}

/// Reads the checkpoint and decides where `--resume` continues. A refusal names the tables and changes nothing.
pub(super) async fn decide(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<(Resume, Option<CheckpointState>)> {
    let st = checkpoint::read(conn, &cfg.database, &cfg.checkpoint_table()).await?;
    if let Some(st) = &st {
        if st.database_name != cfg.database || st.table_name != cfg.table {
            return Err(refuse(
                format!("the checkpoint in {}.{} is for {}.{}", cfg.database, cfg.checkpoint_table(), st.database_name, st.table_name),
                "resume with the same --database and --table",
            ));
        }
        let recorded = st.old_table.clone().unwrap_or_else(|| cfg.default_old_table());
        if recorded != cfg.old_table() {
            return Err(refuse(
                format!("the checkpoint's migration renames the original to {recorded}; this run would rename it to {}", cfg.old_table()),
                "resume from the command line (it reads the old table's name from the checkpoint), or set the same name",
            ));
        }
    }
    let observed = observe(conn, cfg).await?;
    let decision = resume_from(RunKind::Migrate, st.as_ref().map(CheckpointFacts::from).as_ref(), observed);
    if let Resume::Refuse { what, todo } = &decision {
        let names = |s: &str| s.replace("_<t>_del", &cfg.old_table()).replace("<t>", &cfg.table);
        return Err(refuse(format!("{}.{}: {}", cfg.database, cfg.table, names(what)), names(todo)));
    }
    Ok((decision, st))
}

/// Before a resumed run continues: the same ALTER, the same original definition, the position still in the
/// binary log; a sentry left by an interrupted cut-over attempt is removed.
pub(super) async fn check_continue(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, plan: &Plan, st: &CheckpointState, drop_sentry: bool) -> Result<()> {
    if checkpoint::fingerprint(&plan.alter.clause) != st.alter_fingerprint {
        return Err(refuse(
            format!("the ALTER differs from the one being resumed ('{}')", st.alter_statement),
            "resume with exactly the same --alter, or clean up the old migration (docs/checkpoints.md)",
        ));
    }
    if checkpoint::table_fingerprint(&plan.original.create_statement) != st.table_fingerprint {
        return Err(refuse(
            format!("the definition of {}.{} changed since the migration began", cfg.database, cfg.table),
            "the copied rows no longer match the table; clean up (docs/checkpoints.md) and start again",
        ));
    }
    if !plan.mariadb {
        match &cfg.binlog_source {
            // Replica mode: the stream continues from the replica's binary log.
            Some(replica) => {
                let mut c = crate::engine::connection::connect(replica.opts()).await.wrap_err_with(|| format!("connecting to the replica {}", replica.display()))?;
                let kept = check_position_kept(&mut c, st).await;
                let _ = c.disconnect().await;
                kept?;
            }
            None => check_position_kept(conn, st).await?,
        }
    }
    if drop_sentry {
        conn.query_drop(format!("DROP TABLE {}", qualified(&cfg.database, &cfg.old_table()))).await?;
        tracing::info!("removed the sentry table left by an interrupted cut-over");
    }
    log_resume_point(cfg, st);
    Ok(())
}

/// MySQL: the server executed the checkpoint's position and still has the binary logs after it.
pub(super) async fn check_position_kept(conn: &mut mysql_async::Conn, st: &CheckpointState) -> Result<()> {
    if st.applied_gtid_set.is_empty() {
        return Ok(());
    }
    let executed: String = conn.query_first("SELECT @@GLOBAL.gtid_executed").await?.unwrap_or_default();
    let purged: String = conn.query_first("SELECT @@GLOBAL.gtid_purged").await?.unwrap_or_default();
    let stored = GtidSet::parse_mysql(&st.applied_gtid_set)?;
    if !GtidSet::parse_mysql(&executed)?.contains(&stored) {
        return Err(refuse(
            format!("this server has not executed the checkpoint's position {}", st.applied_gtid_set),
            "resume on the server (or a replica) that holds the migration's data",
        ));
    }
    if !stored.contains(&GtidSet::parse_mysql(&purged)?) {
        return Err(refuse(
            "binary logs needed to resume were purged (gtid_purged is not within the checkpoint's position)",
            "the migration cannot continue; clean up (docs/checkpoints.md) and start again",
        ));
    }
    Ok(())
}

/// Chunks and batches commit with their checkpoint rows, so nothing committed is redone: the copy re-reads only
/// the chunk that was in flight (rolled back with its watermark), the stream restarts after the last batch.
fn log_resume_point(cfg: &MigrationConfig, st: &CheckpointState) {
    let recopy = if st.copy_complete {
        "re-copying 0 rows (the copy was complete)".to_string()
    } else {
        format!(
            "re-copying at most one chunk{} (starting at {} rows; the chunk in flight was rolled back with its watermark)",
            super::setup::per_slice(st.slices.len()),
            cfg.run.chunk_size
        )
    };
    tracing::info!(
        "resumed at {} ({}:{}); copy watermark {}, {} rows copied, {} events applied; {recopy}; re-applying 0 events \
         (the stream continues after the last committed batch)",
        st.applied_gtid_set,
        st.applied_file,
        st.applied_pos,
        st.copy_watermark.as_deref().map(watermark_text).unwrap_or_else(|| "(start)".into()),
        st.rows_copied,
        st.events_applied
    );
}

/// A resume whose setup never committed: our partial tables hold nothing yet (no chunk and no batch can commit
/// before the setup's start position does), so they are dropped and set up again.
pub(super) async fn drop_partial_setup(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<()> {
    tracing::info!("the interrupted run never finished its setup: setting up again");
    for t in [cfg.ghost_table(), cfg.changelog_table(), cfg.checkpoint_table()] {
        conn.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&cfg.database, &t))).await?;
    }
    Ok(())
}
