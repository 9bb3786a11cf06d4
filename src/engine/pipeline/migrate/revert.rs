//! `--revert --old-table X` (gh-ost's revert): a migration that ran with `--checkpoint` kept its checkpoint table
//! after the swap, at the position the swap was made at. The revert is that migration resumed the other way: X (the
//! old table, with the old structure) is the ghost, the table as it is now is the original, the columns pair by name
//! with the ALTER's renames taken back, and the stream continues from the kept position, reading the migration's own
//! renames as its own. Nothing is copied (X held every row until the swap, the stream brings it every change since);
//! then the verification and the cut-over as for any migration: the migrated table is kept as `_<t>_rev_del`.
//! A value the old structure cannot hold (a longer string, a NULL in a column that was NOT NULL) fails the run
//! before the cut-over in strict mode, with the table as it is serving. A column the migration dropped comes back
//! with the old table's values for rows not changed since the swap; a row written since gets its default (rows
//! are applied as whole images of the shared columns).

use std::collections::{HashMap, HashSet};

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::checkpoint::{self, CheckpointState};
use crate::engine::cutover::swap;
use crate::engine::config::MigrationConfig;
use crate::engine::pipeline::phase::Phase;
use crate::engine::pipeline::resume::Resume;
use crate::engine::plan::alter::parse_alter;
use crate::engine::plan::preflight::{self, refuse, Plan};
use crate::engine::plan::schema::{self, map_columns};
use crate::engine::sql::qualified;

/// The summary's `alter_statement` of a revert begins with this (a resumed revert is told from a migration by it).
const REVERT_MARK: &str = "revert: ";

/// Where a revert starts: a fresh one (the migration's checkpoint, swapped) or one interrupted before its own swap
/// (`--resume`). Anything else is refused, naming the state; nothing is changed.
pub(super) async fn decide(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<(Resume, Option<CheckpointState>)> {
    let (db, ck, old) = (&cfg.database, cfg.checkpoint_table(), cfg.ghost_table());
    let st = checkpoint::read(conn, db, &ck).await?.ok_or_else(|| {
        refuse(
            format!("{db}.{ck} does not exist: there is no kept checkpoint to revert from"),
            "only a migration that ran with --checkpoint (and without --ok-to-drop-table) can be reverted; swap back by hand with RENAME TABLE",
        )
    })?;
    if st.database_name != cfg.database || st.table_name != cfg.table {
        return Err(refuse(format!("the checkpoint in {db}.{ck} is for {}.{}", st.database_name, st.table_name), "revert with the migration's --database and --table"));
    }
    let reverting = st.alter_statement.starts_with(REVERT_MARK);
    match (reverting, st.cutover_complete) {
        (false, true) => {
            let recorded = st.old_table.clone().unwrap_or_else(|| cfg.default_old_table());
            if recorded != old {
                return Err(refuse(format!("the migration kept the original as {recorded}, not {old}"), format!("give --old-table {recorded}")));
            }
            Ok((Resume::Continue { from: Phase::Catchup, drop_sentry: false }, Some(st)))
        }
        (true, false) if cfg.run.resume => super::resume::decide(conn, cfg).await,
        (true, false) => Err(refuse(format!("a revert of {db}.{} was interrupted", cfg.table), "add --resume to continue it")),
        (true, true) => Err(refuse(format!("{db}.{} was reverted already", cfg.table), format!("drop {ck} when you are sure"))),
        (false, false) => Err(refuse(format!("the migration of {db}.{} has not swapped the tables yet", cfg.table), "continue it with --resume (without --revert)")),
    }
}

/// The revert's plan: the table now as the original, the old table as the ghost, the ALTER's renames taken back.
pub(super) async fn plan(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<Plan> {
    let (mariadb, version) = preflight::check_server(conn, cfg).await?;
    let db = &cfg.database;
    let original = schema::read_table(conn, db, &cfg.table).await?.ok_or_else(|| refuse(format!("table {db}.{} does not exist", cfg.table), "check --database and --table"))?;
    let old = schema::read_table(conn, db, &cfg.ghost_table())
        .await?
        .ok_or_else(|| refuse(format!("the old table {db}.{} does not exist", cfg.ghost_table()), "give the migration's old table with --old-table"))?;
    let alter = parse_alter(&cfg.alter).map_err(|e| refuse(format!("{e}"), "give the migration's own --alter"))?;
    let mut notes = vec![format!(
        "--revert: {db}.{} is brought up to date from the kept checkpoint and swapped back in; {db}.{} will be kept as {}",
        cfg.ghost_table(),
        cfg.table,
        cfg.old_table()
    )];
    let renames: HashMap<String, String> = preflight::renamed_columns(cfg, &alter, &mut notes)?.into_iter().map(|(a, b)| (b.to_ascii_lowercase(), a)).collect();
    let dropped: HashSet<String> = original
        .columns
        .iter()
        .map(|c| c.name.to_ascii_lowercase())
        .filter(|n| old.column(renames.get(n).unwrap_or(n)).is_none())
        .collect();
    let mapping = map_columns(&original, &old, &renames, &dropped)
        .map_err(|e| refuse(format!("the table and the old table share no unique key: {e}"), "a revert needs the PRIMARY KEY (or a NOT NULL UNIQUE KEY) both have"))?;
    let triggers = preflight::check_triggers(conn, cfg, &cfg.table, &mut notes).await?;
    let old_triggers: Option<u64> = conn
        .exec_first("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?", (db, cfg.ghost_table()))
        .await?;
    if !triggers.is_empty() || old_triggers.unwrap_or(0) > 0 || cfg.triggers.is_some() {
        // The stream's rows would fire the old table's triggers; moving triggers back is not built.
        return Err(refuse(
            format!("{db}.{} or {db}.{} has triggers: reverting a table with triggers is not supported", cfg.table, cfg.ghost_table()),
            "drop the old table's triggers first (the current table keeps its own), or swap back by hand with RENAME TABLE; nothing was changed",
        ));
    }
    Ok(Plan { mariadb, version, original, alter, new_structure: old, mapping, renames, notes, triggers })
}

/// The old table's name for the migrated one must be free (or `--initially-drop-old-table`).
pub(super) async fn check_reverted_name(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<Vec<String>> {
    let name = cfg.old_table();
    if schema::read_table(conn, &cfg.database, &name).await?.is_none() || cfg.run.resume {
        return Ok(Vec::new());
    }
    match cfg.initially_drop_old_table {
        true => Ok(vec![format!("DROP TABLE {}", qualified(&cfg.database, &name))]),
        false => Err(refuse(format!("table {}.{name} already exists", cfg.database), "drop it after checking it holds nothing you need, or pass --initially-drop-old-table")),
    }
}

/// A fresh revert begins: on MySQL the binary logs since the swap must still be there (MariaDB's stream refuses a
/// purged start), `--initially-drop-old-table`'s drop, then the checkpoint rewritten.
pub(super) async fn start(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, plan: &Plan, st: &CheckpointState, actions: &[String]) -> Result<CheckpointState> {
    if !plan.mariadb {
        super::resume::check_position_kept(conn, st).await?;
    }
    for a in actions {
        conn.query_drop(a.as_str()).await?;
    }
    rewrite_checkpoint(conn, cfg, plan).await
}

/// A fresh revert: the changelog table again, the summary turned into the revert's (past the copy, before any
/// cut-over; the old table's name for the migrated one), every apply row at the furthest one (the position the
/// swap was made at: the least could be a batch before the migration's last one, whose events were written to the
/// table with its old structure). Returns the checkpoint as a resume reads it.
async fn rewrite_checkpoint(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, plan: &Plan) -> Result<CheckpointState> {
    let (db, ck) = (&cfg.database, qualified(&cfg.database, &cfg.checkpoint_table()));
    let changelog = qualified(db, &cfg.changelog_table());
    conn.query_drop(format!("DROP TABLE IF EXISTS {changelog}")).await?;
    conn.query_drop(super::setup::changelog_statement(&changelog, "revenant changelog")).await.wrap_err("creating the changelog table")?;
    let text = format!("{REVERT_MARK}{}", plan.alter.clause);
    let mut tx = conn.start_transaction(mysql_async::TxOpts::default()).await?;
    tx.exec_drop(
        format!("UPDATE {ck} SET phase = 'catchup', ghost_table = ?, alter_statement = ?, alter_fingerprint = ?, table_fingerprint = ?, cutover_started = NULL, cutover_complete = 0 WHERE id = ?"),
        (cfg.ghost_table(), &text, checkpoint::fingerprint(&plan.alter.clause), checkpoint::table_fingerprint(&plan.original.create_statement), checkpoint::SUMMARY),
    )
    .await?;
    tx.exec_drop(format!("UPDATE {ck} SET table_name = ? WHERE id = ?"), (cfg.old_table(), checkpoint::OLD_TABLE)).await?;
    let furthest: Option<(String, String, u64, u64)> = tx
        .exec_first(
            format!("SELECT applied_gtid_set, applied_file, applied_pos, batches_applied FROM {ck} WHERE id = ? OR id LIKE ? ORDER BY batches_applied DESC LIMIT 1"),
            (checkpoint::APPLY, format!("{}#%", checkpoint::APPLY)),
        )
        .await?;
    let Some((gtid, file, pos, batches)) = furthest else { color_eyre::eyre::bail!("{ck} has no apply row") };
    tx.exec_drop(
        format!("UPDATE {ck} SET applied_gtid_set = ?, applied_file = ?, applied_pos = ?, batches_applied = ? WHERE id = ? OR id LIKE ?"),
        (&gtid, &file, pos, batches, checkpoint::APPLY, format!("{}#%", checkpoint::APPLY)),
    )
    .await?;
    tx.commit().await.wrap_err("recording the revert in the checkpoint")?;
    tracing::info!("--revert: streaming from the migration's swap at {gtid} ({file}:{pos}); nothing is copied");
    checkpoint::read(conn, db, &cfg.checkpoint_table()).await?.ok_or_else(|| color_eyre::eyre::eyre!("{ck} vanished"))
}

/// The migration's own renames (its old table is the revert's ghost), which the revert's stream reads after its
/// start position (the atomic swap, the two-step pair): the revert applies nothing for them.
pub(super) fn migration_renames(cfg: &MigrationConfig) -> Vec<String> {
    let q = |t: &str| qualified(&cfg.database, t);
    let r = swap::renames(&q(&cfg.table), &q(&cfg.ghost_table()), &q(&cfg.migration_ghost_table()));
    vec![r.atomic, r.away, r.ghost_in]
}

/// What a dry run of a revert says.
pub(super) fn dry_run_steps(cfg: &MigrationConfig, plan: &Plan) -> Vec<String> {
    let mut steps = plan.notes.clone();
    steps.push(format!("would stream {}.{}'s changes since the migration's swap into {} (nothing copied), verify both, and swap {} back in", cfg.database, cfg.table, cfg.ghost_table(), cfg.ghost_table()));
    steps
}
