//! move-tables' setup: the checkpoint table and the tables on the target (the source's definition, then the
//! ALTER), the heartbeat table on the source, and the start position recorded with every table's copy range.

use std::collections::HashMap;

use color_eyre::eyre::{eyre, Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::checkpoint;
use crate::engine::copy::copier::{estimate_rows, CopyJob};
use crate::engine::pipeline::migrate::TOOL_VERSION;
use crate::engine::plan::preflight::Plan;
use crate::engine::plan::schema;
use crate::engine::sql::{qualified, quote_ident};
use crate::engine::stream::start::start_position;

use super::preflight::changelog_comment;
use super::{MoveTablesConfig, MovedTable, CHANGELOG_COMMENT, CHANGELOG_TABLE, CHECKPOINT_TABLE};

/// Per-table copy rows of the checkpoint (`copy:<table>`).
#[derive(Debug, Clone, Default)]
pub(super) struct CopyRow {
    pub(super) range_end: Option<String>,
    pub(super) watermark: Option<String>,
    pub(super) complete: bool,
    pub(super) rows_copied: u64,
    pub(super) rows_estimate: u64,
}

pub(super) async fn read_copy_rows(conn: &mut mysql_async::Conn, db: &str) -> Result<HashMap<String, CopyRow>> {
    type Row = (String, Option<String>, Option<String>, u8, u64, u64);
    let rows: Vec<Row> = conn
        .query(format!(
            "SELECT id, copy_range_end, copy_watermark, copy_complete, rows_copied, rows_estimate FROM {} WHERE id LIKE 'copy:%'",
            qualified(db, CHECKPOINT_TABLE)
        ))
        .await
        .wrap_err("reading the copy rows of the checkpoint")?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, end, wm, done, n, estimate)| {
            id.strip_prefix("copy:").map(|t| {
                (t.to_string(), CopyRow { range_end: end, watermark: wm, complete: done == 1, rows_copied: n, rows_estimate: estimate })
            })
        })
        .collect())
}

pub(super) async fn set_summary(conn: &mut mysql_async::Conn, cfg: &MoveTablesConfig, assignments: &str) -> Result<()> {
    conn.exec_drop(
        format!("UPDATE {} SET {assignments} WHERE id = ?", qualified(&cfg.target_database, CHECKPOINT_TABLE)),
        (checkpoint::SUMMARY,),
    )
    .await
    .wrap_err_with(|| format!("recording `{assignments}` in the target's checkpoint"))
}

/// Creates the heartbeat table on the source when missing (the layout of migrate's changelog) and reads its columns
/// for the streamer.
pub(super) async fn ensure_changelog(src: &mut mysql_async::Conn, cfg: &MoveTablesConfig) -> Result<schema::TableInfo> {
    src.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         last_update TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \
         hint VARCHAR(64) CHARACTER SET ascii NOT NULL, value VARCHAR(4096) CHARACTER SET utf8mb4 NOT NULL, \
         UNIQUE KEY hint_uidx (hint)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='{CHANGELOG_COMMENT}'",
        qualified(&cfg.database, CHANGELOG_TABLE)
    ))
    .await
    .wrap_err_with(|| format!("creating the heartbeat table {}.{CHANGELOG_TABLE} on the source", cfg.database))?;
    schema::read_table(src, &cfg.database, CHANGELOG_TABLE)
        .await?
        .ok_or_else(|| eyre!("the heartbeat table {}.{CHANGELOG_TABLE} vanished on the source", cfg.database))
}

/// Drops the heartbeat table at the end of a move, only when it is ours; a failure only logs (the move is done).
pub(super) async fn drop_changelog(src: &mut mysql_async::Conn, cfg: &MoveTablesConfig) {
    match changelog_comment(src, cfg).await {
        Ok(Some(c)) if c == CHANGELOG_COMMENT => {
            if let Err(e) = src.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&cfg.database, CHANGELOG_TABLE))).await {
                tracing::warn!("could not drop the heartbeat table {}.{CHANGELOG_TABLE}: {e}; drop it by hand", cfg.database);
            }
        }
        Ok(Some(_)) => tracing::warn!("{}.{CHANGELOG_TABLE} is not revenant's: left as it is", cfg.database),
        Ok(None) => {}
        Err(e) => tracing::warn!("{e:#}"),
    }
}

pub(super) fn copy_job(cfg: &MoveTablesConfig, table: &MovedTable) -> CopyJob {
    CopyJob {
        source_db: cfg.database.clone(),
        source_table: table.name.clone(),
        target_db: cfg.target_database.clone(),
        target_table: table.name.clone(),
        columns: table.mapping.shared.clone(),
        key: table.mapping.key.columns.iter().filter_map(|n| table.plan.original.column(n).cloned()).collect(),
        key_index: table.mapping.key.name.clone(),
        checkpoint_db: cfg.target_database.clone(),
        checkpoint_table: CHECKPOINT_TABLE.to_string(),
        checkpoint_row: MoveTablesConfig::copy_row(&table.name),
        deletes: None,
        writes: cfg.run.writes,
        warnings: table.warnings.clone(),
    }
}

/// Creates the checkpoint table and the target tables (same definition, then the ALTER).
pub(super) async fn setup_target(src: &mut mysql_async::Conn, tgt: &mut mysql_async::Conn, cfg: &MoveTablesConfig, plans: &[(String, Plan)]) -> Result<()> {
    let db = &cfg.target_database;
    tgt.query_drop(checkpoint::create_statement(db, CHECKPOINT_TABLE)).await.wrap_err("creating the checkpoint table on the target")?;
    let alter = cfg.alter.clone().unwrap_or_default();
    let fingerprints: Vec<String> = plans.iter().map(|(_, p)| checkpoint::table_fingerprint(&p.original.create_statement)).collect();
    let ck = qualified(db, CHECKPOINT_TABLE);
    tgt.exec_drop(
        format!(
            "INSERT INTO {ck} (id, phase, database_name, table_name, ghost_table, alter_statement, alter_fingerprint, \
             table_fingerprint, tool_version) VALUES (?, 'setup', ?, ?, ?, ?, ?, ?, ?)"
        ),
        (
            checkpoint::SUMMARY,
            cfg.database.as_str(),
            cfg.tables_text(),
            format!("{}:{}/{}", cfg.target.host, cfg.target.port, db),
            alter.as_str(),
            checkpoint::fingerprint(&alter),
            checkpoint::fingerprint(&fingerprints.join(",")),
            TOOL_VERSION,
        ),
    )
    .await?;
    tgt.exec_drop(format!("INSERT INTO {ck} (id) VALUES (?)"), (checkpoint::APPLY,)).await?;
    for (t, _) in plans {
        tgt.exec_drop(format!("INSERT INTO {ck} (id) VALUES (?)"), (MoveTablesConfig::copy_row(t),)).await?;
        let row: Option<(String, String)> = src.query_first(format!("SHOW CREATE TABLE {}", qualified(&cfg.database, t))).await?;
        let (_, create) = row.ok_or_else(|| eyre!("SHOW CREATE TABLE {}.{t} returned nothing", cfg.database))?;
        tgt.query_drop(format!("USE {}", quote_ident(db))).await?;
        tgt.query_drop(create).await.wrap_err_with(|| format!("creating {db}.{t} on the target"))?;
        if let Some(a) = &cfg.alter {
            let plan_clause = plans.iter().find(|(n, _)| n == t).map(|(_, p)| p.alter.clause.clone()).unwrap_or_else(|| a.clone());
            tgt.query_drop(format!("ALTER TABLE {} {plan_clause}", qualified(db, t)))
                .await
                .wrap_err_with(|| format!("applying the ALTER to {db}.{t} on the target"))?;
        }
    }
    Ok(())
}

/// Records the start position (read before the copy ranges) and every table's range in one target transaction.
pub(super) async fn record_start(
    src: &mut mysql_async::Conn,
    tgt: &mut mysql_async::Conn,
    cfg: &MoveTablesConfig,
    tables: &[MovedTable],
    mariadb: bool,
    copy_rows: &mut HashMap<String, CopyRow>,
) -> Result<()> {
    let start = start_position(src, None, mariadb, (&cfg.database, CHANGELOG_TABLE)).await?;
    let mut raw = crate::engine::apply::applier::writer_conn(&cfg.source.opts(), cfg.run.writes).await?;
    let ck = qualified(&cfg.target_database, CHECKPOINT_TABLE);
    let mut tx = tgt.start_transaction(mysql_async::TxOpts::default()).await?;
    let mut estimate_total = 0;
    for table in tables {
        let job = copy_job(cfg, table);
        let bounds = job.key_bounds(&mut raw).await?;
        let estimate = estimate_rows(src, &cfg.database, &table.name, false).await?;
        estimate_total += estimate;
        let end = bounds.as_ref().map(|b| checkpoint::encode_key(&b.1));
        tx.exec_drop(
            format!("UPDATE {ck} SET copy_range_start = ?, copy_range_end = ?, copy_complete = ?, rows_estimate = ? WHERE id = ?"),
            (bounds.as_ref().map(|b| checkpoint::encode_key(&b.0)), end.clone(), u8::from(bounds.is_none()), estimate, job.checkpoint_row.as_str()),
        )
        .await?;
        copy_rows.insert(
            table.name.clone(),
            CopyRow { range_end: end, watermark: None, complete: bounds.is_none(), rows_copied: 0, rows_estimate: estimate },
        );
    }
    checkpoint::record_start(&mut tx, &cfg.target_database, CHECKPOINT_TABLE, (&start.gtid_set, &start.file, start.pos), estimate_total).await?;
    tx.commit().await.wrap_err("recording the start position and the copy ranges on the target")?;
    let _ = raw.disconnect().await;
    Ok(())
}

