//! One throwaway server process: start from a copied template, readiness, kill -9, restart, stop on drop.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, eyre, Result, WrapErr};
use color_eyre::Section;
use mysql_async::prelude::Queryable;

/// Which server software.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    MariaDb,
    MySql,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::MariaDb => "mariadb",
            Flavor::MySql => "mysql",
        }
    }
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Flavor {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "mariadb" => Ok(Flavor::MariaDb),
            "mysql" => Ok(Flavor::MySql),
            other => Err(format!("unknown flavour '{other}': use mariadb or mysql")),
        }
    }
}

/// Where the MySQL chroot lives (built by scripts/install-deps).
pub fn mysql_chroot() -> PathBuf {
    let cache = std::env::var("REVENANT_CACHE").unwrap_or_else(|_| "/var/cache/revenant".to_string());
    PathBuf::from(cache).join("mysql-sid")
}

/// Options for one server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra `--name=value` server options (e.g. `--read-only=ON`).
    pub extra_args: Vec<String>,
    /// Give every root account a random password (kept in `root-password`, mode 0600, in the server's directory,
    /// itself 0700), so that no other local user can use the server (the demo's servers). Tests leave it off.
    pub private: bool,
    /// Serve TLS with these PEMs (written into the server's private directory) and refuse plain connections
    /// (`require_secure_transport=ON`). The sandbox's own connections then verify the server against `ca_pem`.
    pub tls: Option<ServerTls>,
}

/// A server's TLS material, PEM text (the harness makes it: tests/common/tls.rs).
#[derive(Clone)]
pub struct ServerTls {
    /// The CA that signed `cert_pem`; clients trust it.
    pub ca_pem: String,
    /// The server's certificate (names 127.0.0.1 and localhost).
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls(ca, cert, key: ****)")
    }
}

static NEXT_SERVER_ID: AtomicU32 = AtomicU32::new(0);

fn next_server_id() -> u32 {
    // Unique within this process; the process id keeps concurrent test binaries apart.
    let n = NEXT_SERVER_ID.fetch_add(1, Ordering::SeqCst);
    1000 + (std::process::id() % 100_000) * 100 + n
}

/// Paths of a directory as the host sees it and as the server process sees it (they differ inside the chroot).
#[derive(Debug, Clone)]
struct Place {
    host: PathBuf,
    server: PathBuf,
}

/// The per-process working directory for a flavour, created on first use and removed when the process ends
/// normally (servers clean their own data directories on drop).
/// This process's run directory name: `revenant-sandbox-[TAG-]PID`. `REVENANT_SANDBOX_TAG` (letters, digits,
/// dashes) marks every server of one test run, so scripts/test can find its own leftovers and no one else's.
fn run_leaf() -> String {
    let tag: String = std::env::var("REVENANT_SANDBOX_TAG")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if tag.is_empty() {
        format!("revenant-sandbox-{}", std::process::id())
    } else {
        format!("revenant-sandbox-{tag}-{}", std::process::id())
    }
}

fn run_dir(flavor: Flavor) -> Result<Place> {
    let leaf = run_leaf();
    let place = match flavor {
        Flavor::MariaDb => {
            let base = std::env::var("REVENANT_SANDBOX_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
            let p = base.join(&leaf);
            Place { host: p.clone(), server: p }
        }
        Flavor::MySql => {
            let root = mysql_chroot();
            let inside = PathBuf::from("/var/tmp").join(&leaf);
            Place { host: root.join(inside.strip_prefix("/").unwrap_or(&inside)), server: inside }
        }
    };
    std::fs::create_dir_all(&place.host).wrap_err_with(|| format!("creating {}", place.host.display()))?;
    register_cleanup();
    Ok(place)
}

/// Removes this process's run directories when it exits normally (templates included).
fn register_cleanup() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    extern "C" fn cleanup() {
        if std::env::var_os("REVENANT_KEEP_SERVERS").is_some() {
            return;
        }
        let leaf = run_leaf();
        let base = std::env::var("REVENANT_SANDBOX_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        let _ = std::fs::remove_dir_all(base.join(&leaf));
        let _ = std::fs::remove_dir_all(mysql_chroot().join("var/tmp").join(&leaf));
    }
    ONCE.call_once(|| {
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe {
            libc::atexit(cleanup);
        }
    });
}

fn check_installed(flavor: Flavor) -> Result<()> {
    match flavor {
        Flavor::MariaDb => {
            if !Path::new("/usr/sbin/mariadbd").exists() {
                return Err(eyre!("MariaDB is not installed (/usr/sbin/mariadbd missing)"))
                    .suggestion("run scripts/install-deps (it installs Debian's mariadb-server)");
            }
        }
        Flavor::MySql => {
            if !mysql_chroot().join("usr/sbin/mysqld").exists() {
                return Err(eyre!("the MySQL chroot is missing ({}/usr/sbin/mysqld)", mysql_chroot().display()))
                    .suggestion("run scripts/install-deps (it builds the Debian sid chroot with mysql-server-core)");
            }
        }
    }
    Ok(())
}

/// Builds the per-process template data directory for a flavour once; later servers copy it.
fn template(flavor: Flavor) -> Result<Place> {
    use std::sync::Mutex;
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().map_err(|_| eyre!("template lock poisoned"))?;
    check_installed(flavor)?;
    let run = run_dir(flavor)?;
    let t = Place { host: run.host.join("template"), server: run.server.join("template") };
    if t.host.join(".ready").exists() {
        return Ok(t);
    }
    let _ = std::fs::remove_dir_all(&t.host);
    let started = Instant::now();
    initialize(flavor, &t.server, &[])?;
    std::fs::write(t.host.join(".ready"), b"")?;
    tracing::debug!("{flavor} template initialised in {:?}", started.elapsed());
    Ok(t)
}

/// Server options that MySQL fixes when the data directory is initialised (a server started with one gets its own
/// freshly initialised data directory instead of a copy of the template). MariaDB takes them at any start.
const MYSQL_INIT_TIME_OPTIONS: &[&str] = &["--lower-case-table-names="];

/// Initialises a data directory (`datadir` as the server process sees it), with `extra` server options.
fn initialize(flavor: Flavor, datadir: &Path, extra: &[String]) -> Result<()> {
    // Its own temporary directory beside the data directory: the bootstrap's temporary tables in the shared /tmp
    // were seen deleted under a concurrent bootstrap ("Error on delete of '/tmp/#sql-temptable-...'").
    let tmp = datadir.with_extension("tmp");
    let tmp_host = match flavor {
        Flavor::MariaDb => tmp.clone(),
        Flavor::MySql => mysql_chroot().join(tmp.strip_prefix("/").unwrap_or(&tmp)),
    };
    std::fs::create_dir_all(&tmp_host).wrap_err_with(|| format!("creating {}", tmp_host.display()))?;
    let output = match flavor {
        Flavor::MariaDb => Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .output()
            .wrap_err("running mariadb-install-db")?,
        Flavor::MySql => Command::new("chroot")
            .arg(mysql_chroot())
            .args(["/usr/sbin/mysqld", "--no-defaults", "--initialize-insecure", "--user=root"])
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(extra)
            .output()
            .wrap_err("running mysqld --initialize-insecure in the chroot")?,
    };
    let _ = std::fs::remove_dir_all(&tmp_host);
    if !output.status.success() {
        bail!(
            "initialising a {flavor} data directory failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().wrap_err("running cp -a")?;
    if !status.success() {
        bail!("copying {} to {} failed", from.display(), to.display());
    }
    Ok(())
}

/// Finds a free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").wrap_err("binding a probe port")?;
    Ok(l.local_addr()?.port())
}

/// A running throwaway server. Stops (and removes its data) on drop unless `REVENANT_KEEP_SERVERS` is set.
pub struct Server {
    pub flavor: Flavor,
    pub port: u16,
    pub server_id: u32,
    dir: Place,
    child: Option<Child>,
    opts: ServerOptions,
    version: String,
    /// root's password when the server is private.
    root_password: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} server on 127.0.0.1:{} (id {})", self.flavor, self.port, self.server_id)
    }
}

impl Server {
    /// Starts a new server of `flavor` with default options.
    pub async fn start(flavor: Flavor) -> Result<Server> {
        Self::start_with(flavor, ServerOptions::default()).await
    }

    /// Starts a new server of `flavor`.
    pub async fn start_with(flavor: Flavor, opts: ServerOptions) -> Result<Server> {
        let t = template(flavor).wrap_err_with(|| format!("preparing a {flavor} server"))?;
        let server_id = next_server_id();
        let run = run_dir(flavor)?;
        let dir = Place { host: run.host.join(format!("s{server_id}")), server: run.server.join(format!("s{server_id}")) };
        let _ = std::fs::remove_dir_all(&dir.host);
        std::fs::create_dir_all(&dir.host)?;
        std::fs::set_permissions(&dir.host, std::fs::Permissions::from_mode(0o700))
            .wrap_err_with(|| format!("making {} private", dir.host.display()))?;
        // Its own temporary directory: nothing shared with other processes' /tmp.
        std::fs::create_dir_all(dir.host.join("tmp"))?;
        let init_time: Vec<String> = match flavor {
            Flavor::MySql => opts
                .extra_args
                .iter()
                .filter(|a| MYSQL_INIT_TIME_OPTIONS.iter().any(|o| a.starts_with(o)))
                .cloned()
                .collect(),
            Flavor::MariaDb => Vec::new(),
        };
        if init_time.is_empty() {
            copy_dir(&t.host, &dir.host.join("data"))?;
        } else {
            initialize(flavor, &dir.server.join("data"), &init_time)?;
        }
        // Each MySQL server needs its own server_uuid: drop the template's so mysqld makes a new one.
        let _ = std::fs::remove_file(dir.host.join("data").join("auto.cnf"));
        let _ = std::fs::remove_file(dir.host.join("data").join(".ready"));
        let mut last_err = None;
        for _ in 0..3 {
            let port = free_port()?;
            let mut s = Server {
                flavor,
                port,
                server_id,
                dir: dir.clone(),
                child: None,
                opts: opts.clone(),
                version: String::new(),
                root_password: None,
            };
            s.write_tls_files()?;
            match s.launch().await {
                Ok(()) => {
                    s.after_first_start().await?;
                    return Ok(s);
                }
                Err(e) => {
                    s.kill9();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| eyre!("server did not start")))
    }

    fn args(&self) -> Vec<String> {
        let d = &self.dir.server;
        let mut a = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", d.join("data").display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".to_string(),
            format!("--socket={}", d.join("mysqld.sock").display()),
            format!("--pid-file={}", d.join("mysqld.pid").display()),
            format!("--log-error={}", d.join("error.log").display()),
            format!("--tmpdir={}", d.join("tmp").display()),
            "--user=root".to_string(),
            "--log-bin=mysql-bin".to_string(),
            "--binlog-format=ROW".to_string(),
            "--binlog-row-image=FULL".to_string(),
            format!("--server-id={}", self.server_id),
            "--log-slave-updates".to_string(),
            "--event-scheduler=ON".to_string(),
        ];
        match self.flavor {
            Flavor::MariaDb => a.push("--gtid-strict-mode=1".to_string()),
            Flavor::MySql => {
                a.extend(
                    ["--secure-file-priv=", "--mysqlx=OFF", "--gtid-mode=ON", "--enforce-gtid-consistency=ON"]
                        .map(String::from),
                );
            }
        }
        if self.opts.tls.is_some() {
            let t = d.join("tls");
            a.push(format!("--ssl-ca={}", t.join("ca.pem").display()));
            a.push(format!("--ssl-cert={}", t.join("server-cert.pem").display()));
            a.push(format!("--ssl-key={}", t.join("server-key.pem").display()));
            a.push("--require-secure-transport=ON".to_string());
        }
        a.extend(self.opts.extra_args.iter().cloned());
        a
    }

    /// Writes the TLS PEMs the server reads (`tls/` in its private directory), once, before its first start.
    fn write_tls_files(&self) -> Result<()> {
        let Some(tls) = &self.opts.tls else { return Ok(()) };
        let dir = self.dir.host.join("tls");
        std::fs::create_dir_all(&dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
        for (name, text) in [("ca.pem", &tls.ca_pem), ("server-cert.pem", &tls.cert_pem), ("server-key.pem", &tls.key_pem)] {
            let path = dir.join(name);
            if !path.exists() {
                write_private(&path, text)?;
            }
        }
        Ok(())
    }

    async fn launch(&mut self) -> Result<()> {
        let mut cmd = match self.flavor {
            Flavor::MariaDb => Command::new("/usr/sbin/mariadbd"),
            Flavor::MySql => {
                let mut c = Command::new("chroot");
                c.arg(mysql_chroot()).arg("/usr/sbin/mysqld");
                c
            }
        };
        cmd.args(self.args()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; the closure only calls it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().wrap_err_with(|| format!("spawning {}", self.flavor))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    bail!("{} exited during start-up ({status}); error log:\n{}", self.flavor, self.error_log_tail(30));
                }
            }
            if let Ok(mut c) = mysql_async::Conn::new(self.opts_for("")).await {
                let v: Option<String> = c.query_first("SELECT @@version").await.ok().flatten();
                let _ = c.disconnect().await;
                if let Some(v) = v {
                    self.version = v;
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("{} did not accept connections within 90 s; error log:\n{}", self.flavor, self.error_log_tail(30));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// First start only: drop MariaDB's anonymous users (they shadow named users over 127.0.0.1), not binlogged;
    /// a private server's root accounts get their random password.
    async fn after_first_start(&mut self) -> Result<()> {
        let mut c = self.conn().await?;
        c.query_drop("SET SESSION sql_log_bin=0").await?;
        if self.flavor == Flavor::MariaDb {
            let anon: Vec<String> = c.query("SELECT Host FROM mysql.user WHERE User=''").await?;
            for host in anon {
                c.exec_drop("DROP USER ''@?", (host,)).await?;
            }
        }
        if self.opts.private {
            let password = random_password();
            let hosts: Vec<String> = c.query("SELECT Host FROM mysql.user WHERE User='root'").await?;
            for host in hosts {
                // The password is 32 letters and digits (random_password) and the host comes from mysql.user:
                // quoted as a string literal either way. ALTER USER takes no placeholders.
                let host = host.replace('\\', "\\\\").replace('\'', "\\'");
                c.query_drop(format!("ALTER USER 'root'@'{host}' IDENTIFIED BY '{password}'"))
                    .await
                    .wrap_err("setting the sandbox's root password")?;
            }
            write_private(&self.dir.host.join("root-password"), &password)?;
            self.root_password = Some(password);
        }
        c.disconnect().await?;
        Ok(())
    }

    /// Where a private server's root password is kept (mode 0600), if the server is private.
    pub fn password_file(&self) -> Option<PathBuf> {
        self.root_password.as_ref().map(|_| self.dir.host.join("root-password"))
    }

    /// root's password, if the server is private.
    pub fn root_password(&self) -> Option<&str> {
        self.root_password.as_deref()
    }

    /// Tail of the server's error log, for failure messages.
    pub fn error_log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.host.join("error.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Connection options for `root` on this server, default database `db` (empty: none).
    pub fn opts_for(&self, db: &str) -> mysql_async::Opts {
        let mut b = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some("root"))
            .pass(self.root_password.clone())
            .prefer_socket(false)
            .wait_timeout(Some(28_800));
        if !db.is_empty() {
            b = b.db_name(Some(db));
        }
        if let Some(tls) = &self.opts.tls {
            let ca = vec![tls.ca_pem.as_bytes().to_vec().into()];
            b = b.ssl_opts(Some(mysql_async::SslOpts::default().with_root_certs(ca).with_disable_built_in_roots(true)));
        }
        b.into()
    }

    /// Connection options for `root` without TLS, even on a TLS server (to show that it refuses them).
    pub fn plain_opts(&self) -> mysql_async::Opts {
        mysql_async::OptsBuilder::from_opts(self.opts_for("")).ssl_opts(None::<mysql_async::SslOpts>).into()
    }

    /// Where the server's CA certificate is (PEM, this process's view), when it serves TLS.
    pub fn tls_ca_file(&self) -> Option<PathBuf> {
        self.opts.tls.as_ref().map(|_| self.dir.host.join("tls").join("ca.pem"))
    }

    /// A new connection as root.
    pub async fn conn(&self) -> Result<mysql_async::Conn> {
        mysql_async::Conn::new(self.opts_for("")).await.wrap_err_with(|| format!("connecting to {self:?}"))
    }

    /// A new connection as root with a default database.
    pub async fn conn_db(&self, db: &str) -> Result<mysql_async::Conn> {
        mysql_async::Conn::new(self.opts_for(db)).await.wrap_err_with(|| format!("connecting to {self:?} db {db}"))
    }

    /// `@@version` read at start-up.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The server's data directory as this process sees it.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.host.join("data")
    }

    /// Process id of the server, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the server with SIGKILL (a crash) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory (after `kill9` or `stop`).
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.stop();
        }
        self.launch().await
    }

    /// Stops the server cleanly (SIGTERM, then SIGKILL after 30 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: sending a signal to our own child process id.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

/// 32 random letters and digits.
fn random_password() -> String {
    use rand::{distributions::Alphanumeric, Rng};
    rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

/// Writes `text` to a new file only its owner can read (never through an existing file or symlink).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .wrap_err_with(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes()).wrap_err_with(|| format!("writing {}", path.display()))
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::env::var_os("REVENANT_KEEP_SERVERS").is_some() {
            return;
        }
        // A quick SIGKILL: the data is thrown away anyway.
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir.host);
    }
}
