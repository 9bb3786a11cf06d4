//! Records the binlog event sequences that the transaction assembler's unit tests replay
//! (src/engine/stream/fixtures/<flavour>/<case>.events): each case's SQL runs on a fresh sandbox server, then the
//! binlog is read from the position before it through the streamer's own mapping (`stream::events::map`) and
//! written as one line per event. Ignored by default: `cargo test --test record_binlog -- --ignored` re-records.

mod common;

use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use common::{each_flavor, Flavor, Server};
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStreamRequest;
use revenant::engine::stream::assembler::WatchedName;
use revenant::engine::stream::binlog::current_position;
use revenant::engine::stream::events::{describe, map, Note};
use revenant::engine::stream::gtid::GtidSet;
use revenant::engine::stream::statement::NameCase;

const CASES: &[(&str, &str)] = &[
    ("plain", "BEGIN;\nINSERT INTO app.t (id, a) VALUES (10, 1);\nUPDATE app.t SET a = 2 WHERE id = 1;\nCOMMIT"),
    ("savepoint", "BEGIN;\nUPDATE app.t SET a = a + 1 WHERE id = 1;\nSAVEPOINT s;\nUPDATE app.t SET a = a + 1 WHERE id = 2;\nCOMMIT"),
    (
        "rollback_to_savepoint",
        "BEGIN;\nUPDATE app.t SET a = a + 1 WHERE id = 1;\nSAVEPOINT s;\nUPDATE app.t SET a = a + 1 WHERE id = 2;\n\
         ROLLBACK TO SAVEPOINT s;\nUPDATE app.t SET a = a + 1 WHERE id = 3;\nCOMMIT",
    ),
    ("xa_commit", "XA START 'x1';\nUPDATE app.t SET a = a + 1 WHERE id = 1;\nXA END 'x1';\nXA PREPARE 'x1';\nXA COMMIT 'x1'"),
    ("xa_rollback", "XA START 'x2';\nUPDATE app.t SET a = a + 1 WHERE id = 1;\nXA END 'x2';\nXA PREPARE 'x2';\nXA ROLLBACK 'x2'"),
    ("xa_one_phase", "XA START 'x3';\nUPDATE app.t SET a = a + 1 WHERE id = 1;\nXA END 'x3';\nXA COMMIT 'x3' ONE PHASE"),
    (
        "ddl",
        "ALTER TABLE app.t ADD COLUMN c INT;\n/* app */ ALTER TABLE app.t DROP COLUMN c;\nCREATE INDEX ia ON app.t (a);\n\
         DROP INDEX ia ON app.t",
    ),
    ("statement_dml", "SET SESSION binlog_format = 'STATEMENT';\nUPDATE app.t SET a = a + 1 WHERE id = 1"),
    ("heartbeat_and_rotate", "FLUSH BINARY LOGS;\nUPDATE app.t SET a = a + 1 WHERE id = 1"),
];

async fn record_case(server: &Server, flavor: Flavor, name: &str, sql: &str) -> Result<String> {
    let mariadb = flavor == Flavor::MariaDb;
    let mut c = server.conn().await?;
    let start = current_position(&mut c, mariadb).await?;
    let mut session = server.conn().await?;
    common::exec_all(&mut session, sql).await.wrap_err_with(|| format!("case {name}"))?;
    let mut conn = server.conn().await?;
    conn.query_drop("SET @master_heartbeat_period = 300000000, @source_heartbeat_period = 300000000").await?;
    let mut stream = if mariadb {
        conn.query_drop("SET @mariadb_slave_capability = 4").await?;
        conn.exec_drop("SET @slave_connect_state = ?", (start.gtid_set.clone(),)).await?;
        conn.get_binlog_stream(BinlogStreamRequest::new(4242).with_filename(b"").with_pos(4u64)).await?
    } else {
        let sids = GtidSet::parse(false, &start.gtid_set)?.to_sids()?;
        conn.get_binlog_stream(BinlogStreamRequest::new(4242).with_gtid().with_gtid_set(sids)).await?
    };
    let watched = vec![WatchedName { database: "app".into(), table: "t".into() }];
    let mut lines = vec![format!("# {name} on {} {}: {}", flavor, server.version(), sql.replace('\n', " "))];
    let mut heartbeats = 0;
    while heartbeats < 2 {
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await else { break };
        let ev = ev?;
        let m = map(&ev, |id| stream.get_tme(id), &watched, NameCase::Exact);
        if m.note == Note::Heartbeat {
            heartbeats += 1;
        }
        lines.push(describe(ev.header().event_type_raw(), &m));
    }
    Ok(lines.join("\n") + "\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn record_binlog_fixtures() {
    each_flavor(|flavor| async move {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine/stream/fixtures").join(flavor.name());
        std::fs::create_dir_all(&dir)?;
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        common::exec_all(&mut c, "CREATE DATABASE app;\nCREATE TABLE app.t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB;\n\
            INSERT INTO app.t VALUES (1,1),(2,2),(3,3),(4,4)").await?;
        for (name, sql) in CASES {
            let text = record_case(&server, flavor, name, sql).await?;
            std::fs::write(dir.join(format!("{name}.events")), text)?;
        }
        if flavor == Flavor::MySql {
            let sql = "SET SESSION binlog_transaction_compression = ON;\nUPDATE app.t SET a = a + 1 WHERE id = 2";
            let text = record_case(&server, flavor, "compressed_transaction", sql).await?;
            std::fs::write(dir.join("compressed_transaction.events"), text)?;
        }
        Ok(())
    })
    .await;
}
