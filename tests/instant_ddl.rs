//! `--attempt-instant-ddl` on both flavours: an ALTER the server can do in place is done with ALGORITHM=INSTANT
//! (no ghost, no old table, the rows untouched); one it cannot (an added index) falls back to the migration,
//! which completes under a writer with the tables identical; a dry run says what it would try and changes nothing.

mod common;

use std::process::Command as Proc;

use color_eyre::eyre::Result;
use common::{each_flavor, exec_all, table_checksum, Server, Writer};
use mysql_async::prelude::Queryable;

fn revenant(server: &Server, db: &str, alter: &str, extra: &[&str]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"])
        .args(["--database", db, "--table", "t", "--alter", alter, "--attempt-instant-ddl", "--chunk-size", "200"])
        .args(extra)
        .env_remove("MYSQL_PWD")
        .env("NO_COLOR", "1");
    p
}

async fn tables(c: &mut mysql_async::Conn, db: &str) -> Result<Vec<String>> {
    Ok(c.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? ORDER BY 1", (db,)).await?)
}

async fn seed(server: &Server, db: &str, rows: u32) -> Result<()> {
    let mut c = server.conn().await?;
    exec_all(&mut c, &format!("CREATE DATABASE {db};\nCREATE TABLE {db}.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(40))")).await?;
    c.query_drop(format!("INSERT INTO {db}.t (a, b) VALUES (1, 'x')")).await?;
    let mut have = 1;
    while have < rows {
        c.query_drop(format!("INSERT INTO {db}.t (a, b) SELECT a + id, CONCAT(b, id) FROM {db}.t LIMIT {}", (rows - have).min(have))).await?;
        have += (rows - have).min(have);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_when_the_server_can_migration_when_it_cannot() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;

        // Dry run: says what --execute would try first; nothing changes.
        seed(&server, "i0", 100).await?;
        let out = revenant(&server, "i0", "ADD COLUMN f INT", &[]).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("would first try: ALTER TABLE `i0`.`t` ADD COLUMN f INT, ALGORITHM=INSTANT"), "{stdout}");
        let cols: u64 = c.query_first("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='i0' AND TABLE_NAME='t'").await?.unwrap_or(0);
        assert_eq!((cols, tables(&mut c, "i0").await?), (3, vec!["t".to_string()]), "the dry run changed nothing");

        // ADD COLUMN: done in place, no ghost or old table, the rows as they were.
        seed(&server, "i1", 2000).await?;
        let before = table_checksum(&mut c, "i1", "t", &["id", "a", "b"]).await?;
        let out = revenant(&server, "i1", "ADD COLUMN f INT", &["--execute"]).output()?;
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("altered in place with ALGORITHM=INSTANT"), "{stdout}\n{stderr}");
        assert_eq!(tables(&mut c, "i1").await?, vec!["t".to_string()], "no ghost, no old table, no changelog");
        let f: Option<String> = c.query_first("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='i1' AND TABLE_NAME='t' AND COLUMN_NAME='f'").await?;
        assert_eq!(f.as_deref(), Some("f"));
        assert_eq!(table_checksum(&mut c, "i1", "t", &["id", "a", "b"]).await?, before, "the rows are untouched");

        // ADD KEY: not instant on either server; the migration runs, under a writer, and loses nothing.
        seed(&server, "i2", 3000).await?;
        let writer = Writer::start(&server, "i2", "t", &["a", "b"], false).await?;
        let flag = std::env::temp_dir().join(format!("revenant-instant-{}-{}.flag", std::process::id(), server.port));
        std::fs::write(&flag, b"")?;
        let postpone = format!("--postpone-cut-over-flag-file={}", flag.display());
        let mut child = revenant(&server, "i2", "ADD KEY idx_a (a)", &["--execute", "--status-json", &postpone])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        // The writer runs through the copy and stops at the postponed gate; then the cut-over is let go.
        let stdout = child.stdout.take().ok_or_else(|| color_eyre::eyre::eyre!("no stdout"))?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let ready = lines.by_ref().map_while(|l| l.ok()).any(|l| l.contains("\"phase\":\"ready-to-cut-over\""));
        let ops = writer.stop().await?;
        std::fs::remove_file(&flag)?;
        let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
        let out = child.wait_with_output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(ready && out.status.success(), "{stderr}");
        assert!(stderr.contains("did not alter i2.t instantly"), "the refusal is said: {stderr}");
        assert!(rest.iter().any(|l| l.contains("migrated; writes stalled")), "{rest:?}");
        let old = table_checksum(&mut c, "i2", "_t_del", &["id", "a", "b"]).await?;
        let new = table_checksum(&mut c, "i2", "t", &["id", "a", "b"]).await?;
        assert_eq!(old, new, "the fallback migration lost nothing ({ops} writer ops)");
        let idx: Option<String> = c.query_first("SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA='i2' AND TABLE_NAME='t' AND INDEX_NAME='idx_a' LIMIT 1").await?;
        assert_eq!(idx.as_deref(), Some("idx_a"));
        Ok(())
    })
    .await;
}
