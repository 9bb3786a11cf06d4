//! The console end to end, as a DBA uses it: `revenant migrate` runs in a real terminal (tmux) against a real server
//! under a concurrent writer; keys go in with `tmux send-keys`, the screen is read back with `capture-pane`. A second
//! console attaches read-only from another tmux session. The test asserts what the screens show at each step and that
//! the table was migrated with every row (checksums of `_<t>_del` and the new table over the shared columns).

mod common;

use std::path::PathBuf;
use std::process::Command as Proc;
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, eyre, Result, WrapErr};
use common::{each_flavor, exec_all, table_checksum, Server, Writer};
use mysql_async::prelude::Queryable;

/// A tmux server of this test alone (its own socket name), killed on drop with everything it runs.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        Tmux { socket: format!("revenant-test-{}-{tag}", std::process::id()) }
    }

    fn cmd(&self) -> Proc {
        let mut p = Proc::new("tmux");
        p.args(["-L", &self.socket]);
        p
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let out = self.cmd().args(args).output().wrap_err("running tmux (is it installed? scripts/install-deps)")?;
        if !out.status.success() {
            bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `command` (a shell line) in a new session of `width` x `height`.
    fn session(&self, name: &str, width: u16, height: u16, command: &str) -> Result<()> {
        self.run(&["new-session", "-d", "-s", name, "-x", &width.to_string(), "-y", &height.to_string(), command])?;
        Ok(())
    }

    fn keys(&self, name: &str, keys: &[&str]) -> Result<()> {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        self.run(&args)?;
        Ok(())
    }

    fn type_text(&self, name: &str, text: &str) -> Result<()> {
        self.run(&["send-keys", "-t", name, "-l", text])?;
        Ok(())
    }

    fn screen(&self, name: &str) -> Result<String> {
        self.run(&["capture-pane", "-t", name, "-p"])
    }

    /// Waits until the screen of `name` contains every one of `needles`; returns that screen.
    async fn wait_for(&self, name: &str, needles: &[&str], timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen(name)?;
            if needles.iter().all(|n| screen.contains(n)) {
                return Ok(screen);
            }
            if Instant::now() > deadline {
                bail!("the screen of {name} never showed {needles:?}; it shows:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_drives_a_migration_in_tmux_with_an_attached_read_only_console() {
    if Proc::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is missing: scripts/install-deps installs it");
    }
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(
            &mut c,
            "CREATE DATABASE shop;\n\
             CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64), KEY (a))",
        )
        .await?;
        c.query_drop("INSERT INTO shop.orders (a, b) VALUES (1, 'seed')").await?;
        for _ in 0..14 {
            c.query_drop("INSERT INTO shop.orders (a, b) SELECT a + id, CONCAT('row ', id) FROM shop.orders").await?;
        }
        let writer = Writer::start(&server, "shop", "orders", &["a", "b"], true).await?;

        let dir = PathBuf::from(std::env::var("REVENANT_SANDBOX_DIR").unwrap_or_else(|_| "/tmp".into()))
            .join(format!("tmux-{}-{flavor}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("orders.sock");
        let postpone = dir.join("orders.postpone");
        let exit_file = dir.join("exit-code");
        let migrate = format!(
            "{} migrate --host 127.0.0.1 --port {} --user root --database shop --table orders \
             --alter {} --execute --chunk-size 500 --postpone-cut-over-flag-file {} --serve-socket-file {} \
             2>{}; echo $? > {}; sleep 600",
            env!("CARGO_BIN_EXE_revenant"),
            server.port,
            shell_quote("ADD COLUMN note VARCHAR(32) NOT NULL DEFAULT 'n/a'"),
            postpone.display(),
            socket.display(),
            dir.join("stderr").display(),
            exit_file.display(),
        );
        let tmux = Tmux::new(&flavor.to_string());
        tmux.session("mig", 120, 40, &migrate)?;

        // The console comes up and shows the migration reaching the postponed cut-over.
        let screen = tmux.wait_for("mig", &["shop.orders", "READY"], Duration::from_secs(180)).await?;
        assert!(screen.contains("postponed"), "the ready phase says the cut-over is postponed:\n{screen}");
        assert!(screen.contains("C cut-over"), "the footer offers the cut-over key once ready:\n{screen}");

        // t throttles (the badge says why), t again lifts it.
        tmux.keys("mig", &["t"])?;
        tmux.wait_for("mig", &["THROTTLED: commanded by user"], Duration::from_secs(10)).await?;
        tmux.keys("mig", &["t"])?;
        tmux.wait_for("mig", &["not throttled"], Duration::from_secs(10)).await?;

        // c writes a checkpoint and shows the position it recorded.
        tmux.keys("mig", &["c"])?;
        let screen = tmux.wait_for("mig", &["checkpoint recorded"], Duration::from_secs(10)).await?;
        assert!(!screen.contains("none yet"), "the binlog pane shows the last checkpoint:\n{screen}");

        // A second console attaches read-only at 80x24 and follows the same migration.
        let attach = format!("{} attach {} --read-only; sleep 600", env!("CARGO_BIN_EXE_revenant"), socket.display());
        tmux.session("att", 80, 24, &attach)?;
        tmux.wait_for("att", &["[RO]", "orders", "READY"], Duration::from_secs(20)).await?;
        tmux.keys("att", &["C"])?;
        tmux.wait_for("att", &["read-only console"], Duration::from_secs(10)).await?;

        let ops = writer.stop().await?;

        // C opens the confirmation; a wrong name cancels it and nothing happens.
        tmux.keys("mig", &["C"])?;
        tmux.wait_for("mig", &["Confirm cut-over", "Type the table name"], Duration::from_secs(10)).await?;
        tmux.type_text("mig", "order")?;
        tmux.keys("mig", &["Enter"])?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let screen = tmux.screen("mig")?;
        assert!(screen.contains("READY"), "a wrong name must not start the cut-over:\n{screen}");
        assert!(!screen.contains("Confirm cut-over"), "the popup closes after a wrong name:\n{screen}");

        // C, the table name and Enter cut over; both consoles show the end.
        tmux.keys("mig", &["C"])?;
        tmux.wait_for("mig", &["Type the table name"], Duration::from_secs(10)).await?;
        tmux.type_text("mig", "orders")?;
        tmux.keys("mig", &["Enter"])?;
        let screen = tmux.wait_for("mig", &["DONE", "Migration complete"], Duration::from_secs(120)).await?;
        assert!(screen.contains("last stall"), "the cut-over pane reports the write stall:\n{screen}");
        let attached = tmux.wait_for("att", &["DONE"], Duration::from_secs(20)).await?;
        assert!(attached.contains("[RO]"), "{attached}");

        // q leaves the finished console; the process exits 0.
        tmux.keys("mig", &["q"])?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            if let Ok(s) = std::fs::read_to_string(&exit_file) {
                break s.trim().to_string();
            }
            if Instant::now() > deadline {
                bail!("revenant did not exit after q; screen:\n{}", tmux.screen("mig")?);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
        assert_eq!(code, "0", "exit code of revenant migrate; stderr:\n{stderr}");

        // The oracle: every row of the original is in the new table.
        let old = table_checksum(&mut c, "shop", "_orders_del", &["id", "a", "b"]).await?;
        let new = table_checksum(&mut c, "shop", "orders", &["id", "a", "b"]).await?;
        assert_eq!(old, new, "rows differ after the console-driven migration ({ops} writer ops)");
        assert!(old.0 >= 16_000, "the table holds the seeded rows: {old:?}");
        let notes: Option<String> = c.query_first("SELECT DISTINCT note FROM shop.orders").await?;
        assert_eq!(notes.as_deref(), Some("n/a"), "the new column exists with its default");
        std::fs::remove_dir_all(&dir).map_err(|e| eyre!("removing {}: {e}", dir.display()))?;
        Ok(())
    })
    .await;
}
