//! Every preflight refusal on every selected flavour. Each refusal case asserts (a) that the migration fails with the
//! expected message and (b) that nothing was created or changed: the database's tables and their `SHOW CREATE TABLE`
//! are the same before and after (so no `_t_gho`, `_t_ghc`, `_t_ghk`, `_t_del`), and the binary log did not move
//! (a refused or dry-run migration writes nothing that replicas would receive).
//!
//! Every case runs even after a failure; failures are reported together, named by flavour and case.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, eyre, Result, WrapErr};
use common::{conn_config, table_checksum, test_config, wait_phase, Flavor, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::config::{MigrationConfig, Secret};
use revenant::engine::pipeline::migrate::{self, Outcome};
use revenant::engine::{Command, Phase};
use revenant::sandbox::ServerOptions;

const DB: &str = "pf";

fn init_tracing() {
    // color_eyre's handler renders a refusal's suggestion in `{e:?}` (eyre's default handler drops it); no colours.
    // Once for the process, and every test waits for it: the first report created before the hook is installed
    // locks eyre's default handler in for the whole process (tests run in parallel threads).
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        if let Ok((_, eyre_hook)) = color_eyre::config::HookBuilder::blank()
            .theme(color_eyre::config::Theme::new())
            .display_env_section(false)
            .try_into_hooks()
        {
            let _ = eyre_hook.install();
        }
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("REVENANT_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// Collects the outcome of named sub-cases so that one failure does not hide the others.
#[derive(Default)]
struct Results {
    failures: Vec<String>,
}

impl Results {
    async fn case<F: Future<Output = Result<()>>>(&mut self, flavor: Flavor, name: &str, f: F) {
        let started = Instant::now();
        match f.await {
            Ok(()) => eprintln!("[{flavor}] {name}: ok ({:.1}s)", started.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("[{flavor}] {name}: FAILED: {e:#}");
                self.failures.push(format!("[{flavor}] {name}: {e:?}"));
            }
        }
    }
    fn finish(self) {
        if !self.failures.is_empty() {
            panic!("{} case(s) failed:\n{}", self.failures.len(), self.failures.join("\n\n"));
        }
    }
}

/// Every table of the database with its `SHOW CREATE TABLE`.
async fn snapshot(c: &mut mysql_async::Conn) -> Result<BTreeMap<String, String>> {
    let tables: Vec<String> =
        c.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", (DB,)).await?;
    let mut out = BTreeMap::new();
    for t in tables {
        let row: Option<(String, String)> = c.query_first(format!("SHOW CREATE TABLE `{DB}`.`{t}`")).await?;
        out.insert(t, row.map(|r| r.1).unwrap_or_default());
    }
    Ok(out)
}

/// The server's binary log position as a GTID set (and file:pos, which also moves for non-GTID events).
async fn binlog_position(c: &mut mysql_async::Conn, flavor: Flavor) -> Result<String> {
    let gtid: Option<String> = match flavor {
        Flavor::MariaDb => c.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await?,
        Flavor::MySql => c.query_first("SELECT @@GLOBAL.gtid_executed").await?,
    };
    let status: Option<mysql_async::Row> = match flavor {
        Flavor::MariaDb => c.query_first("SHOW MASTER STATUS").await?,
        Flavor::MySql => c.query_first("SHOW BINARY LOG STATUS").await?,
    };
    let (file, pos) = status
        .map(|r| (r.get::<String, _>(0).unwrap_or_default(), r.get::<u64, _>(1).unwrap_or_default()))
        .unwrap_or_default();
    Ok(format!("{} @ {file}:{pos}", gtid.unwrap_or_default()))
}

/// Runs a migration to its end (with a time limit; a migration still running then is stopped, so that it cannot
/// disturb the next case).
async fn run_migration(cfg: MigrationConfig) -> Result<Result<Outcome>> {
    let (handle, mut join) = migrate::start(cfg);
    match tokio::time::timeout(Duration::from_secs(60), &mut join).await {
        Ok(r) => Ok(r?),
        Err(_) => {
            let phase = handle.snapshot().phase;
            let _ = handle.send(Command::Stop).await;
            let ended = tokio::time::timeout(Duration::from_secs(30), &mut join).await;
            if ended.is_err() {
                join.abort();
            }
            bail!("the migration did not end within 60 s (phase {phase:?}; stopped: {ended:?})")
        }
    }
}

/// Expects the migration of `cfg` to be refused with `fragment` in its message, and the server to be unchanged.
/// Returns the whole message.
async fn expect_refusal(server: &Server, flavor: Flavor, cfg: MigrationConfig, fragment: &str) -> Result<String> {
    let mut c = server.conn().await?;
    let before = snapshot(&mut c).await?;
    let pos_before = binlog_position(&mut c, flavor).await?;
    let what = format!("{}.{} `{}`", cfg.database, cfg.table, cfg.alter);
    let r = run_migration(cfg).await?;
    let msg = match r {
        Ok(outcome) => bail!("{what}: expected a refusal containing {fragment:?}, got {outcome:?}"),
        Err(e) => format!("{e:?}"),
    };
    if !msg.contains(fragment) {
        bail!("{what}: the refusal lacks {fragment:?}; it says:\n{msg}");
    }
    let after = snapshot(&mut c).await?;
    let pos_after = binlog_position(&mut c, flavor).await?;
    if before != after {
        let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        let removed: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
        let changed: Vec<&String> = after.keys().filter(|k| before.get(*k).is_some_and(|v| v != &after[*k])).collect();
        bail!("{what}: refused, but the database changed: tables added {added:?}, removed {removed:?}, changed {changed:?}");
    }
    if pos_before != pos_after {
        let events = binlog_events_since(&mut c, flavor, &pos_before).await.unwrap_or_default();
        bail!("{what}: refused, but the binary log moved from {pos_before} to {pos_after}; events: {events}");
    }
    c.disconnect().await?;
    Ok(msg)
}

/// For diagnostics: the statements logged after `pos` (file:pos taken from the position text).
async fn binlog_events_since(c: &mut mysql_async::Conn, _flavor: Flavor, pos: &str) -> Result<String> {
    let fp = pos.rsplit(" @ ").next().unwrap_or_default();
    let (file, off) = fp.rsplit_once(':').ok_or_else(|| eyre!("no file:pos"))?;
    let rows: Vec<mysql_async::Row> = c.query(format!("SHOW BINLOG EVENTS IN '{file}' FROM {off}")).await?;
    let infos: Vec<String> = rows
        .into_iter()
        .map(|r| format!("{}: {}", r.get::<String, _>(2).unwrap_or_default(), r.get::<String, _>(5).unwrap_or_default()))
        .collect();
    Ok(infos.join(" | "))
}

async fn exec(server: &Server, stmts: &[&str]) -> Result<()> {
    let mut c = server.conn().await?;
    c.query_drop(format!("CREATE DATABASE IF NOT EXISTS {DB}")).await?;
    for s in stmts {
        let s = s.replace("{db}", DB);
        c.query_drop(&s).await.wrap_err_with(|| format!("running: {s}"))?;
    }
    c.disconnect().await?;
    Ok(())
}

fn cfg(server: &Server, table: &str, alter: &str) -> MigrationConfig {
    test_config(server, DB, table, alter)
}

/// Runs `body` on every selected flavour with a fresh server, collecting every failure.
async fn on_each_flavor<F, Fut>(body: F)
where
    F: Fn(Flavor, Server, Results) -> Fut,
    Fut: Future<Output = Results>,
{
    init_tracing();
    let flavors = revenant::sandbox::selected_flavors().expect("REVENANT_TEST_FLAVORS");
    assert!(!flavors.is_empty(), "REVENANT_TEST_FLAVORS selects no flavour");
    let mut all = Results::default();
    for flavor in flavors {
        let server = match Server::start(flavor).await {
            Ok(s) => s,
            Err(e) => {
                all.failures.push(format!("[{flavor}] server start: {e:?}"));
                continue;
            }
        };
        if let Err(e) = exec(&server, &[]).await {
            all.failures.push(format!("[{flavor}] creating the database: {e:?}"));
            continue;
        }
        all = body(flavor, server, all).await;
    }
    all.finish();
}

// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_alter_refusals() {
    on_each_flavor(|flavor, server, mut res| async move {
        let s = &server;
        res.case(flavor, "table missing", async {
            expect_refusal(s, flavor, cfg(s, "nope", "ADD COLUMN x INT"), "table pf.nope does not exist").await?;
            Ok(())
        })
        .await;

        let engines: &[&str] = match flavor {
            Flavor::MariaDb => &["MyISAM", "Aria", "MEMORY"],
            Flavor::MySql => &["MyISAM", "MEMORY"],
        };
        for engine in engines {
            let t = format!("eng_{}", engine.to_lowercase());
            res.case(flavor, &format!("not InnoDB ({engine})"), async {
                exec(s, &[&format!("CREATE TABLE {{db}}.{t} (id INT NOT NULL PRIMARY KEY, a INT) ENGINE={engine}"),
                          &format!("INSERT INTO {{db}}.{t} VALUES (1, 1), (2, 2)")]).await?;
                let msg = expect_refusal(s, flavor, cfg(s, &t, "ADD COLUMN x INT"), &format!("pf.{t} uses the {engine} engine")).await?;
                if !msg.contains("only InnoDB tables can be migrated online") {
                    bail!("the refusal lacks its suggestion: {msg}");
                }
                Ok(())
            })
            .await;
        }

        const NO_SHARED: &str = "no PRIMARY nor UNIQUE key found in table that the old and new schema share";
        res.case(flavor, "no shared unique key: DROP PRIMARY KEY on a PK-only table", async {
            exec(s, &["CREATE TABLE {db}.pk_only (id INT NOT NULL PRIMARY KEY, a INT)", "INSERT INTO {db}.pk_only VALUES (1, 1)"]).await?;
            expect_refusal(s, flavor, cfg(s, "pk_only", "DROP PRIMARY KEY"), NO_SHARED).await?;
            Ok(())
        })
        .await;
        res.case(flavor, "no shared unique key: a table without a unique key", async {
            exec(s, &["CREATE TABLE {db}.no_unique (id INT NOT NULL, a INT, KEY (id))", "INSERT INTO {db}.no_unique VALUES (1, 1), (1, 1)"]).await?;
            expect_refusal(s, flavor, cfg(s, "no_unique", "ADD COLUMN x INT"), NO_SHARED).await?;
            Ok(())
        })
        .await;
        res.case(flavor, "no shared unique key: only a nullable unique key", async {
            exec(s, &["CREATE TABLE {db}.null_unique (u INT NULL, a INT, UNIQUE KEY (u))", "INSERT INTO {db}.null_unique VALUES (NULL, 1), (NULL, 2)"]).await?;
            // Refused naming gh-ost's flag; with the flag, refused for the NULLs the key holds.
            expect_refusal(s, flavor, cfg(s, "null_unique", "ADD COLUMN x INT"), "allows NULL").await?;
            let mut with_flag = cfg(s, "null_unique", "ADD COLUMN x INT");
            with_flag.allow_nullable_unique_key = true;
            expect_refusal(s, flavor, with_flag, "2 row(s) of").await?;
            Ok(())
        })
        .await;
        res.case(flavor, "no shared unique key: PRIMARY KEY (id) becomes (x)", async {
            exec(s, &["CREATE TABLE {db}.swap_pk (id INT NOT NULL PRIMARY KEY, x INT NOT NULL)", "INSERT INTO {db}.swap_pk VALUES (1, 1)"]).await?;
            expect_refusal(s, flavor, cfg(s, "swap_pk", "DROP PRIMARY KEY, ADD PRIMARY KEY (x)"), NO_SHARED).await?;
            Ok(())
        })
        .await;

        res.case(flavor, "foreign keys", async {
            exec(s, &[
                "CREATE TABLE {db}.fk_parent (id INT NOT NULL PRIMARY KEY, a INT) ENGINE=InnoDB",
                "CREATE TABLE {db}.fk_child (id INT NOT NULL PRIMARY KEY, pid INT, CONSTRAINT fk_child_parent FOREIGN KEY (pid) REFERENCES {db}.fk_parent (id)) ENGINE=InnoDB",
                "CREATE TABLE {db}.fk_other (id INT NOT NULL PRIMARY KEY, pid INT) ENGINE=InnoDB",
                "INSERT INTO {db}.fk_parent VALUES (1, 1), (2, 2)",
                "INSERT INTO {db}.fk_child VALUES (1, 1), (2, NULL)",
            ])
            .await?;
            expect_refusal(s, flavor, cfg(s, "fk_child", "ADD COLUMN x INT"), "Child-side foreign keys are not supported. Bailing out (pf.fk_child has foreign key fk_child_parent)").await?;
            expect_refusal(s, flavor, cfg(s, "fk_parent", "ADD COLUMN x INT"), "Parent-side foreign keys are not supported. Bailing out (fk_child references pf.fk_parent through fk_child_parent)").await?;
            expect_refusal(
                s,
                flavor,
                cfg(s, "fk_other", "ADD CONSTRAINT fk_new FOREIGN KEY (pid) REFERENCES fk_parent (id)"),
                "the ALTER adds a foreign key",
            )
            .await?;
            Ok(())
        })
        .await;

        res.case(flavor, "trigger on the table", async {
            exec(s, &[
                "CREATE TABLE {db}.trig (id INT NOT NULL PRIMARY KEY, a INT)",
                "CREATE TRIGGER {db}.trig_bi BEFORE INSERT ON {db}.trig FOR EACH ROW SET NEW.a = 1",
            ])
            .await?;
            expect_refusal(s, flavor, cfg(s, "trig", "ADD COLUMN x INT"), "pf.trig has trigger trig_bi").await?;
            Ok(())
        })
        .await;

        res.case(flavor, "RENAME in the ALTER", async {
            exec(s, &["CREATE TABLE {db}.ren (id INT NOT NULL PRIMARY KEY, a INT)"]).await?;
            for alter in ["RENAME TO ren2", "ADD COLUMN x INT, RENAME AS ren2", "rename ren2", "ALTER TABLE ren RENAME TO pf.ren2"] {
                expect_refusal(s, flavor, cfg(s, "ren", alter), "alter statement seems to RENAME the table").await?;
            }
            Ok(())
        })
        .await;

        res.case(flavor, "renamed column refused without approval", async {
            exec(s, &["CREATE TABLE {db}.rencol (id INT NOT NULL PRIMARY KEY, a INT, c INT)", "INSERT INTO {db}.rencol VALUES (1, 10, 100), (2, 20, 200)"]).await?;
            expect_refusal(s, flavor, cfg(s, "rencol", "CHANGE COLUMN a b INT"), "the ALTER renames columns (a -> b)").await?;
            expect_refusal(s, flavor, cfg(s, "rencol", "RENAME COLUMN a TO b"), "the ALTER renames columns (a -> b)").await?;
            let msg = expect_refusal(s, flavor, cfg(s, "rencol", "change `c` `d` bigint, ADD COLUMN z INT"), "the ALTER renames columns (c -> d)").await?;
            if !msg.contains("--approve-renamed-columns") {
                bail!("the refusal does not name --approve-renamed-columns: {msg}");
            }
            Ok(())
        })
        .await;

        res.case(flavor, "renamed column accepted with approval", async {
            exec(s, &["CREATE TABLE {db}.rencol_ok (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, c VARCHAR(20))"]).await?;
            let mut c = s.conn().await?;
            c.query_drop("INSERT INTO pf.rencol_ok (a, c) VALUES (1, 'x'), (-5, 'héllo'), (NULL, NULL), (2147483647, '')").await?;
            for _ in 0..8 {
                c.query_drop("INSERT INTO pf.rencol_ok (a, c) SELECT a, c FROM pf.rencol_ok").await?;
            }
            let mut config = cfg(s, "rencol_ok", "CHANGE COLUMN a b INT, RENAME COLUMN c TO d");
            config.approve_renamed_columns = true;
            config.run.postpone_cut_over = false;
            let outcome = run_migration(config).await??;
            if !matches!(outcome, Outcome::Done { .. }) {
                bail!("outcome {outcome:?}");
            }
            let old = table_checksum(&mut c, DB, "_rencol_ok_del", &["id", "a", "c"]).await?;
            let new = table_checksum(&mut c, DB, "rencol_ok", &["id", "b", "d"]).await?;
            if old != new || old.0 != 1024 {
                bail!("the renamed columns' data differ: old {old:?}, new {new:?}");
            }
            Ok(())
        })
        .await;

        res.case(flavor, "invalid ALTER", async {
            exec(s, &["CREATE TABLE {db}.badalter (id INT NOT NULL PRIMARY KEY, a INT)", "INSERT INTO {db}.badalter VALUES (1, 1)"]).await?;
            let syntax = expect_refusal(s, flavor, cfg(s, "badalter", "ADD COLUMN x INT,, ADD COLUMN y INT"), "the server rejects the ALTER").await?;
            if !syntax.contains("ERROR 1064") || !syntax.contains("nothing was changed") {
                bail!("the refusal does not carry the server's syntax error and the suggestion: {syntax}");
            }
            expect_refusal(s, flavor, cfg(s, "badalter", "ADD COLUMNN x INT"), "the server rejects the ALTER").await?;
            expect_refusal(s, flavor, cfg(s, "badalter", "ADD COLUMN"), "the server rejects the ALTER").await?;
            expect_refusal(s, flavor, cfg(s, "badalter", "DROP COLUMN nosuch"), "the server rejects the ALTER").await?;
            expect_refusal(s, flavor, cfg(s, "badalter", "MODIFY a INT, ADD COLUMN a INT"), "the server rejects the ALTER").await?;
            expect_refusal(s, flavor, cfg(s, "badalter", "   ;"), "the ALTER is empty").await?;
            expect_refusal(s, flavor, cfg(s, "badalter", "ALTER TABLE other ADD COLUMN x INT"), "the ALTER names table other but --table is badalter").await?;
            expect_refusal(s, flavor, cfg(s, "badalter", "ALTER TABLE otherdb.badalter ADD COLUMN x INT"), "the ALTER names database otherdb but --database is pf").await?;
            expect_refusal(s, flavor, cfg(s, "badalter", "ALTER TABLE badalter"), "the ALTER has no clause after the table name").await?;
            Ok(())
        })
        .await;
        res
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_artifacts_and_concurrency() {
    on_each_flavor(|flavor, server, mut res| async move {
        let s = &server;
        exec(s, &[]).await.ok();

        res.case(flavor, "dry run changes nothing", async {
            exec(s, &["CREATE TABLE {db}.dry (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(20))", "INSERT INTO {db}.dry (a, b) VALUES (1, 'x'), (2, 'y')"]).await?;
            let mut c = s.conn().await?;
            let before = snapshot(&mut c).await?;
            let pos_before = binlog_position(&mut c, flavor).await?;
            let mut config = cfg(s, "dry", "ADD COLUMN c INT, DROP COLUMN b");
            config.run.execute = false;
            let outcome = run_migration(config).await??;
            let Outcome::DryRun { plan } = outcome else { bail!("expected a dry run, got {outcome:?}") };
            let text = plan.join("\n");
            for want in ["validated:", "shared key: PRIMARY (id)", "dry run: nothing was changed"] {
                if !text.contains(want) {
                    bail!("the dry run's plan lacks {want:?}:\n{text}");
                }
            }
            let after = snapshot(&mut c).await?;
            if before != after {
                bail!("the dry run changed the database: before {:?}, after {:?}", before.keys(), after.keys());
            }
            let pos_after = binlog_position(&mut c, flavor).await?;
            if pos_before != pos_after {
                let events = binlog_events_since(&mut c, flavor, &pos_before).await.unwrap_or_default();
                bail!("the dry run moved the binary log from {pos_before} to {pos_after}; events: {events}");
            }
            Ok(())
        })
        .await;

        res.case(flavor, "leftover ghost table refused", async {
            exec(s, &[
                "CREATE TABLE {db}.lg (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT)",
                "INSERT INTO {db}.lg (a) VALUES (1), (2), (3)",
                "CREATE TABLE {db}._lg_gho (id BIGINT PRIMARY KEY, leftover INT)",
                "INSERT INTO {db}._lg_gho VALUES (42, 42)",
            ])
            .await?;
            let msg = expect_refusal(s, flavor, cfg(s, "lg", "ADD COLUMN x INT"), "table pf._lg_gho already exists").await?;
            if !msg.contains("--initially-drop-ghost-table") {
                bail!("the refusal does not name --initially-drop-ghost-table: {msg}");
            }
            Ok(())
        })
        .await;
        res.case(flavor, "leftover ghost table dropped with initially_drop_ghost_table", async {
            let mut config = cfg(s, "lg", "ADD COLUMN x INT");
            config.initially_drop_ghost_table = true;
            config.run.postpone_cut_over = false;
            let outcome = run_migration(config).await??;
            if !matches!(outcome, Outcome::Done { .. }) {
                bail!("outcome {outcome:?}");
            }
            let mut c = s.conn().await?;
            let cols: Vec<String> = c.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='pf' AND TABLE_NAME='lg' ORDER BY ORDINAL_POSITION").await?;
            let ids: Vec<i64> = c.query("SELECT id FROM pf.lg ORDER BY id").await?;
            if cols != ["id", "a", "x"] || ids != [1, 2, 3] {
                bail!("after the migration pf.lg has columns {cols:?} and ids {ids:?}");
            }
            Ok(())
        })
        .await;
        res.case(flavor, "leftover old table refused", async {
            exec(s, &[
                "CREATE TABLE {db}.ld (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT)",
                "INSERT INTO {db}.ld (a) VALUES (1)",
                "CREATE TABLE {db}._ld_del (id BIGINT PRIMARY KEY)",
            ])
            .await?;
            let msg = expect_refusal(s, flavor, cfg(s, "ld", "ADD COLUMN x INT"), "table pf._ld_del already exists").await?;
            if !msg.contains("--initially-drop-old-table") {
                bail!("the refusal does not name --initially-drop-old-table: {msg}");
            }
            Ok(())
        })
        .await;
        res.case(flavor, "leftover checkpoint table refused", async {
            exec(s, &[
                "CREATE TABLE {db}.lk (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT)",
                "INSERT INTO {db}.lk (a) VALUES (1)",
                "CREATE TABLE {db}._lk_ghk (id VARCHAR(64) PRIMARY KEY)",
            ])
            .await?;
            let msg = expect_refusal(s, flavor, cfg(s, "lk", "ADD COLUMN x INT"), "a checkpoint of an earlier migration exists").await?;
            if !msg.contains("--resume") {
                bail!("the refusal does not mention --resume: {msg}");
            }
            Ok(())
        })
        .await;

        res.case(flavor, "a second concurrent migration of the same table", async {
            exec(s, &["CREATE TABLE {db}.conc (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT)", "INSERT INTO {db}.conc (a) VALUES (1), (2), (3)"]).await?;
            let (first, first_join) = migrate::start(cfg(s, "conc", "ADD COLUMN x INT"));
            wait_phase(&first, Phase::ReadyToCutOver, Duration::from_secs(60)).await?;
            let mut c = s.conn().await?;
            let before = snapshot(&mut c).await?;
            let second = run_migration(cfg(s, "conc", "ADD COLUMN y INT")).await?;
            let msg = match second {
                Ok(o) => bail!("the second migration was not refused: {o:?}"),
                Err(e) => format!("{e:?}"),
            };
            if !msg.contains("another migration of pf.conc is running (lock revenant.pf.conc is held)") {
                bail!("unexpected refusal of the second migration: {msg}");
            }
            // The original and the first one's ghost table are as they were (the second one altered nothing; the
            // first one's heartbeats move the changelog's AUTO_INCREMENT, so only its presence is checked).
            let after = snapshot(&mut c).await?;
            if before.keys().collect::<Vec<_>>() != after.keys().collect::<Vec<_>>() {
                bail!("the set of tables changed: before {:?}, after {:?}", before.keys(), after.keys());
            }
            for t in ["conc", "_conc_gho"] {
                if before.get(t) != after.get(t) {
                    bail!("table {t} changed: before {:?}, after {:?}", before.get(t), after.get(t));
                }
            }
            for t in ["_conc_ghc", "_conc_ghk"] {
                if !after.contains_key(t) {
                    bail!("the first migration's {t} is missing");
                }
            }
            let stop = first.send(Command::Stop).await;
            if !stop.ok {
                bail!("stop refused: {}", stop.message);
            }
            let outcome = tokio::time::timeout(Duration::from_secs(60), first_join).await???;
            if !matches!(outcome, Outcome::Stopped { .. }) {
                bail!("the first migration ended with {outcome:?}");
            }
            Ok(())
        })
        .await;
        res
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_setting_refusals() {
    on_each_flavor(|flavor, server, mut res| async move {
        let s = &server;
        let table_ready = exec(s, &["CREATE TABLE {db}.srv (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT)", "INSERT INTO {db}.srv (a) VALUES (1)"]).await;
        if let Err(e) = table_ready {
            res.failures.push(format!("[{flavor}] setup: {e:?}"));
            return res;
        }
        // (setting, value to refuse, value to restore, fragment)
        let mut settings: Vec<(&str, &str, &str, &str)> = vec![
            ("binlog_format", "'STATEMENT'", "'ROW'", "binlog_format is STATEMENT, not ROW"),
            ("binlog_format", "'MIXED'", "'ROW'", "binlog_format is MIXED, not ROW"),
            ("binlog_row_image", "'MINIMAL'", "'FULL'", "binlog_row_image is MINIMAL, not FULL"),
            ("binlog_row_image", "'NOBLOB'", "'FULL'", "binlog_row_image is NOBLOB, not FULL"),
        ];
        match flavor {
            Flavor::MariaDb => settings.push(("log_bin_compress", "ON", "OFF", "log_bin_compress is ON")),
            Flavor::MySql => {
                settings.push(("binlog_transaction_compression", "ON", "OFF", "binlog_transaction_compression is ON"));
                settings.push(("binlog_row_value_options", "'PARTIAL_JSON'", "''", "binlog_row_value_options=PARTIAL_JSON"));
                settings.push(("gtid_mode", "'ON_PERMISSIVE'", "'ON'", "gtid_mode is ON_PERMISSIVE"));
            }
        }
        for (name, bad, good, fragment) in settings {
            res.case(flavor, &format!("{name}={bad}"), async {
                let mut c = s.conn().await?;
                c.query_drop(format!("SET GLOBAL {name} = {bad}")).await.wrap_err_with(|| format!("SET GLOBAL {name} = {bad}"))?;
                let r = expect_refusal(s, flavor, cfg(s, "srv", "ADD COLUMN x INT"), fragment).await;
                c.query_drop(format!("SET GLOBAL {name} = {good}")).await.wrap_err_with(|| format!("restoring {name}"))?;
                r.map(|_| ())
            })
            .await;
        }

        res.case(flavor, "user without REPLICATION SLAVE", async {
            exec(s, &["CREATE USER 'lowpriv'@'%'", "GRANT ALL PRIVILEGES ON {db}.* TO 'lowpriv'@'%'"]).await?;
            let mut config = cfg(s, "srv", "ADD COLUMN x INT");
            config.source = conn_config(s);
            config.source.user = "lowpriv".into();
            config.source.password = Secret::new(None);
            expect_refusal(s, flavor, config, "the user lacks REPLICATION SLAVE (needed to read the binary log)").await?;
            Ok(())
        })
        .await;

        res.case(flavor, "the same table migrates once the settings are back", async {
            let mut config = cfg(s, "srv", "ADD COLUMN x INT");
            config.run.postpone_cut_over = false;
            let outcome = run_migration(config).await??;
            if !matches!(outcome, Outcome::Done { .. }) {
                bail!("outcome {outcome:?}");
            }
            Ok(())
        })
        .await;
        drop(server);

        res.case(flavor, "log_bin OFF", async {
            let nobin = Server::start_with(flavor, ServerOptions { extra_args: vec!["--skip-log-bin".into()], ..Default::default() }).await?;
            exec(&nobin, &["CREATE TABLE {db}.nb (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT)", "INSERT INTO {db}.nb (a) VALUES (1)"]).await?;
            let mut c = nobin.conn().await?;
            let before = snapshot(&mut c).await?;
            let r = run_migration(test_config(&nobin, DB, "nb", "ADD COLUMN x INT")).await?;
            let msg = match r {
                Ok(o) => bail!("not refused: {o:?}"),
                Err(e) => format!("{e:?}"),
            };
            if !msg.contains("log_bin is OFF on the server") {
                bail!("unexpected refusal: {msg}");
            }
            if snapshot(&mut c).await? != before {
                bail!("the database changed");
            }
            Ok(())
        })
        .await;
        res
    })
    .await;
}
