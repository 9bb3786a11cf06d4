//! Proves the test-server harness on every selected flavour: servers start with the promised settings, a binlog
//! stream decodes an INSERT with its GTID, and a GTID replica receives the primary's writes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use color_eyre::eyre::eyre;
use common::{each_flavor, Flavor, Server};
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use revenant::engine::stream::binlog::{self, StreamConfig, StreamItem, StreamerState, WatchedTable};
use revenant::engine::stream::gtid::Gtid;
use revenant::engine::plan::schema;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_has_binlog_row_full_and_gtids() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        let (version, log_bin, format): (String, i64, String) =
            c.query_first("SELECT @@version, @@log_bin, @@binlog_format").await?.ok_or_else(|| eyre!("no row"))?;
        match flavor {
            Flavor::MariaDb => assert!(version.contains("10.11") && version.contains("MariaDB"), "{version}"),
            Flavor::MySql => assert!(version.starts_with("9.7"), "{version}"),
        }
        assert_eq!(log_bin, 1);
        assert_eq!(format, "ROW");
        let (image, scheduler): (String, String) =
            c.query_first("SELECT @@binlog_row_image, @@event_scheduler").await?.ok_or_else(|| eyre!("no row"))?;
        assert_eq!(image, "FULL");
        assert_eq!(scheduler, "ON");
        let gtid_on: String = match flavor {
            Flavor::MariaDb => c.query_first("SELECT @@gtid_strict_mode").await?.unwrap_or_default(),
            Flavor::MySql => c.query_first("SELECT @@gtid_mode").await?.unwrap_or_default(),
        };
        assert!(gtid_on == "1" || gtid_on == "ON", "gtid setting {gtid_on}");
        if flavor == Flavor::MariaDb {
            let meta: String = c.query_first("SELECT @@binlog_row_metadata").await?.unwrap_or_default();
            assert_eq!(meta, "NO_LOG", "MariaDB keeps its default binlog_row_metadata");
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_stream_decodes_an_insert_with_its_gtid() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        c.query_drop("CREATE DATABASE smoke").await?;
        c.query_drop(
            "CREATE TABLE smoke.t (id INT UNSIGNED PRIMARY KEY, name VARCHAR(20) CHARACTER SET utf8mb4, big BIGINT UNSIGNED)",
        )
        .await?;
        let mariadb = flavor == Flavor::MariaDb;
        let start = binlog::current_position(&mut c, mariadb).await?;
        let table = schema::read_table(&mut c, "smoke", "t").await?.ok_or_else(|| eyre!("table missing"))?;
        let (tx, mut rx) = revenant::engine::stream::queue::channel(100, revenant::engine::stream::queue::QUEUE_BYTES);
        let cancel = CancellationToken::new();
        let state = Arc::new(Mutex::new(StreamerState::default()));
        let cfg = StreamConfig {
            opts: server.opts_for(""),
            mariadb,
            client_server_id: 424242,
            start,
            watched: vec![WatchedTable { database: "smoke".into(), table: "t".into(), columns: table.columns.clone() }],
            retry_for: Duration::from_secs(5),
        };
        let task = tokio::spawn(binlog::run(cfg, tx, state, cancel.clone()));
        // Another connection writes.
        let mut w = server.conn().await?;
        w.query_drop("INSERT INTO smoke.t VALUES (4294967295, 'héllo 🐘', 18446744073709551615)").await?;
        let expected_gtid: String = match flavor {
            Flavor::MariaDb => w.query_first("SELECT @@last_gtid").await?.unwrap_or_default(),
            Flavor::MySql => w.query_first("SELECT @@gtid_executed").await?.unwrap_or_default(),
        };
        let txn = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match rx.recv().await {
                    Some(StreamItem::Transaction(t)) if !t.changes.is_empty() => return Some(t),
                    Some(_) => continue,
                    None => return None,
                }
            }
        })
        .await?
        .ok_or_else(|| eyre!("stream ended"))?;
        cancel.cancel();
        let _ = task.await;
        let change = &txn.changes[0];
        let after = change.after.as_ref().ok_or_else(|| eyre!("no after image"))?;
        assert_eq!(after[0], Value::UInt(4294967295));
        assert_eq!(after[1], Value::Bytes("héllo 🐘".as_bytes().to_vec()));
        assert_eq!(after[2], Value::UInt(u64::MAX));
        let gtid = txn.gtid.ok_or_else(|| eyre!("transaction without GTID"))?;
        match (&gtid, flavor) {
            (Gtid::MariaDb { server: s, .. }, Flavor::MariaDb) => {
                assert_eq!(gtid.to_string(), expected_gtid);
                assert_eq!(*s, server.server_id);
            }
            (Gtid::MySql { .. }, Flavor::MySql) => {
                // gtid_executed is uuid:1-N; this transaction is its last number.
                let (uuid, range) = expected_gtid.trim().rsplit_once(':').ok_or_else(|| eyre!("bad set"))?;
                let last = range.rsplit('-').next().unwrap_or(range);
                assert_eq!(gtid.to_string(), format!("{uuid}:{last}"));
            }
            other => panic!("GTID of the wrong flavour: {other:?}"),
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_receives_primary_writes() {
    each_flavor(|flavor| async move {
        let (primary, replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = &replicas[0];
        let mut p = primary.conn().await?;
        p.query_drop("CREATE DATABASE rep").await?;
        p.query_drop("CREATE TABLE rep.t (id INT PRIMARY KEY, v VARCHAR(10))").await?;
        p.query_drop("INSERT INTO rep.t VALUES (1, 'one'), (2, 'two')").await?;
        revenant::sandbox::wait_caught_up(replica, &primary, Duration::from_secs(30)).await?;
        let mut r = replica.conn().await?;
        let rows: Vec<(i32, String)> = r.query("SELECT id, v FROM rep.t ORDER BY id").await?;
        assert_eq!(rows, vec![(1, "one".to_string()), (2, "two".to_string())]);
        Ok(())
    })
    .await;
}
