//! The start position and the copy range agree (issue 13.2): a transaction inside the position whose rows are not
//! visible yet would be neither streamed nor copied. A client cannot hold a transaction between its binlog write
//! and its engine commit, but a prepared XA transaction is exactly that state, held open: `XA PREPARE` writes the
//! rows to the binary log (the position covers them) while they stay invisible until `XA COMMIT`. Both flavours.

mod common;

use std::time::Duration;

use common::{each_flavor, finish_after_ready, seed_app_table, table_checksum, test_config, wait_phase, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate;
use revenant::engine::Phase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_xa_insert_above_the_copy_range_is_not_lost() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed_app_table(&server, "xa", 2000).await?;
        // A row far above the copy range's end, inserted by an XA transaction that is prepared but not committed.
        let mut xa = server.conn().await?;
        xa.query_drop("XA START 'rvn-start'").await?;
        xa.query_drop("INSERT INTO app.xa (id, a, b) VALUES (1000000, 7, 'prepared before the start')").await?;
        xa.query_drop("XA END 'rvn-start'").await?;
        xa.query_drop("XA PREPARE 'rvn-start'").await?;
        let (handle, join) = migrate::start(test_config(&server, "app", "xa", "ADD COLUMN c INT"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        xa.query_drop("XA COMMIT 'rvn-start'").await?;
        let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(120)).await;
        finish_after_ready(&handle, join, ready).await?;
        let mut c = server.conn().await?;
        let n: Option<u64> = c.query_first("SELECT COUNT(*) FROM app.xa WHERE id = 1000000").await?;
        assert_eq!(n, Some(1), "the row the XA transaction inserted is missing from the migrated table");
        let cols = ["id", "a", "b"];
        assert_eq!(table_checksum(&mut c, "app", "_xa_del", &cols).await?, table_checksum(&mut c, "app", "xa", &cols).await?);
        Ok(())
    })
    .await;
}
