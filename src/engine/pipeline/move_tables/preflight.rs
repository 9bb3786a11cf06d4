//! move-tables' preflight: both servers (GTIDs on, one flavour, the target database there), where the source
//! tables stand (serving, or all fenced), the heartbeat table's owner, and what a dry run reports.

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::checkpoint;
use crate::engine::copy::copier::estimate_rows;
use crate::engine::plan::preflight::{refuse, Plan};
use crate::engine::stream::gtid::GtidSet;

use super::{MoveTablesConfig, SourceState, CHANGELOG_TABLE, CHECKPOINT_TABLE};

pub(super) async fn table_exists(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<bool> {
    let n: Option<String> = conn
        .exec_first("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (db, table))
        .await
        .wrap_err_with(|| format!("looking for {db}.{table}"))?;
    Ok(n.is_some())
}

pub(super) async fn source_state(conn: &mut mysql_async::Conn, cfg: &MoveTablesConfig) -> Result<SourceState> {
    let mut serving = 0;
    let mut fenced = 0;
    for t in &cfg.tables {
        let here = table_exists(conn, &cfg.database, t).await?;
        let away = table_exists(conn, &cfg.database, &MoveTablesConfig::old_table(t)).await?;
        if !here && !away {
            return Err(refuse(
                format!("table {}.{t} does not exist on the source {}", cfg.database, cfg.source.display()),
                "check --database and --tables",
            ));
        }
        serving += usize::from(here);
        fenced += usize::from(away);
    }
    let n = cfg.tables.len();
    if serving == n && fenced == 0 {
        Ok(SourceState::Serving)
    } else if fenced == n && serving == 0 {
        Ok(SourceState::Fenced)
    } else {
        Err(refuse(
            format!(
                "the source tables are neither all serving nor all fenced ({serving} of {n} under their names, {fenced} of {n} as _<t>_del)"
            ),
            "check the tables on the source by hand: the fence renames them all in one statement, so revenant did not do this",
        ))
    }
}

pub(super) async fn gtid_executed(conn: &mut mysql_async::Conn, mariadb: bool) -> Result<String> {
    let q = if mariadb { "SELECT @@GLOBAL.gtid_binlog_pos" } else { "SELECT @@GLOBAL.gtid_executed" };
    let v: Option<String> = conn.query_first(q).await.wrap_err("reading the source's executed GTID set")?;
    Ok(GtidSet::parse(mariadb, &v.unwrap_or_default())?.to_string())
}

pub(super) async fn check_gtids(conn: &mut mysql_async::Conn, which: &str) -> Result<bool> {
    let version: String = conn.query_first("SELECT @@version").await?.unwrap_or_default();
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    if !mariadb {
        let mode: Option<String> = conn.query_first("SELECT @@GLOBAL.gtid_mode").await.wrap_err("reading gtid_mode")?;
        let mode = mode.unwrap_or_default();
        if !mode.eq_ignore_ascii_case("ON") {
            return Err(refuse(
                format!("gtid_mode is {mode} on the {which} server"),
                "enable GTIDs on both servers (gtid_mode=ON, enforce_gtid_consistency=ON): move-tables records positions as GTID sets",
            ));
        }
    }
    Ok(mariadb)
}

/// The comment of the source's [`CHANGELOG_TABLE`], if it exists.
pub(super) async fn changelog_comment(conn: &mut mysql_async::Conn, cfg: &MoveTablesConfig) -> Result<Option<String>> {
    conn.exec_first(
        "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (cfg.database.as_str(), CHANGELOG_TABLE),
    )
    .await
    .wrap_err_with(|| format!("looking for {}.{CHANGELOG_TABLE} on the source", cfg.database))
}

/// What a dry run reports: what was validated on both servers, and what `--execute` would do.
#[allow(clippy::too_many_arguments)]
pub(super) async fn dry_run_plan(
    src: &mut mysql_async::Conn,
    cfg: &MoveTablesConfig,
    plans: &[(String, Plan)],
    state: Option<&checkpoint::CheckpointState>,
    source_now: SourceState,
    mariadb: bool,
    changelog_exists: bool,
) -> Result<Vec<String>> {
    let flavor = if mariadb { "MariaDB" } else { "MySQL" };
    let mut steps = vec![format!(
        "validated: source {} and target {} ({flavor}, GTIDs on both); target database {} exists",
        cfg.source.display(),
        cfg.target.display(),
        cfg.target_database
    )];
    for (t, plan) in plans {
        let estimate = estimate_rows(src, &cfg.database, &plan.original.name, false).await?;
        steps.push(format!(
            "validated {}.{}: key {} ({}); {} columns copied; about {estimate} rows",
            cfg.database,
            if source_now == SourceState::Fenced { MoveTablesConfig::old_table(t) } else { t.clone() },
            plan.mapping.key.name,
            plan.mapping.key.columns.join(", "),
            plan.mapping.shared.len()
        ));
        steps.extend(plan.notes.iter().map(|n| format!("{}: {n}", t)));
    }
    match state {
        Some(st) => steps.push(format!(
            "would resume the move recorded in {}.{CHECKPOINT_TABLE} on the target (phase {}, applied {})",
            cfg.target_database,
            st.phase,
            if st.applied_gtid_set.is_empty() { "(nothing yet)" } else { &st.applied_gtid_set }
        )),
        None => {
            steps.push(format!(
                "would create on the target: {} in {} ({}) and the checkpoint table {}.{CHECKPOINT_TABLE}",
                cfg.tables_text(),
                cfg.target_database,
                cfg.alter.as_deref().map(|a| format!("with {a}")).unwrap_or_else(|| "the source's definition".into()),
                cfg.target_database
            ));
            steps.push(format!(
                "would {} the heartbeat table {}.{CHANGELOG_TABLE} on the source",
                if changelog_exists { "reuse" } else { "create" },
                cfg.database
            ));
            steps.push(format!(
                "would copy in chunks of {} under source share locks, apply the source's binary log to the target",
                cfg.run.chunk_size
            ));
        }
    }
    if source_now == SourceState::Serving {
        steps.push(format!(
            "would wait at the gate{}, run the before-cut-over hooks, then fence the source with: {}",
            if cfg.run.postpone_cut_over || cfg.run.postpone_cut_over_flag_file.is_some() { " (postponed until approved)" } else { "" },
            cfg.fence_statement()
        ));
    }
    steps.push("would drain to the GTID read after the fence, then run the success hooks".into());
    steps.push("dry run: nothing was changed on either server; run it without --dry-run to move".into());
    Ok(steps)
}

pub(super) async fn table_exists_db(conn: &mut mysql_async::Conn, db: &str) -> Result<bool> {
    let n: Option<String> = conn
        .exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,))
        .await
        .wrap_err("looking for the target database")?;
    Ok(n.is_some())
}
