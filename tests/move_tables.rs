//! move-tables against two real servers of each selected flavour: a full move of two tables under an application
//! writer (inserts, updates including key updates, deletes) that keeps writing to the source through the fence,
//! verified table by table with checksums (source `_<t>_del` against target `t`); the cooperative cut-over's
//! steps, drain GTID and hooks; heartbeat lag and a throttle flag file holding the copy; a dry run and refusals that
//! change nothing.

mod common;
mod move_support;

use std::time::Duration;

use color_eyre::eyre::bail;
use common::{each_flavor, wait_phase};
use move_support::{hook_lines, hooks_dir, move_config, scratch, seed, verify_moved, AppWriter};
use common::Server;
use color_eyre::eyre::Result;
use revenant::engine::pipeline::move_tables::MoveTablesConfig;
use mysql_async::prelude::Queryable;
use revenant::engine::stream::gtid::GtidSet;
use revenant::engine::pipeline::move_tables::{self, MoveOutcome, CHANGELOG_TABLE, CHECKPOINT_TABLE};
use revenant::engine::{Command, Phase};
use revenant::sandbox::two_servers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_move_under_a_writer_held_by_a_throttle_flag_drains_to_the_fence_gtid() {
    each_flavor(|flavor| async move {
        let (source, target) = two_servers(flavor).await?;
        let db = "shop";
        seed(&source, &target, db, 1500).await?;
        let dir = scratch("full", source.port)?;
        let hooks = hooks_dir(&dir, 0)?;
        let w1 = AppWriter::start(&source, db, "orders", 11).await?;
        let w2 = AppWriter::start(&source, db, "items", 23).await?;
        let mut cfg = move_config(&source, &target, db);
        cfg.run.hooks_path = Some(hooks);
        // Widen the window between reading a chunk on the source and writing it on the target: writers touching
        // those rows must wait for the locks (or a deleted row would come back on the target).
        cfg.copy_hold = Duration::from_millis(50);
        // The copy starts throttled by a flag file; the heartbeats still flow.
        let flag = dir.join("throttle.flag");
        std::fs::write(&flag, b"")?;
        cfg.run.throttle.throttle_flag_file = Some(flag.clone());
        cfg.run.heartbeat_interval = Duration::from_millis(100);
        let (handle, join) = move_tables::start(cfg);
        let mut rx = handle.status.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let held = loop {
            let s = rx.borrow_and_update().clone();
            if s.phase == Some(Phase::Copy) && s.throttle.reason.contains("flag-file") && s.heartbeat_lag_seconds.is_some() {
                break s;
            }
            if s.phase.is_some_and(|p| p.is_terminal() || p >= Phase::Catchup) {
                bail!("the move went past the copy while the flag file exists: {:?} {:?}", s.phase, s.message);
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                bail!("never saw the copy throttled with a heartbeat lag: {:?} {:?} lag {:?}", s.phase, s.throttle.reason, s.heartbeat_lag_seconds);
            }
        };
        // Rows copied stay flat while the flag file exists; the lag stays a real number.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let later = handle.snapshot();
        assert_eq!(later.phase, Some(Phase::Copy));
        assert_eq!(later.copy.rows_copied, held.copy.rows_copied, "the copy advanced while throttled");
        assert!(later.throttle.throttled && later.throttle.reason.contains("flag-file"), "{:?}", later.throttle);
        assert!(later.throttle.signals.iter().any(|g| g.name == "flag-file" && g.throttling), "{:?}", later.throttle.signals);
        let lag = later.heartbeat_lag_seconds.ok_or_else(|| color_eyre::eyre::eyre!("heartbeat lag unknown during the move"))?;
        assert!((0.0..30.0).contains(&lag), "heartbeat lag {lag}");
        assert!(!later.lag_history.is_empty(), "no lag samples");
        // migrate's live settings work on a move too.
        let reply = handle.send(Command::Set { name: "max-lag-millis".into(), value: "2500".into() }).await;
        assert!(reply.ok, "{}", reply.message);
        let reply = handle.send(Command::Get { name: "max-lag-millis".into() }).await;
        assert_eq!((reply.ok, reply.message.as_str()), (true, "2500"));
        let reply = handle.send(Command::Set { name: "chunk-size".into(), value: "3".into() }).await;
        assert!(!reply.ok, "an out-of-range chunk size is refused: {}", reply.message);
        let on_source: Vec<String> = source.conn().await?.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (db,)).await?;
        assert!(on_source.contains(&CHANGELOG_TABLE.to_string()), "the heartbeat table is on the source: {on_source:?}");
        std::fs::remove_file(&flag)?;
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        let ready = handle.snapshot();
        assert!(!ready.throttle.throttled, "still throttled after the flag file went: {:?}", ready.throttle);
        let ready_lag = ready.heartbeat_lag_seconds.ok_or_else(|| color_eyre::eyre::eyre!("heartbeat lag unknown at the gate"))?;
        assert_eq!(ready.tables.len(), 2);
        for tp in &ready.tables {
            assert!(tp.complete && tp.rows_copied > 0, "per-table progress: {tp:?}");
        }
        assert_eq!(ready.cutover.step, "gate");
        assert!(ready.cutover.postponed, "the gate waits for approval");
        // Both tables were verified (source against target) under the writers before the gate.
        let verified = ready.verify.last_result.clone().unwrap_or_default();
        assert!(verified.starts_with("identical") && verified.ends_with("of 2 tables"), "verification: {verified:?}");
        assert!(ready.phase_seconds.iter().any(|(p, _)| *p == Phase::Verify), "no verify phase: {:?}", ready.phase_seconds);
        // Still gated a moment later: nothing is renamed without approval.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut s = source.conn().await?;
        let n: Option<u64> = s.query_first(format!("SELECT COUNT(*) FROM {db}.orders")).await?;
        assert!(n.is_some_and(|n| n > 0), "the source table serves at the gate");
        assert!(hook_lines(&dir).is_empty(), "no hook ran before approval");
        let reply = handle.send(Command::CutOver).await;
        assert!(reply.ok, "{}", reply.message);
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        let MoveOutcome::Done { drain_gtid } = outcome else { bail!("outcome {outcome:?}") };
        // The application keeps trying after the fence: every write there fails with a missing table.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (ok1, missing1) = w1.stop().await?;
        let (ok2, missing2) = w2.stop().await?;
        assert!(missing1 > 0 && missing2 > 0, "writes after the fence must fail: {missing1} / {missing2}");
        let counts = verify_moved(&source, &target, db).await?;
        let on_source: Vec<String> = source.conn().await?.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (db,)).await?;
        assert!(!on_source.contains(&CHANGELOG_TABLE.to_string()), "the heartbeat table is dropped at the end: {on_source:?}");
        // The drain GTID is what the target applied (recorded on the target with the rows).
        let mut t = target.conn().await?;
        let (applied, stored, complete, phase): (String, String, u8, String) = t
            .query_first(format!(
                "SELECT a.applied_gtid_set, s.drain_gtid, s.cutover_complete, s.phase FROM {db}.{CHECKPOINT_TABLE} a, {db}.{CHECKPOINT_TABLE} s WHERE a.id = 'apply' AND s.id = 'summary'"
            ))
            .await?
            .ok_or_else(|| color_eyre::eyre::eyre!("no checkpoint rows"))?;
        let mariadb = flavor == revenant::sandbox::Flavor::MariaDb;
        assert_eq!(stored, drain_gtid);
        assert!(GtidSet::parse(mariadb, &applied)?.contains(&GtidSet::parse(mariadb, &drain_gtid)?), "applied {applied} lacks {drain_gtid}");
        assert_eq!((complete, phase.as_str()), (1, "done"));
        let lines = hook_lines(&dir);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("gh-ost-on-before-cut-over tables=orders,items drain= "), "{lines:?}");
        assert_eq!(lines[1], format!("gh-ost-on-success tables=orders,items drain={drain_gtid} revenant={drain_gtid} pwd=none"));
        let fin = handle.snapshot();
        assert_eq!(fin.cutover.drain_gtid.as_deref(), Some(drain_gtid.as_str()));
        assert_eq!(fin.cutover.events_left_to_drain, Some(0));
        eprintln!(
            "[{flavor}] copy held at {} rows for 1.2 s by the flag file (lag {lag:.3} s, {} samples; {ready_lag:.3} s at the gate); \
             moved {counts:?} rows; writer ops {ok1}+{ok2}, refused after the fence {missing1}+{missing2}; drain {drain_gtid}",
            held.copy.rows_copied,
            later.lag_history.len()
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}

/// Deletes, changes and adds rows of the target's `items` behind the move's back.
async fn damage_target(target: &Server, db: &str) -> Result<()> {
    let mut t = target.conn().await?;
    t.query_drop(format!("DELETE FROM {db}.items WHERE id IN (3, 400, 999)")).await?;
    t.query_drop(format!("UPDATE {db}.items SET b = 'damaged' WHERE id IN (10, 700)")).await?;
    t.query_drop(format!("UPDATE {db}.items SET d = NULL WHERE id = 11")).await?;
    t.query_drop(format!("INSERT INTO {db}.items (id, a, b) VALUES (900000000, 1, 'only on the target')")).await?;
    Ok(())
}

/// Waits for a verification that ends with a result other than `before`, while the cut-over waits.
async fn wait_verified(handle: &revenant::engine::EngineHandle, before: &str) -> Result<revenant::engine::Status> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let s = handle.snapshot();
        if s.phase == Some(Phase::ReadyToCutOver) && !s.verify.running && s.verify.last_result.as_deref() != Some(before) {
            return Ok(s);
        }
        if s.phase.is_some_and(|p| p.is_terminal()) || tokio::time::Instant::now() > deadline {
            bail!("gave up waiting for the re-verification: phase {:?}, verify {:?}, message {:?}", s.phase, s.verify, s.message);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_target_is_repaired_by_verify_and_the_move_ends_identical() {
    each_flavor(|flavor| async move {
        let (source, target) = two_servers(flavor).await?;
        let db = "shop";
        seed(&source, &target, db, 1200).await?;
        let writer = AppWriter::start(&source, db, "items", 31).await?;
        let (handle, join) = move_tables::start(move_config(&source, &target, db));
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        let first = handle.snapshot().verify.last_result.unwrap_or_default();
        assert!(first.starts_with("identical:") && first.ends_with("of 2 tables"), "first verification: {first:?}");
        // Damage on the target while the writer runs on the source and the cut-over waits; `verify` repairs it.
        damage_target(&target, db).await?;
        let reply = handle.send(Command::Verify).await;
        assert!(reply.ok, "verify refused: {}", reply.message);
        let s = wait_verified(&handle, &first).await?;
        let found = s.verify.last_result.clone().unwrap_or_default();
        assert!(found.starts_with("identical after repairing"), "re-verification found: {found:?}");
        assert!(s.verify.last_lock_ms.is_some(), "the lock's length was not measured");
        let ok = writer.stop().await?.0;
        assert!(handle.send(Command::CutOver).await.ok, "cut-over refused");
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        assert!(matches!(outcome, MoveOutcome::Done { .. }), "outcome {outcome:?}");
        let counts = verify_moved(&source, &target, db).await?;
        eprintln!("[{flavor}] {found}; moved {counts:?} rows; writer ops {ok}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_damage_that_comes_back_fails_the_move_before_the_fence() {
    each_flavor(|flavor| async move {
        let (source, target) = two_servers(flavor).await?;
        let db = "shop";
        seed(&source, &target, db, 800).await?;
        let (handle, join) = move_tables::start(move_config(&source, &target, db));
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        // Every copy of row 7 onto the target, the repair's included, is changed again by a trigger.
        let mut t = target.conn().await?;
        t.query_drop(format!("CREATE TRIGGER {db}.items_damage BEFORE INSERT ON {db}.items FOR EACH ROW SET NEW.b = IF(NEW.id = 7, 'damaged', NEW.b)")).await?;
        t.query_drop(format!("UPDATE {db}.items SET b = 'damaged' WHERE id = 7")).await?;
        assert!(handle.send(Command::Verify).await.ok, "verify refused");
        let err = match tokio::time::timeout(Duration::from_secs(120), join).await?? {
            Ok(o) => bail!("the move went on: {o:?}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("still differs") && err.contains("`items`") && err.contains("7 differs") && err.contains("before the fence"), "message: {err}");
        assert_eq!(handle.snapshot().phase, Some(Phase::Failed));
        // Nothing was fenced: the source tables serve under their names, the target tables are kept.
        let mut s = source.conn().await?;
        let names: Vec<String> = s.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", (db,)).await?;
        assert!(names.contains(&"items".to_string()) && names.contains(&"orders".to_string()), "source tables: {names:?}");
        assert!(!names.iter().any(|n| n.ends_with("_del")), "a fence happened: {names:?}");
        let kept: Option<u64> = t.query_first(format!("SELECT COUNT(*) FROM {db}.items")).await?;
        assert_eq!(kept, Some(800), "the target table is kept");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_false_moves_without_verifying() {
    each_flavor(|flavor| async move {
        let (source, target) = two_servers(flavor).await?;
        let db = "shop";
        seed(&source, &target, db, 300).await?;
        let mut cfg = move_config(&source, &target, db);
        cfg.checksum = false;
        let (handle, join) = move_tables::start(cfg);
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        let s = handle.snapshot();
        assert!(!s.verify.enabled && s.verify.last_result.is_none(), "verify status: {:?}", s.verify);
        assert!(!s.phase_seconds.iter().any(|(p, _)| *p == Phase::Verify), "a verify phase ran: {:?}", s.phase_seconds);
        let reply = handle.send(Command::Verify).await;
        assert!(!reply.ok, "verify accepted with --checksum=false: {}", reply.message);
        assert!(handle.send(Command::CutOver).await.ok, "cut-over refused");
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        assert!(matches!(outcome, MoveOutcome::Done { .. }), "outcome {outcome:?}");
        let counts = verify_moved(&source, &target, db).await?;
        assert_eq!(counts, vec![300, 300]);
        Ok(())
    })
    .await;
}

/// A refused move leaves both servers as they were: no checkpoint, no table on the target, nothing renamed.
async fn assert_untouched(source: &Server, target: &Server, db: &str) -> Result<()> {
    let mut t = target.conn().await?;
    let on_target: Vec<String> = t.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (db,)).await?;
    let mut s = source.conn().await?;
    let renamed: Vec<String> =
        s.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE '\\_%'", (db,)).await?;
    if !renamed.is_empty() || on_target.iter().any(|n| n != "items") {
        bail!("a refused move changed something: source {renamed:?}, target {on_target:?}");
    }
    Ok(())
}

async fn refused(cfg: MoveTablesConfig, expect: &str) -> Result<()> {
    let (_handle, join) = move_tables::start(cfg);
    match join.await? {
        Ok(o) => bail!("expected a refusal ({expect}), got {o:?}"),
        Err(e) => {
            let text = format!("{e:?}");
            if !text.contains(expect) {
                bail!("refusal does not say '{expect}': {text}");
            }
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_change_nothing_and_alter_applies_on_the_target() {
    each_flavor(|flavor| async move {
        let (source, target) = two_servers(flavor).await?;
        let db = "alt";
        seed(&source, &target, db, 600).await?;
        let mut s = source.conn().await?;
        let base = || move_config(&source, &target, db);
        // A dry run (--dry-run): every check, then what it would do; nothing on either server.
        let mut cfg = base();
        cfg.run.execute = false;
        let (_h, join) = move_tables::start(cfg);
        let outcome = tokio::time::timeout(Duration::from_secs(60), join).await???;
        let MoveOutcome::DryRun { plan } = outcome else { bail!("dry run: {outcome:?}") };
        let text = plan.join("\n");
        assert!(text.contains(&format!("validated {db}.orders: key PRIMARY")) && text.contains(&format!("validated {db}.items")), "{text}");
        assert!(text.contains("would create on the target") && text.contains(&format!("RENAME TABLE `{db}`.`orders` TO `{db}`.`_orders_del`")), "{text}");
        assert!(text.ends_with("run it without --dry-run to move"), "{text}");
        assert_untouched(&source, &target, db).await?;
        // A heartbeat table of that name that is not revenant's is refused, and left alone.
        s.query_drop(format!("CREATE TABLE {db}.{CHANGELOG_TABLE} (id INT PRIMARY KEY)")).await?;
        refused(base(), "is not revenant's").await?;
        s.query_drop(format!("DROP TABLE {db}.{CHANGELOG_TABLE}")).await?;
        s.query_drop(format!("CREATE TABLE {db}.nokey (a INT)")).await?;
        let mut cfg = base();
        cfg.target_database = "nosuch".into();
        refused(cfg, "the target database nosuch does not exist").await?;
        let mut cfg = base();
        cfg.tables = vec!["orders".into(), "nokey".into()];
        refused(cfg, "PRIMARY").await?;
        let mut cfg = base();
        cfg.tables = vec!["orders".into(), "missing".into()];
        refused(cfg, "does not exist").await?;
        let mut cfg = base();
        cfg.run.resume = true;
        refused(cfg, "nothing to resume").await?;
        let mut cfg = base();
        cfg.alter = Some("ADD COLUMN".into());
        refused(cfg, "ALTER").await?;
        let mut t = target.conn().await?;
        t.query_drop(format!("CREATE TABLE {db}.items (id INT PRIMARY KEY)")).await?;
        refused(base(), "already exists on the target").await?;
        assert_untouched(&source, &target, db).await?;
        t.query_drop(format!("DROP TABLE {db}.items")).await?;

        // With an ALTER applied on the target, under a writer, not postponed.
        let w = AppWriter::start(&source, db, "orders", 3).await?;
        let mut cfg = base();
        cfg.run.postpone_cut_over = false;
        cfg.alter = Some("ADD COLUMN f INT NOT NULL DEFAULT 7, ADD KEY idx_b (b)".into());
        let (_handle, join) = move_tables::start(cfg);
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        assert!(matches!(outcome, MoveOutcome::Done { .. }), "{outcome:?}");
        let (ok, missing) = w.stop().await?;
        let counts = verify_moved(&source, &target, db).await?;
        let sevens: Option<(u64, u64)> = t.query_first(format!("SELECT COUNT(*), SUM(f = 7) FROM {db}.orders")).await?;
        assert_eq!(sevens.map(|(n, k)| n == k && n > 0), Some(true), "the added column: {sevens:?}");
        let key: Option<String> = t
            .exec_first("SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'orders' AND INDEX_NAME = 'idx_b' LIMIT 1", (db,))
            .await?;
        assert!(key.is_some(), "the ALTER's key is on the target");
        eprintln!("[{flavor}] altered move of {counts:?} rows; {ok} writes, {missing} refused after the fence");
        Ok(())
    })
    .await;
}

/// (rows, checksum) over every column: bytes (`HEX`) for all but FLOAT/DOUBLE, whose text form is compared.
async fn typed_checksum(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<(u64, String)> {
    let exprs: Vec<String> = TYPED_COLS
        .iter()
        .map(|c| if *c == "f" || *c == "dbl" { format!("IFNULL(CAST(`{c}` AS CHAR),'\\N')") } else { format!("IFNULL(HEX(`{c}`),'\\N')") })
        .collect();
    let list = exprs.join(", '|', ");
    let row: Option<(u64, String, String)> = conn
        .query_first(format!(
            "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT({list}))),0), COALESCE(BIT_XOR(CRC32(CONCAT('x',{list}))),0) FROM `{db}`.`{table}`"
        ))
        .await?;
    let (n, a, b) = row.unwrap_or_default();
    Ok((n, format!("{a}/{b}")))
}

const TYPED_COLS: [&str; 23] = [
    "id", "u", "i", "s", "f", "dbl", "dm", "vc", "l1", "ch", "bn", "vb", "bl", "tx", "js", "en", "st", "bt", "dt", "ts", "d", "tm", "yr",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_arrives_exactly_through_copy_and_binlog() {
    each_flavor(|flavor| async move {
        let (source, target) = two_servers(flavor).await?;
        let db = "typed";
        let mut s = source.conn().await?;
        let mut t = target.conn().await?;
        t.query_drop(format!("CREATE DATABASE {db}")).await?;
        s.query_drop(format!("CREATE DATABASE {db}")).await?;
        s.query_drop("SET SESSION sql_mode = '', time_zone = '+00:00'").await?;
        s.query_drop(format!(
            "CREATE TABLE {db}.t (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, u BIGINT UNSIGNED, i TINYINT, \
             s SMALLINT UNSIGNED, f FLOAT, dbl DOUBLE, dm DECIMAL(30,10), vc VARCHAR(40) CHARACTER SET utf8mb4, \
             l1 VARCHAR(40) CHARACTER SET latin1, ch CHAR(5), bn BINARY(8), vb VARBINARY(20), bl BLOB, tx TEXT, js JSON, \
             en ENUM('a','b','c d'), st SET('x','y','z'), bt BIT(12), dt DATETIME(6), ts TIMESTAMP(3) NULL, d DATE, \
             tm TIME(2), yr YEAR) DEFAULT CHARSET=utf8mb4"
        ))
        .await?;
        s.query_drop(format!(
            "INSERT INTO {db}.t (u, i, s, f, dbl, dm, vc, l1, ch, bn, vb, bl, tx, js, en, st, bt, dt, ts, d, tm, yr) VALUES \
             (18446744073709551615, -128, 65535, 1.5, -2.25e100, -12345678901234567890.0123456789, 'émoji 😀 ü', 'café', 'ab', \
              0x00FF00FF00FF00FF, 0x00, 0x00010203FF, 'long text with ''quotes''', '{{\"a\": [1, 2, {{\"b\": null}}]}}', 'c d', 'x,z', \
              b'101010101010', '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.999', '1000-01-01', '-838:59:59.00', 2155), \
             (0, 127, 0, -0.0001, 1e-300, 0.0000000001, '', '', '', '', '', '', '', '[]', 'a', '', b'0', '1000-01-01 00:00:00', \
              '1970-01-01 00:00:01', '9999-12-31', '838:59:58.25', 1901), \
             (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ))
        .await?;
        for _ in 0..7 {
            s.query_drop(format!(
                "INSERT INTO {db}.t (u, i, s, f, dbl, dm, vc, l1, ch, bn, vb, bl, tx, js, en, st, bt, dt, ts, d, tm, yr) \
                 SELECT u, i, s, f, dbl, dm, vc, l1, ch, bn, vb, bl, tx, js, en, st, bt, dt, ts, d, tm, yr FROM {db}.t"
            ))
            .await?;
        }
        let value_cols: Vec<&str> = TYPED_COLS[1..].to_vec();
        let writer = common::Writer::start(&source, db, "t", &value_cols, true).await?;
        let mut cfg = MoveTablesConfig::new(common::conn_config(&source), common::conn_config(&target), db, db, &["t"]);
        cfg.run.chunk_size = 100;
        cfg.run.postpone_cut_over = true;
        cfg.run.execute = true;
        cfg.copy_hold = Duration::from_millis(20);
        let (handle, join) = move_tables::start(cfg);
        let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await;
        // More changes through the binary log while the gate waits.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let ops = writer.stop().await?;
        ready?;
        assert!(handle.send(Command::CutOver).await.ok);
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        assert!(matches!(outcome, MoveOutcome::Done { .. }), "{outcome:?}");
        let old = typed_checksum(&mut s, db, "_t_del").await?;
        let new = typed_checksum(&mut t, db, "t").await?;
        assert_eq!(old, new, "rows differ between source _t_del and target t ({ops} writer ops)");
        assert!(old.0 >= 384, "{old:?}");
        eprintln!("[{flavor}] {} typed rows identical after the move; {ops} writer ops through copy and binlog", old.0);
        Ok(())
    })
    .await;
}

/// JSON paths the seeds of `regression_json_opaque_values_through_move_mysql` use; JSON_TYPE is compared at each.
const JSON_PATHS: [&str; 18] = [
    "$", "$.price", "$.u", "$.big", "$.when", "$.day", "$.t", "$.bin", "$.nested.p", "$.nested.arr[0]", "$.nested.arr[1]",
    "$.nested.arr[2]", "$.nested.arr[3]", "$.nested.arr[4]", "$[0]", "$[1]", "$[2]", "$.plain",
];

/// Per row, in key order: (id, JSON text, JSON_TYPE at every path of `JSON_PATHS`, TIME text, JSON storage size).
type JsonRow = (u64, Option<String>, String, Option<String>, Option<u64>);

async fn json_rows(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<Vec<JsonRow>> {
    let types: Vec<String> = JSON_PATHS.iter().map(|p| format!("IFNULL(JSON_TYPE(JSON_EXTRACT(j, '{p}')), '-')")).collect();
    Ok(conn
        .query(format!(
            "SELECT id, CAST(j AS CHAR), CONCAT_WS('|', {}), CAST(tm AS CHAR), JSON_STORAGE_SIZE(j) FROM `{db}`.`{table}` ORDER BY id",
            types.join(", ")
        ))
        .await?)
}

/// Regression: was: move-tables read MySQL JSON on the source as text and bound it again on the target, so rows
/// the cross-server copy brought lost their opaque scalars and unsigned integers (`{"price": 1.50}`, a DECIMAL,
/// arrived as the DOUBLE 1.5; DATETIME, DATE and TIME as strings; an UNSIGNED INTEGER as a signed one), while the
/// same rows through the binary log (the applier rebuilds them with SQL) arrived exact. The values are
/// `json_opaque_cases`'s of tests/migrate_types.rs plus TIME(6) values of 838 hours with a fraction (in JSON and in a
/// TIME(6) column); rows go through the copy (seeded before the move) and through the binary log (inserted while the
/// copy is held, updated after it). Compared row by row on both servers: the JSON text, JSON_TYPE at every path,
/// the TIME column's text and JSON_STORAGE_SIZE. MySQL only (MariaDB's JSON is text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_json_opaque_values_through_move_mysql() {
    each_flavor(|flavor| async move {
        if flavor != revenant::sandbox::Flavor::MySql {
            eprintln!("[{flavor}] skipped: MySQL's JSON only");
            return Ok(());
        }
        let (source, target) = two_servers(flavor).await?;
        let db = "js";
        let mut s = source.conn().await?;
        let mut t = target.conn().await?;
        s.query_drop(format!("CREATE DATABASE {db}")).await?;
        t.query_drop(format!("CREATE DATABASE {db}")).await?;
        s.query_drop(format!("CREATE TABLE {db}.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, j JSON, tm TIME(6))")).await?;
        s.query_drop(format!(
            "INSERT INTO {db}.t (j, tm) VALUES (JSON_OBJECT('price', CAST(1.50 AS DECIMAL(10,2)), 'u', CAST(5 AS UNSIGNED), \
             'big', CAST(-12345678901234567890.123456789 AS DECIMAL(65,30)), \
             'when', CAST('2024-01-02 03:04:05.123456' AS DATETIME(6)), 'day', CAST('2024-02-29' AS DATE), \
             't', CAST('-838:59:58.5' AS TIME(6)), 'bin', x'00ff', \
             'nested', JSON_OBJECT('p', CAST(0.001 AS DECIMAL(4,3)), 'arr', JSON_ARRAY(CAST(7 AS DECIMAL(3,0)), 1.5e0, true, null, 'emoji \u{1F600} and \\\"quotes\\\"'))), \
             '838:59:58.999999'), \
             (JSON_ARRAY(CAST('2024-01-02 03:04:05.123456' AS DATETIME(6)), CAST('2024-01-02' AS DATE), CAST('12:00:01' AS TIME)), '-838:59:58.999999'), \
             (JSON_ARRAY(CAST('838:59:58.999999' AS TIME(6)), CAST('-838:59:58.999999' AS TIME(6)), CAST('838:00:00.000001' AS TIME(6))), '838:00:00.000001'), \
             (CAST(CAST(1.50 AS DECIMAL(4,2)) AS JSON), '12:00:00'), (CAST(CAST(18446744073709551615 AS UNSIGNED) AS JSON), NULL), \
             (JSON_OBJECT(), '-00:00:00.000001'), (JSON_ARRAY(), NULL), ('{{\"plain\": 1.5}}', NULL), (NULL, '838:59:58.999999')"
        ))
        .await?;
        for _ in 0..5 {
            s.query_drop(format!("INSERT INTO {db}.t (j, tm) SELECT j, tm FROM {db}.t")).await?;
        }
        let seeded: u64 = s.query_first(format!("SELECT MAX(id) FROM {db}.t")).await?.unwrap_or(0);
        let dir = scratch("json", source.port)?;
        let flag = dir.join("throttle.flag");
        std::fs::write(&flag, b"")?;
        let mut cfg = MoveTablesConfig::new(common::conn_config(&source), common::conn_config(&target), db, db, &["t"]);
        cfg.run.chunk_size = 100;
        cfg.run.postpone_cut_over = true;
        cfg.run.execute = true;
        cfg.run.throttle.throttle_flag_file = Some(flag.clone());
        let (handle, join) = move_tables::start(cfg);
        // Held by the flag file in the copy: the copy's range is fixed, so rows inserted now come through the
        // binary log only.
        let mut rx = handle.status.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let st = rx.borrow_and_update().clone();
            if st.phase == Some(Phase::Copy) && st.throttle.reason.contains("flag-file") {
                break;
            }
            if st.phase.is_some_and(|p| p.is_terminal() || p > Phase::Copy) {
                bail!("the move went past the copy while the flag file exists: {:?} {:?}", st.phase, st.message);
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                bail!("never saw the copy held by the flag file: {:?} {:?}", st.phase, st.throttle.reason);
            }
        }
        s.query_drop(format!("INSERT INTO {db}.t (j, tm) SELECT j, tm FROM {db}.t WHERE id <= 40 ORDER BY id")).await?;
        std::fs::remove_file(&flag)?;
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await?;
        // Copied rows changed through the binary log after the copy.
        s.query_drop(format!("UPDATE {db}.t x JOIN {db}.t y ON y.id = x.id + 3 SET x.j = y.j, x.tm = y.tm WHERE x.id % 5 = 0")).await?;
        assert!(handle.send(Command::CutOver).await.ok);
        let outcome = tokio::time::timeout(Duration::from_secs(120), join).await???;
        assert!(matches!(outcome, MoveOutcome::Done { .. }), "{outcome:?}");
        let old = json_rows(&mut s, db, "_t_del").await?;
        let new = json_rows(&mut t, db, "t").await?;
        let through_binlog = old.iter().filter(|r| r.0 > seeded).count();
        assert!(old.len() > 300 && through_binlog >= 30, "{} rows, {through_binlog} through the binary log only", old.len());
        let types: String = old.iter().map(|r| r.2.as_str()).collect::<Vec<_>>().join("|");
        for ty in ["DECIMAL", "UNSIGNED INTEGER", "DATETIME", "DATE", "TIME", "BLOB", "DOUBLE"] {
            assert!(types.split('|').any(|x| x == ty), "the seeds hold no {ty}: the check proves nothing");
        }
        assert_eq!(old.len(), new.len(), "row counts of source _t_del and target t");
        let differing: Vec<(&JsonRow, &JsonRow)> = old.iter().zip(&new).filter(|(a, b)| a != b).collect();
        let sample: Vec<String> = differing.iter().take(3).map(|(a, b)| format!("\n  source {a:?}\n  target {b:?}")).collect();
        assert!(
            differing.is_empty(),
            "{} of {} rows differ between source _t_del and target t (ids above {seeded} came through the binary log only):{}",
            differing.len(),
            old.len(),
            sample.join("")
        );
        eprintln!("[{flavor}] {} JSON rows identical after the move ({through_binlog} through the binary log only)", old.len());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}
