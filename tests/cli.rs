//! The command line against real servers: gh-ost flag compatibility, dry runs that change nothing, credentials
//! without argv, and clear refusals before anything is changed.

mod common;

use std::process::Command as Proc;

use common::{each_flavor, exec_all, Server};
use mysql_async::prelude::Queryable;

fn revenant(server: &Server, extra: &[&str]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"]);
    p.args(extra).env_remove("MYSQL_PWD");
    p
}

async fn tables(c: &mut mysql_async::Conn, db: &str) -> color_eyre::Result<Vec<String>> {
    Ok(c.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? ORDER BY 1", (db,)).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gh_ost_style_command_lines() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(&mut c, "CREATE DATABASE shop;\nCREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))").await?;
        c.query_drop("INSERT INTO shop.orders (v) VALUES ('a'), ('b'), ('c')").await?;
        let create_before: (String, String) = c.query_first("SHOW CREATE TABLE shop.orders").await?.unwrap_or_default();

        // A dry run (no --execute), with gh-ost's single-dash spelling and a full ALTER TABLE statement.
        let out = revenant(&server, &["-database=shop", "-table=orders", "-alter=ALTER TABLE shop.orders ADD COLUMN w INT"]).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "dry run: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("dry run: nothing was changed"), "{stdout}");
        assert_eq!(tables(&mut c, "shop").await?, vec!["orders".to_string()], "a dry run creates nothing");
        let create_after: (String, String) = c.query_first("SHOW CREATE TABLE shop.orders").await?.unwrap_or_default();
        assert_eq!(create_before, create_after);

        // A gh-ost flag revenant does not implement is refused by name, before anything happens.
        let out = revenant(&server, &["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN w INT", "--execute", "--tungsten"]).output()?;
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--tungsten"));
        assert_eq!(tables(&mut c, "shop").await?, vec!["orders".to_string()]);

        // A bad ALTER is refused with the server's reason, before anything is created.
        let out = revenant(&server, &["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN w NOSUCHTYPE", "--execute"]).output()?;
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("rejects the ALTER"), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(tables(&mut c, "shop").await?, vec!["orders".to_string()]);

        // The password from MYSQL_PWD (never argv) for a user that needs one; the migration runs.
        c.query_drop("CREATE USER 'mig'@'%' IDENTIFIED BY 'Secr3t-pw'").await?;
        c.query_drop("GRANT ALL PRIVILEGES ON *.* TO 'mig'@'%'").await?;
        if flavor == common::Flavor::MariaDb {
            c.query_drop("CREATE USER 'mig'@'localhost' IDENTIFIED BY 'Secr3t-pw'").await?;
            c.query_drop("GRANT ALL PRIVILEGES ON *.* TO 'mig'@'localhost'").await?;
        }
        let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
        p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "mig", "--headless"])
            .args(["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN w INT", "--execute", "--ok-to-drop-table"])
            .env("MYSQL_PWD", "Secr3t-pw");
        let out = p.output()?;
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "migration with MYSQL_PWD: {all}");
        assert!(!all.contains("Secr3t-pw"), "the password never appears in output");
        assert!(all.contains("Done: shop.orders migrated"), "{all}");
        let cols: Vec<String> = c.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='orders' ORDER BY ORDINAL_POSITION").await?;
        assert_eq!(cols, vec!["id", "v", "w"]);
        assert_eq!(tables(&mut c, "shop").await?, vec!["orders".to_string()], "artifacts cleaned, old table dropped as asked");
        Ok(())
    })
    .await;
}
