//! Preflight: every check that can refuse a migration, run before anything is created. Each refusal is one message
//! that says what is wrong and what to do. The ALTER itself is validated on a session-private temporary copy of the
//! table's definition, so a dry run changes nothing.

use std::collections::HashMap;

use color_eyre::eyre::{eyre, Report, Result, WrapErr};
use color_eyre::Section;
use mysql_async::prelude::Queryable;

use crate::engine::plan::alter::{parse_alter, AlterPlan};
use crate::engine::config::{MigrationConfig, OnReplica};
use crate::engine::cutover::triggers::{self, TriggerDef};
use crate::engine::plan::schema::{map_columns, read_table, ColumnMapping, TableInfo};
use crate::engine::sql::{qualified, quote_ident};

/// What preflight learned; the migration runs from it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mariadb: bool,
    pub version: String,
    pub original: TableInfo,
    pub alter: AlterPlan,
    /// The new structure, as the ALTER produced it on a temporary table.
    pub new_structure: TableInfo,
    pub mapping: ColumnMapping,
    pub renames: HashMap<String, String>,
    pub notes: Vec<String>,
    /// The original's triggers (with `--include-triggers`; a table with triggers is refused otherwise).
    pub triggers: Vec<TriggerDef>,
}

/// A refusal: the message, and what to do.
pub fn refuse(what: impl Into<String>, todo: impl Into<String>) -> Report {
    eyre!(what.into()).suggestion(todo.into())
}

async fn var(conn: &mut mysql_async::Conn, name: &str) -> Result<Option<String>> {
    let q = format!("SELECT @@GLOBAL.{name}");
    match conn.query_first::<Option<String>, _>(q).await {
        Ok(v) => Ok(v.flatten()),
        Err(mysql_async::Error::Server(e)) if e.code == 1193 => Ok(None),
        Err(e) => Err(e).wrap_err_with(|| format!("reading @@{name}")),
    }
}

/// A server that replicates from another is refused unless the run was asked to work on a replica (gh-ost's
/// `--migrate-on-replica` / `--test-on-replica`): replica mode has changed `--host` to its primary by now. A
/// read-only one always; a writable one unless `allow_master_master` says it is one of two primaries that
/// replicate from each other.
async fn refuse_replica(conn: &mut mysql_async::Conn, mariadb: bool, cfg: &MigrationConfig) -> Result<()> {
    let q = if mariadb { "SHOW SLAVE STATUS" } else { "SHOW REPLICA STATUS" };
    if let Some(mode) = cfg.on_replica {
        return require_replica(conn, q, cfg, mode).await;
    }
    let read_only = var(conn, "read_only").await?.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("on"));
    let server = cfg.source.display();
    let rows: Vec<mysql_async::Row> = match conn.query(q).await {
        Ok(rows) => rows,
        // Not allowed to look (MariaDB wants REPLICA MONITOR for it): a writable server is taken for the primary,
        // as before this check existed; a read-only one cannot be migrated on anyway.
        Err(mysql_async::Error::Server(e)) if matches!(e.code, 1227 | 1142 | 1044) && !read_only => {
            tracing::warn!("{server}: cannot run {q} ({}); taking the server for the primary", e.message);
            return Ok(());
        }
        Err(e) => {
            return Err(Report::new(e).wrap_err(format!("{q} on {server}")).suggestion(
                "revenant checks that --host is the primary: GRANT REPLICATION CLIENT (on MariaDB also SLAVE MONITOR) ON *.*",
            ))
        }
    };
    let Some(row) = rows.first() else { return Ok(()) };
    let get = |names: [&str; 2]| names.iter().find_map(|n| row.get_opt::<String, _>(*n).and_then(|r| r.ok())).unwrap_or_else(|| "?".into());
    let primary = format!("{}:{}", get(["Source_Host", "Master_Host"]), get(["Source_Port", "Master_Port"]));
    if cfg.allow_master_master && !read_only {
        tracing::info!("{server} replicates from {primary}; taken for one of two primaries, as --allow-master-master says");
        return Ok(());
    }
    let todo = format!("point --host at the primary {primary} (gh-ost's runbooks add --allow-on-master)");
    if read_only {
        return Err(refuse(format!("{server} is a replica (it replicates from {primary}, read_only=ON)"), format!("{todo}; to run the whole migration on this replica, add --migrate-on-replica or --test-on-replica")));
    }
    Err(refuse(
        format!("{server} is a replica (it replicates from {primary})"),
        format!("{todo}; if the two servers are writable primaries replicating from each other, add --allow-master-master"),
    ))
}

/// `--test-on-replica` / `--migrate-on-replica`: `--host` must be a replica, and one revenant can write on.
async fn require_replica(conn: &mut mysql_async::Conn, q: &str, cfg: &MigrationConfig, mode: OnReplica) -> Result<()> {
    let flag = match mode {
        OnReplica::Migrate => "--migrate-on-replica",
        OnReplica::Test { .. } => "--test-on-replica",
    };
    let server = cfg.source.display();
    let rows: Vec<mysql_async::Row> = conn.query(q).await.map_err(|e| {
        Report::new(e).wrap_err(format!("{q} on {server}")).suggestion(format!("{flag} checks that --host is a replica: GRANT REPLICATION CLIENT (on MariaDB also SLAVE MONITOR) ON *.*"))
    })?;
    if rows.is_empty() {
        return Err(refuse(format!("{flag}: {server} replicates from nobody"), format!("point --host at a replica, or leave out {flag} to migrate on this server")));
    }
    if var(conn, "super_read_only").await?.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("on")) {
        return Err(refuse(format!("{flag}: super_read_only is ON on {server}: revenant cannot create the ghost table there"), "SET GLOBAL super_read_only = OFF on the replica for the run (read_only may stay ON for a user with SUPER or CONNECTION_ADMIN)"));
    }
    tracing::info!("{flag}: the whole migration runs on the replica {server}; its primary is not touched");
    Ok(())
}

/// Runs every check; returns the plan or the first refusal.
pub async fn run(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<Plan> {
    run_on(conn, cfg, &cfg.table).await
}

/// [`run`] on the original table under another name (`_<t>_del` once a cut-over renamed it away).
pub async fn run_on(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, original_name: &str) -> Result<Plan> {
    let (mariadb, version) = check_server(conn, cfg).await?;
    let (original, alter) = check_table_and_alter(conn, cfg, original_name).await?;
    let mut notes = Vec::new();
    if let Some(replica) = &cfg.binlog_source {
        notes.push(format!("replica mode: the binary log of {} is streamed; the table is changed on its primary {}", replica.display(), cfg.source.display()));
    }
    if let Some(mode) = cfg.on_replica {
        notes.push(match mode {
            OnReplica::Migrate => format!("--migrate-on-replica: everything runs on the replica {}, the cut-over included; replication goes on", cfg.source.display()),
            OnReplica::Test { .. } => format!("--test-on-replica: everything runs on the replica {}; replication is stopped before the cut-over, and the tables are swapped back right after it (the migrated copy stays as {})", cfg.source.display(), cfg.ghost_table()),
        });
        notes.push("the replica's own writes (ghost, changelog, checkpoint, renames) get its own GTIDs, as with gh-ost: mind them before promoting this replica".into());
    }
    check_relations(conn, cfg, original_name, &mut notes).await?;
    let triggers = check_triggers(conn, cfg, original_name, &mut notes).await?;
    let renames = renamed_columns(cfg, &alter, &mut notes)?;
    let new_structure = validate_on_temporary(conn, cfg, original_name, &alter).await?;
    let mapping = map_columns(&original, &new_structure, &renames, &alter.dropped_columns).map_err(|e| {
        refuse(
            format!("no PRIMARY nor UNIQUE key found in table that the old and new schema share: {e}"),
            "keep a PRIMARY KEY or a NOT NULL UNIQUE KEY on the same columns in the new schema",
        )
    })?;
    refuse_time_zone_dependent_key(&mapping, &new_structure)?;
    if mapping.nullable_key {
        check_nullable_key(conn, cfg, original_name, &mapping).await?;
        notes.push(format!(
            "--allow-nullable-unique-key: the table is migrated by `{}` ({}), whose columns allow NULL; no row holds one now, and a NULL written during the run stops it before the cut-over",
            mapping.key.name,
            mapping.key.columns.join(", ")
        ));
    }
    Ok(Plan { mariadb, version, original, alter, new_structure, mapping, renames, notes, triggers })
}

/// The migration's key allows NULL: refused without `--allow-nullable-unique-key`, and while any row holds a NULL
/// in it (a row no key range reaches would be lost).
async fn check_nullable_key(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, original_name: &str, mapping: &ColumnMapping) -> Result<()> {
    let key = format!("`{}` ({})", mapping.key.name, mapping.key.columns.join(", "));
    if !cfg.allow_nullable_unique_key {
        return Err(refuse(
            format!("the only unique key the old and the new schema share, {key}, allows NULL"),
            "add a PRIMARY KEY or make the key's columns NOT NULL; or give --allow-nullable-unique-key (gh-ost's flag) if no row holds a NULL in it: revenant checks that, and stops before the cut-over if one is written; nothing was changed",
        ));
    }
    let nulls = null_key_rows(conn, &cfg.database, original_name, mapping).await?;
    if nulls > 0 {
        return Err(refuse(
            format!("{nulls} row(s) of {}.{original_name} hold a NULL in the key {key}: no key range reaches them, so they would be lost", cfg.database),
            "set those values, or add a PRIMARY KEY or a NOT NULL UNIQUE KEY; nothing was changed",
        ));
    }
    Ok(())
}

/// How many rows of `db.table` hold a NULL in a column of the mapping's keys.
pub async fn null_key_rows(conn: &mut mysql_async::Conn, db: &str, table: &str, mapping: &ColumnMapping) -> Result<u64> {
    let cond: Vec<String> = mapping.key_source_columns().iter().map(|c| format!("{} IS NULL", quote_ident(c))).collect();
    let q = format!("SELECT COUNT(*) FROM {} WHERE {}", qualified(db, table), cond.join(" OR "));
    let n: Option<u64> = conn.query_first(&q).await.wrap_err_with(|| format!("counting the rows of {db}.{table} with a NULL key"))?;
    Ok(n.unwrap_or(0))
}

/// A key column changed between DATETIME and TIMESTAMP: the conversion depends on the session's time zone, so the
/// key values can change (and two rows can meet on one key): refused, as gh-ost does.
fn refuse_time_zone_dependent_key(mapping: &ColumnMapping, ghost: &TableInfo) -> Result<()> {
    for name in &mapping.key.columns {
        let Some((orig, ghost_name)) = mapping.shared.iter().find(|(c, _)| c.name.eq_ignore_ascii_case(name)) else { continue };
        let Some(new) = ghost.column(ghost_name) else { continue };
        let pair = (orig.data_type.as_str(), new.data_type.as_str());
        if matches!(pair, ("datetime", "timestamp") | ("timestamp", "datetime")) {
            return Err(refuse(
                format!(
                    "the ALTER changes the key column `{}` from {} to {}: that conversion depends on the session's time \
                     zone, so key values could change and rows could collide",
                    orig.name,
                    orig.data_type.to_ascii_uppercase(),
                    new.data_type.to_ascii_uppercase()
                ),
                "change the column's type in a migration that keys the table by another unique key, or with the server's own ALTER; nothing was changed",
            ));
        }
    }
    Ok(())
}

/// The server: a supported version, the primary, the binary log as revenant reads it, the privilege to read it.
pub(crate) async fn check_server(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<(bool, String)> {
    let version: String = conn.query_first("SELECT @@version").await?.unwrap_or_default();
    let comment: String = conn.query_first("SELECT @@version_comment").await?.unwrap_or_default();
    let mariadb = version.to_ascii_lowercase().contains("mariadb") || comment.to_ascii_lowercase().contains("mariadb");
    let major: u32 = version.split('.').next().and_then(|s| s.parse().ok()).unwrap_or(0);
    if mariadb && major < 10 || !mariadb && major < 8 {
        return Err(refuse(
            format!("server version {version} is not supported"),
            "revenant supports MariaDB 10.6+ and MySQL 8.0+",
        ));
    }
    refuse_replica(conn, mariadb, cfg).await?;
    match &cfg.binlog_source {
        Some(replica) => {
            let mut c = crate::engine::connection::connect(replica.opts()).await.wrap_err_with(|| format!("connecting to the replica {}", replica.display()))?;
            let checked = check_binlog(&mut c, mariadb, Some(replica)).await;
            let _ = c.disconnect().await;
            checked.map_err(|e| e.wrap_err(format!("the replica {} (replica mode streams its binary log)", replica.display())))?;
        }
        None => check_binlog(conn, mariadb, cfg.on_replica.map(|_| &cfg.source)).await?,
    }
    if let Some(id) = cfg.replica_server_id {
        check_server_id_free(cfg, id, mariadb).await?;
    }
    Ok((mariadb, version))
}

/// `--replica-server-id`: not the streamed server's own id, nor one of its replicas' (the server would drop the
/// replica whose id the stream takes).
async fn check_server_id_free(cfg: &MigrationConfig, id: u32, mariadb: bool) -> Result<()> {
    let server = cfg.binlog_server();
    let mut c = crate::engine::connection::connect(server.opts()).await.wrap_err_with(|| format!("connecting to {}", server.display()))?;
    let own: u32 = c.query_first("SELECT @@server_id").await?.unwrap_or(0);
    let rows: Vec<mysql_async::Row> = c.query(if mariadb { "SHOW SLAVE HOSTS" } else { "SHOW REPLICAS" }).await.unwrap_or_default();
    let _ = c.disconnect().await;
    // MariaDB's SHOW SLAVE HOSTS says Server_id, MySQL's SHOW REPLICAS Server_Id.
    let id_of = |r: &mysql_async::Row| ["Server_id", "Server_Id"].iter().find_map(|n| r.get_opt::<u32, _>(*n).and_then(|v| v.ok()));
    let taken = rows.iter().find(|r| id_of(r) == Some(id));
    let who = match (own == id, taken) {
        (true, _) => format!("{} itself", server.display()),
        (false, Some(r)) => {
            let host: String = r.get_opt("Host").and_then(|v| v.ok()).unwrap_or_default();
            let port: u32 = r.get_opt("Port").and_then(|v| v.ok()).unwrap_or(0);
            format!("its replica {host}:{port}")
        }
        (false, None) => return Ok(()),
    };
    Err(refuse(
        format!("--replica-server-id {id} is the server id of {who}: the binary log stream would take its place"),
        "give an id no server of the topology has (gh-ost's default is 99999), or leave the flag out",
    ))
}

/// The binary log as revenant reads it, on the server it streams from (`replica`: in replica mode, which also
/// needs the primary's changes logged there), and the privilege to read it.
async fn check_binlog(conn: &mut mysql_async::Conn, mariadb: bool, replica: Option<&crate::engine::config::ConnectionConfig>) -> Result<()> {
    if let Some(r) = replica {
        let updates = var(conn, "log_slave_updates").await?.unwrap_or_default();
        if updates != "1" && !updates.eq_ignore_ascii_case("on") {
            return Err(refuse(
                format!("log_slave_updates is OFF on the replica {}: the primary's changes are not in its binary log", r.display()),
                "start the replica with --log-slave-updates (log_replica_updates), or point --host at the primary",
            ));
        }
    }
    let log_bin = var(conn, "log_bin").await?.unwrap_or_default();
    if log_bin != "1" && !log_bin.eq_ignore_ascii_case("on") {
        return Err(refuse("log_bin is OFF on the server", "start the server with --log-bin: revenant reads the binary log"));
    }
    let format = var(conn, "binlog_format").await?.unwrap_or_default();
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(refuse(
            format!("binlog_format is {format}, not ROW"),
            "SET GLOBAL binlog_format='ROW' (and in the server's configuration), then reconnect the writers",
        ));
    }
    let image = var(conn, "binlog_row_image").await?.unwrap_or_default();
    if !image.eq_ignore_ascii_case("FULL") {
        return Err(refuse(
            format!("binlog_row_image is {image}, not FULL"),
            "SET GLOBAL binlog_row_image='FULL': revenant needs whole row images",
        ));
    }
    if mariadb {
        if var(conn, "log_bin_compress").await?.as_deref() == Some("1") {
            return Err(refuse("log_bin_compress is ON", "SET GLOBAL log_bin_compress=OFF: compressed row events cannot be read"));
        }
    } else {
        if var(conn, "binlog_transaction_compression").await?.as_deref() == Some("1") {
            return Err(refuse(
                "binlog_transaction_compression is ON",
                "SET GLOBAL binlog_transaction_compression=OFF for the duration of the migration",
            ));
        }
        let gtid_mode = var(conn, "gtid_mode").await?.unwrap_or_default();
        if !gtid_mode.eq_ignore_ascii_case("ON") {
            return Err(refuse(
                format!("gtid_mode is {gtid_mode}"),
                "enable GTIDs (gtid_mode=ON, enforce_gtid_consistency=ON): positions and checkpoints are GTID sets",
            ));
        }
        let opts = var(conn, "binlog_row_value_options").await?.unwrap_or_default();
        if opts.to_ascii_uppercase().contains("PARTIAL_JSON") {
            return Err(refuse(
                "binlog_row_value_options=PARTIAL_JSON",
                "SET GLOBAL binlog_row_value_options='': partial JSON updates lack the whole value",
            ));
        }
    }
    // Privileges: the binlog stream needs REPLICATION SLAVE; the rest is found out by doing.
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.wrap_err("SHOW GRANTS")?;
    let all = grants.join("\n").to_ascii_uppercase();
    if !all.contains("ALL PRIVILEGES ON *.*") && !all.contains("REPLICATION SLAVE") && !all.contains("REPLICATION REPLICA") {
        return Err(refuse(
            "the user lacks REPLICATION SLAVE (needed to read the binary log)",
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the migration user",
        ));
    }
    Ok(())
}

/// The table (there, InnoDB) and the ALTER (one clause list that names no other table and renames nothing).
async fn check_table_and_alter(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, original_name: &str) -> Result<(TableInfo, AlterPlan)> {
    // The table.
    let original = read_table(conn, &cfg.database, original_name).await?.ok_or_else(|| {
        refuse(
            format!("table {}.{} does not exist", cfg.database, original_name),
            "check --database and --table",
        )
    })?;
    if !original.engine.eq_ignore_ascii_case("InnoDB") {
        return Err(refuse(
            format!("{}.{} uses the {} engine", cfg.database, original_name, original.engine),
            "only InnoDB tables can be migrated online",
        ));
    }
    // The ALTER.
    let alter = parse_alter(&cfg.alter).map_err(|e| refuse(format!("{e}"), "give --alter a clause like \"ADD COLUMN c INT\""))?;
    if let Some(t) = &alter.named_table {
        if !t.eq_ignore_ascii_case(&cfg.table) {
            return Err(refuse(
                format!("the ALTER names table {t} but --table is {}", cfg.table),
                "make --table and the ALTER agree",
            ));
        }
    }
    if let Some(d) = &alter.named_database {
        if !d.eq_ignore_ascii_case(&cfg.database) {
            return Err(refuse(
                format!("the ALTER names database {d} but --database is {}", cfg.database),
                "make --database and the ALTER agree",
            ));
        }
    }
    if alter.renames_table {
        return Err(refuse(
            "alter statement seems to RENAME the table",
            "rename a table with RENAME TABLE, not through an online migration",
        ));
    }
    if alter.adds_foreign_key {
        return Err(refuse("the ALTER adds a foreign key", "foreign keys are not supported by triggerless migrations"));
    }
    Ok((original, alter))
}

/// No foreign key on either side (child-side ones only discarded when asked) and no trigger: a triggerless copy
/// cannot keep them.
async fn check_relations(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, original_name: &str, notes: &mut Vec<String>) -> Result<()> {
    let child: Vec<String> = conn
        .exec(
            "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA=? AND TABLE_NAME=? \
             ORDER BY CONSTRAINT_NAME",
            (&cfg.database, original_name),
        )
        .await?;
    match (child.first(), cfg.discard_foreign_keys) {
        (Some(fk), false) => {
            return Err(refuse(
                format!("Child-side foreign keys are not supported. Bailing out ({}.{} has foreign key {fk})", cfg.database, original_name),
                "drop the foreign key first, migrate with --discard-foreign-keys (the new table has none), or use a blocking ALTER",
            ))
        }
        (Some(_), true) => notes.push(format!(
            "--discard-foreign-keys: the new table is created without the foreign keys {} (after the cut-over {}.{} has none)",
            child.join(", "),
            cfg.database,
            cfg.table
        )),
        (None, _) => {}
    }
    let parent: Option<(String, String)> = conn
        .exec_first(
            "SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE UNIQUE_CONSTRAINT_SCHEMA=? AND REFERENCED_TABLE_NAME=? LIMIT 1",
            (&cfg.database, original_name),
        )
        .await?;
    if let Some((t, fk)) = parent {
        return Err(refuse(
            format!("Parent-side foreign keys are not supported. Bailing out ({t} references {}.{} through {fk})", cfg.database, original_name),
            "drop the referencing foreign key first",
        ));
    }
    Ok(())
}

/// The original's triggers: refused without `--include-triggers`; with it, read and their new names checked.
pub(crate) async fn check_triggers(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, original_name: &str, notes: &mut Vec<String>) -> Result<Vec<TriggerDef>> {
    let defs = triggers::read(conn, &cfg.database, original_name).await?;
    let Some(first) = defs.first() else { return Ok(defs) };
    let Some(naming) = &cfg.triggers else {
        return Err(refuse(
            format!("{}.{} has trigger {} (and {} in all)", cfg.database, original_name, first.name, defs.len()),
            "migrate with --include-triggers --trigger-suffix=_v2 (the triggers are created on the new table at the cut-over), or drop them, migrate, and re-create them",
        ));
    };
    triggers::check_names(conn, &cfg.database, &defs, naming)
        .await
        .map_err(|e| refuse(format!("{e:#}"), "choose another --trigger-suffix (letters, digits, _): the names must fit 64 characters and be free"))?;
    let renamed: Vec<String> = defs.iter().map(|d| format!("{} -> {}", d.name, naming.ghost_name(&d.name))).collect();
    notes.push(format!("--include-triggers: created on the new table at the cut-over: {}", renamed.join(", ")));
    Ok(defs)
}

/// The columns the ALTER renames, confirmed (`--approve-renamed-columns`) or skipped (`--skip-renamed-columns`).
pub(crate) fn renamed_columns(cfg: &MigrationConfig, alter: &AlterPlan, notes: &mut Vec<String>) -> Result<HashMap<String, String>> {
    // Renamed columns.
    let mut renames = alter.renames.clone();
    if !renames.is_empty() {
        let list: Vec<String> = renames.iter().map(|(a, b)| format!("{a} -> {b}")).collect();
        if cfg.skip_renamed_columns {
            notes.push(format!("renamed columns skipped (their data is not copied): {}", list.join(", ")));
            renames.clear();
        } else if !cfg.approve_renamed_columns {
            return Err(refuse(
                format!("the ALTER renames columns ({}): as a precaution, confirm it", list.join(", ")),
                "add --approve-renamed-columns if revenant read the renames right, or --skip-renamed-columns to not copy them",
            ));
        } else {
            notes.push(format!("renamed columns approved: {}", list.join(", ")));
        }
    }
    Ok(renames)
}

/// The new structure: the ALTER run on a temporary table with the same definition (private to this session; not
/// logged), read back and named as the ghost.
async fn validate_on_temporary(conn: &mut mysql_async::Conn, cfg: &MigrationConfig, original_name: &str, alter: &AlterPlan) -> Result<TableInfo> {
    // Session-private, so one short name serves any table (a table name near 64 characters leaves no room for
    // suffixes).
    let tmp = "_revenant_preflight".to_string();
    let tmpq = qualified(&cfg.database, &tmp);
    conn.query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {tmpq}")).await?;
    conn.query_drop(format!("CREATE TEMPORARY TABLE {tmpq} LIKE {}", qualified(&cfg.database, original_name)))
        .await
        .wrap_err("creating a temporary copy of the table's definition to validate the ALTER")?;
    let altered = conn.query_drop(format!("ALTER TABLE {tmpq} {}", alter.clause)).await;
    if let Err(e) = altered {
        let _ = conn.query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {tmpq}")).await;
        return Err(refuse(format!("the server rejects the ALTER: {e}"), "fix the ALTER clause; nothing was changed"));
    }
    let new_structure = read_table(conn, &cfg.database, &tmp).await?;
    conn.query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {tmpq}")).await?;
    let mut new_structure = new_structure.ok_or_else(|| eyre!("the temporary table vanished"))?;
    new_structure.name = cfg.ghost_table();
    Ok(new_structure)
}

/// Checks the artifact tables: a leftover ghost or old table stops a fresh run unless the user asked to drop it.
pub async fn check_artifacts(conn: &mut mysql_async::Conn, cfg: &MigrationConfig) -> Result<Vec<String>> {
    let mut actions = Vec::new();
    for (name, flag_ok, flag) in [
        (cfg.ghost_table(), cfg.initially_drop_ghost_table, "--initially-drop-ghost-table"),
        (cfg.old_table(), cfg.initially_drop_old_table, "--initially-drop-old-table"),
    ] {
        let present: Option<String> = conn
            .exec_first(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME=?",
                (&cfg.database, &name),
            )
            .await?;
        if present.is_some() && !cfg.run.resume {
            if flag_ok {
                actions.push(format!("DROP TABLE {}", qualified(&cfg.database, &name)));
            } else {
                return Err(refuse(
                    format!("table {}.{} already exists", cfg.database, name),
                    format!("drop it yourself after checking it holds nothing you need, or pass {flag}"),
                ));
            }
        }
    }
    let checkpoint: Option<String> = conn
        .exec_first(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME=?",
            (&cfg.database, cfg.checkpoint_table()),
        )
        .await?;
    if checkpoint.is_some() && !cfg.run.resume {
        return Err(refuse(
            format!(
                "a checkpoint of an earlier migration exists ({}.{})",
                cfg.database,
                quote_ident(&cfg.checkpoint_table())
            ),
            "run the same command with --resume to continue it, or see docs/checkpoints.md to clean up by hand",
        ));
    }
    Ok(actions)
}
