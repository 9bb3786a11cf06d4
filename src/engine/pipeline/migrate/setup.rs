//! migrate's setup step: the changelog, checkpoint and ghost tables, then the start position and the copy range
//! committed together, or, on a resume, both read back from the checkpoint.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use color_eyre::eyre::{eyre, Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::checkpoint::{self, CheckpointState};
use crate::engine::config::{MigrationConfig, RowWrites};
use crate::engine::copy::copier::{estimate_rows, CopyJob, CopyRange};
use crate::engine::copy::parallel::{self, Slice};
use crate::engine::copy::delete_log::DeleteLog;
use crate::engine::copy::warnings::WarningRules;
use crate::engine::hooks::{Hook, Hooks};
use crate::engine::pipeline::migrate::TOOL_VERSION;
use crate::engine::pipeline::report::WithResume;
use crate::engine::pipeline::tasks::applied_table;
use crate::engine::plan::preflight::Plan;
use crate::engine::plan::schema::{self, ColumnMapping, TableInfo};
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;
use crate::engine::stream::binlog::BinlogPosition;
use crate::engine::stream::start::start_position;

/// What the setup step hands to the copy: the tables as they are now, the copy job and where the run starts.
pub(super) struct Prepared {
    pub(super) mapping: ColumnMapping,
    pub(super) changelog: TableInfo,
    pub(super) job: CopyJob,
    pub(super) delete_log: Arc<DeleteLog>,
    pub(super) start: BinlogPosition,
    /// The copy's slices (one unless `--copy-threads` split the range).
    pub(super) slices: Vec<Slice>,
    /// The secondary indexes the ghost lacks (deferred to the index step).
    pub(super) missing_indexes: Vec<String>,
}

/// Reads the ghost and changelog tables and maps the columns; builds the copy job.
pub(super) async fn prepare(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, plan: &Plan) -> Result<(ColumnMapping, TableInfo, CopyJob, Arc<DeleteLog>)> {
    let ghost = schema::read_table(conn, &cfg.database, &cfg.ghost_table())
        .await?
        .ok_or_else(|| eyre!("the ghost table {} is missing", cfg.ghost_table()))?;
    let changelog = schema::read_table(conn, &cfg.database, &cfg.changelog_table())
        .await?
        .ok_or_else(|| eyre!("the changelog table {} is missing", cfg.changelog_table()))?;
    let mapping = schema::map_columns(&plan.original, &ghost, &plan.renames, &plan.alter.dropped_columns)?;
    // The copy reads the original without locks; the applier's deletes are checked by each chunk (delete_log).
    let target = applied_table(plan, &mapping, &cfg.table, &cfg.database, &cfg.ghost_table()).target;
    let delete_log = Arc::new(DeleteLog::new(&target, &cfg.database, &cfg.table, true));
    let job = CopyJob {
        source_db: cfg.database.clone(),
        source_table: cfg.table.clone(),
        target_db: cfg.database.clone(),
        target_table: cfg.ghost_table(),
        columns: mapping.shared.clone(),
        key: mapping.key.columns.iter().filter_map(|n| plan.original.column(n).cloned()).collect(),
        key_index: mapping.key.name.clone(),
        checkpoint_db: cfg.database.clone(),
        checkpoint_table: cfg.checkpoint_table(),
        checkpoint_row: checkpoint::COPY.to_string(),
        deletes: Some(delete_log.clone()),
        writes: cfg.run.writes,
        warnings: warning_rules(&plan.original, &ghost, &mapping, cfg.run.writes),
    };
    Ok((mapping, changelog, job, delete_log))
}

/// Which duplicate-key skips of the copy are expected (see `copy::warnings`).
pub(crate) fn warning_rules(original: &TableInfo, ghost: &TableInfo, mapping: &ColumnMapping, writes: RowWrites) -> WarningRules {
    let (expected_duplicate_keys, new_unique_keys) = schema::unique_keys_of_ghost(original, ghost, mapping);
    let same_enum_columns = mapping
        .shared
        .iter()
        .filter(|(c, g)| c.is_enum() && ghost.column(g).is_some_and(|gc| gc.column_type == c.column_type))
        .map(|(_, g)| g.clone())
        .collect();
    WarningRules { panic_on_warnings: writes.panic_on_warnings, expected_duplicate_keys, new_unique_keys, same_enum_columns }
}

/// The setup step: fresh tables (unless resumed), then the start position and copy range (recorded, or read back).
pub(super) async fn run(
    conn: &mut mysql_async::Conn,
    cfg: &MigrationConfig,
    plan: &Plan,
    resumed: Option<&CheckpointState>,
    artifact_actions: &[String],
    shared: &Shared,
    hooks: &Hooks,
) -> Result<Prepared> {
    if resumed.is_none() {
        for a in artifact_actions {
            tracing::info!("{a}");
            conn.query_drop(a.as_str()).await?;
        }
        setup_tables(conn, cfg, plan).await?;
    }
    crate::engine::failpoint::hit("after-setup")?;
    if let (Some(naming), Some(_)) = (&cfg.triggers, resumed) {
        // A crash during a cut-over attempt can leave the original's triggers on the ghost: off before any write.
        crate::engine::cutover::triggers::drop_from(conn, &cfg.database, &cfg.ghost_table(), &plan.triggers, naming).await?;
    }
    let (mapping, changelog, job, delete_log) = prepare(conn, cfg, plan).await?;
    let (start, slices) = match resumed {
        Some(st) => restore(st, shared)?,
        None => record_start(conn, cfg, plan.mariadb, &job, shared, hooks).await?,
    };
    if shared.copy_complete.load(Ordering::Relaxed) {
        delete_log.deactivate();
    }
    let missing_indexes: Vec<String> = super::indexes::missing(conn, cfg, plan).await?.into_iter().map(|d| d.name).collect();
    shared.with(|i| i.status.indexes.deferred = missing_indexes.clone());
    Ok(Prepared { mapping, changelog, job, delete_log, start, slices, missing_indexes })
}

/// A resumed run: the position and the slices' watermarks from the checkpoint, the counters into the status.
fn restore(st: &CheckpointState, shared: &Shared) -> Result<(BinlogPosition, Vec<Slice>)> {
    let key = |k: &Option<String>| k.as_deref().map(checkpoint::decode_key).transpose();
    let slices = match st.slices.is_empty() {
        true => vec![Slice {
            row: checkpoint::COPY.to_string(),
            range: CopyRange { range_end: key(&st.copy_range_end)?, watermark: key(&st.copy_watermark)? },
            complete: st.copy_complete,
        }],
        false => st
            .slices
            .iter()
            .map(|s| Ok(Slice { row: s.row.clone(), range: CopyRange { range_end: key(&s.range_end)?, watermark: key(&s.watermark)? }, complete: s.complete }))
            .collect::<Result<_>>()?,
    };
    shared.rows_copied.store(st.rows_copied, Ordering::Relaxed);
    shared.events_applied.store(st.events_applied, Ordering::Relaxed);
    shared.rows_estimate.store(st.rows_estimate, Ordering::Relaxed);
    shared.with(|i| {
        i.status.checkpoint.resumed_from =
            Some(format!("{} at {} rows copied; redoing at most one chunk{}, {}", st.applied_gtid_set, st.rows_copied, per_slice(slices.len()), batch_redo(st)))
    });
    if st.copy_complete {
        shared.copy_complete.store(true, Ordering::Relaxed);
    }
    Ok((BinlogPosition { gtid_set: st.applied_gtid_set.clone(), file: st.applied_file.clone(), pos: st.applied_pos }, slices))
}

/// " per copy slice (N slices)" when the copy has several.
pub(super) fn per_slice(slices: usize) -> String {
    if slices > 1 {
        format!(" per copy slice ({slices} slices)")
    } else {
        String::new()
    }
}

/// A new run: the position is taken before the copy range, so every row change after it is streamed; range, start
/// position and the end of setup commit in one transaction.
async fn record_start(
    conn: &mut mysql_async::Conn,
    cfg: &MigrationConfig,
    mariadb: bool,
    job: &CopyJob,
    shared: &Shared,
    hooks: &Hooks,
) -> Result<(BinlogPosition, Vec<Slice>)> {
    let mut binlog = match &cfg.binlog_source {
        Some(b) => Some(crate::engine::connection::connect(b.opts()).await.wrap_err_with(|| format!("connecting to the binlog server {}", b.display()))?),
        None => None,
    };
    let start = start_position(conn, binlog.as_mut(), mariadb, (&cfg.database, &cfg.changelog_table())).await?;
    if let Some(b) = binlog {
        let _ = b.disconnect().await;
    }
    // Key values are read as raw bytes (a writer connection runs with NAMES binary), as the copier binds them.
    let mut raw = crate::engine::apply::applier::writer_conn(&cfg.source.opts(), cfg.run.writes).await?;
    let bounds = job.key_bounds(&mut raw).await?;
    let estimate = estimate_rows(conn, &cfg.database, &cfg.table, cfg.exact_rowcount).await?;
    let (sized, slices) = plan_slices(&mut raw, cfg, job, bounds.as_ref(), estimate).await?;
    shared.rows_estimate.store(sized, Ordering::Relaxed);
    let _ = raw.disconnect().await;
    let ck = qualified(&cfg.database, &cfg.checkpoint_table());
    let mut tx = conn.start_transaction(mysql_async::TxOpts::default()).await?;
    tx.exec_drop(
        format!("UPDATE {ck} SET copy_range_start = ?, copy_range_end = ?, copy_complete = ? WHERE id = ?"),
        (
            bounds.as_ref().map(|b| checkpoint::encode_key(&b.0)),
            slices[0].range.range_end.as_deref().map(checkpoint::encode_key),
            u8::from(bounds.is_none()),
            checkpoint::COPY,
        ),
    )
    .await?;
    record_slices(&mut tx, &ck, &slices).await?;
    checkpoint::record_start(&mut tx, &cfg.database, &cfg.checkpoint_table(), (&start.gtid_set, &start.file, start.pos), sized).await?;
    tx.commit().await.wrap_err("recording the copy range and start position")?;
    hooks.fire(Hook::OnRowcountComplete, &[], &shared.snapshot(0)).await.map_err(|e| e.with_resume(cfg))?;
    if bounds.is_none() {
        shared.copy_complete.store(true, Ordering::Relaxed);
    }
    if slices.len() > 1 {
        tracing::info!("copying with {} workers, one per slice of the key range (--copy-threads)", slices.len());
    }
    Ok((start, slices))
}

/// A new copy's slices (see `copy::parallel`), and the row count they were sized by: the estimate, or when that is
/// below what the slices need (the optimiser's estimate can be stale: MySQL says 0 right after a bulk load), the
/// rows counted up to that many.
async fn plan_slices(
    raw: &mut mysql_async::Conn,
    cfg: &MigrationConfig,
    job: &CopyJob,
    bounds: Option<&(Vec<mysql_async::Value>, Vec<mysql_async::Value>)>,
    estimate: u64,
) -> Result<(u64, Vec<Slice>)> {
    let Some(bounds) = bounds else {
        return Ok((estimate, vec![Slice { row: checkpoint::COPY.to_string(), complete: true, ..Slice::default() }]));
    };
    let threads = parallel::threads(cfg.copy_threads);
    let needed = parallel::rows_for(threads, cfg.run.chunk_size);
    let sized = match threads > 1 && estimate < needed {
        true => estimate.max(job.count_up_to(raw, needed).await?),
        false => estimate,
    };
    let count = parallel::slice_count(threads, sized, cfg.run.chunk_size);
    let points = parallel::split_points(job, raw, bounds, sized, count).await?;
    Ok((sized, parallel::slices(points, bounds.1.clone())))
}

/// The rows of the slices after the first (`copy#2`, ...): each starts after its lower split point.
async fn record_slices(tx: &mut mysql_async::Transaction<'_>, ck: &str, slices: &[Slice]) -> Result<()> {
    for s in slices.iter().skip(1) {
        let lower = s.range.watermark.as_deref().map(checkpoint::encode_key);
        tx.exec_drop(
            format!("INSERT INTO {ck} (id, copy_range_start, copy_range_end, copy_watermark) VALUES (?, ?, ?, ?)"),
            (s.row.as_str(), lower.clone(), s.range.range_end.as_deref().map(checkpoint::encode_key), lower),
        )
        .await
        .wrap_err("recording a copy slice")?;
    }
    Ok(())
}

/// The changelog (heartbeats and markers), the checkpoint table with its rows, and the ghost table with the ALTER.
async fn setup_tables(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, plan: &Plan) -> Result<()> {
    let db = &cfg.database;
    conn.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(db, &cfg.changelog_table()))).await?;
    conn.query_drop(changelog_statement(&qualified(db, &cfg.changelog_table()), "revenant changelog"))
        .await
        .wrap_err("creating the changelog table")?;
    conn.query_drop(checkpoint::create_statement(db, &cfg.checkpoint_table())).await.wrap_err("creating the checkpoint table")?;
    let ck = qualified(db, &cfg.checkpoint_table());
    conn.exec_drop(
        format!(
            "INSERT INTO {ck} (id, phase, database_name, table_name, ghost_table, alter_statement, alter_fingerprint, \
             table_fingerprint, tool_version) VALUES (?, 'setup', ?, ?, ?, ?, ?, ?, ?)"
        ),
        (
            checkpoint::SUMMARY,
            db.as_str(),
            cfg.table.as_str(),
            cfg.ghost_table(),
            plan.alter.clause.as_str(),
            checkpoint::fingerprint(&plan.alter.clause),
            checkpoint::table_fingerprint(&plan.original.create_statement),
            TOOL_VERSION,
        ),
    )
    .await?;
    conn.exec_drop(format!("INSERT INTO {ck} (id) VALUES (?), (?)"), (checkpoint::COPY, checkpoint::APPLY)).await?;
    conn.exec_drop(format!("INSERT INTO {ck} (id, table_name) VALUES (?, ?)"), (checkpoint::OLD_TABLE, cfg.old_table())).await?;
    if cfg.keep_checkpoint {
        conn.exec_drop(format!("INSERT INTO {ck} (id) VALUES (?)"), (checkpoint::KEEP,)).await?;
    }
    conn.query_drop(format!("CREATE TABLE {} LIKE {}", qualified(db, &cfg.ghost_table()), qualified(db, &cfg.table)))
        .await
        .wrap_err("creating the ghost table")?;
    conn.query_drop(format!("ALTER TABLE {} {}", qualified(db, &cfg.ghost_table()), plan.alter.clause))
        .await
        .wrap_err("altering the ghost table")?;
    if cfg.defer_secondary_indexes {
        super::indexes::defer(conn, cfg, plan).await?;
    }
    // Keep the original's AUTO_INCREMENT counter (rows deleted at the end would otherwise lower it), unless the
    // ALTER sets one.
    if !plan.alter.clause.to_ascii_lowercase().contains("auto_increment") {
        if let Some(n) = auto_increment_of(conn, db, &cfg.table).await? {
            conn.query_drop(format!("ALTER TABLE {} AUTO_INCREMENT = {n}", qualified(db, &cfg.ghost_table()))).await?;
        }
    }
    Ok(())
}

/// The layout of a changelog table (migrate's `_<t>_ghc`, a move's `_revenant_move_ghc`): heartbeats and markers.
pub(crate) fn changelog_statement(qualified_name: &str, comment: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {qualified_name} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         last_update TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \
         hint VARCHAR(64) CHARACTER SET ascii NOT NULL, value VARCHAR(4096) CHARACTER SET utf8mb4 NOT NULL, \
         UNIQUE KEY hint_uidx (hint)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='{comment}'"
    )
}

/// The table's AUTO_INCREMENT counter, from SHOW CREATE TABLE (information_schema may cache it on MySQL).
async fn auto_increment_of(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<Option<u64>> {
    let row: Option<(String, String)> = conn.query_first(format!("SHOW CREATE TABLE {}", qualified(db, table))).await?;
    Ok(row.and_then(|(_, create)| create.split_whitespace().find_map(|w| w.strip_prefix("AUTO_INCREMENT=")).and_then(|n| n.parse().ok())))
}

/// What a resume applies again: nothing, or the last batch of the writers whose part of it had committed.
pub(super) fn batch_redo(st: &CheckpointState) -> &'static str {
    match st.apply_rows_apart {
        true => "one apply batch again on the writers ahead",
        false => "no batch",
    }
}
