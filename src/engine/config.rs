//! The engine's settings, already validated and merged (flags over TOML over defaults) by the CLI layer.
//! Passwords are held in [`Secret`], which never prints.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::hooks::HookHints;

/// A password: never shown by Debug or Display, never serialised.
#[derive(Clone, Default)]
pub struct Secret(Option<String>);

impl Secret {
    pub fn new(p: Option<String>) -> Self {
        Secret(p.filter(|s| !s.is_empty()))
    }
    pub fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Secret(****)" } else { "Secret(none)" })
    }
}

/// A migration run on a replica itself (gh-ost's flags of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReplica {
    /// `--migrate-on-replica`: copy, apply and cut over on the replica; replication goes on.
    Migrate,
    /// `--test-on-replica`: the same, but before the cut-over replication is stopped (unless
    /// `--test-on-replica-skip-replica-stop`: `stop_replication` false) and right after the swap the tables are
    /// swapped back: the original serves under its name again and the migrated copy stays as the ghost table, to
    /// be compared while replication stays stopped.
    Test { stop_replication: bool },
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub socket: Option<PathBuf>,
    /// TLS to this server (None: plain TCP, as the server allows). Every connection revenant opens to it takes
    /// its options from [`ConnectionConfig::opts`], so they all use it alike.
    pub tls: Option<TlsConfig>,
    /// MariaDB: the GTID domain of every transaction written through this connection (`SET SESSION
    /// gtid_domain_id`); set for a migration on a replica, whose own writes must not take sequence numbers of the
    /// domains it replicates (gtid_strict_mode would stop its replication).
    pub gtid_domain_id: Option<u32>,
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVerify {
    /// The chain up to a trusted CA (`--ssl-ca`, else the built-in web roots) and the host name (`--ssl`, the
    /// client's `ssl-mode=VERIFY_IDENTITY`).
    Identity,
    /// The chain only, not the host name (the client's `ssl-mode=VERIFY_CA`).
    CaOnly,
    /// Nothing: encrypted, but anyone in the middle can pose as the server (`--ssl-allow-insecure`, the client's
    /// `ssl-mode=REQUIRED`).
    Insecure,
}

/// TLS settings for one server (PEM files; the key's file is read at connect time, never logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub verify: TlsVerify,
}

impl TlsConfig {
    /// mysql_async's TLS options: with `ca`, only that CA is trusted (as the mysql client does).
    pub fn ssl_opts(&self) -> mysql_async::SslOpts {
        let mut o = mysql_async::SslOpts::default();
        if let Some(ca) = &self.ca {
            o = o.with_root_certs(vec![ca.clone().into()]).with_disable_built_in_roots(true);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            o = o.with_client_identity(Some(mysql_async::ClientIdentity::new(cert.clone().into(), key.clone().into())));
        }
        match self.verify {
            TlsVerify::Identity => o,
            TlsVerify::CaOnly => o.with_danger_skip_domain_validation(true),
            TlsVerify::Insecure => o.with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true),
        }
    }
}

impl ConnectionConfig {
    /// mysql_async options for this server (no default database), TLS as configured. Multi-statements are off (the server refuses a
    /// text query holding a second statement; vendor/mysql_async/VENDORED.md), and LOAD DATA LOCAL has no handler.
    pub fn opts(&self) -> mysql_async::Opts {
        let mut b = mysql_async::OptsBuilder::default()
            .multi_statements(false)
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(self.password.expose().map(str::to_string))
            .prefer_socket(false)
            .stmt_cache_size(64)
            .wait_timeout(Some(28_800));
        if let Some(s) = &self.socket {
            b = b.socket(Some(s.display().to_string()));
        }
        if let Some(tls) = &self.tls {
            b = b.ssl_opts(Some(tls.ssl_opts()));
        }
        let mut init = Vec::new();
        if let Some(domain) = self.gtid_domain_id {
            init.push(format!("SET SESSION gtid_domain_id = {domain}"));
        }
        init.extend(crate::engine::connection::session_timeouts());
        if !init.is_empty() {
            b = b.init(init);
        }
        b.into()
    }

    /// `host:port` for people (never the password).
    pub fn display(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// What to check when a connection to this server fails (TLS settings included when TLS is on).
    pub fn connect_hint(&self) -> &'static str {
        match &self.tls {
            Some(_) => "check --host, --port, --user, the password source, and the TLS settings: --ssl-ca must name the CA that signed the server's certificate, whose names must include --host (or give --ssl-allow-insecure to skip verification)",
            None => "check --host, --port, --user and the password source (a server with require_secure_transport=ON needs --ssl)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutOverMode {
    /// The table is never missing: sentry table + LOCK TABLES + RENAME from a second connection.
    Atomic,
    /// Rename the original away, then the ghost in: a short moment with no table.
    TwoStep,
}

/// How the copy and the applier write rows (gh-ost's `--skip-strict-mode`, `--panic-on-warnings`,
/// `--allow-zero-in-date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowWrites {
    /// Copy and apply run with STRICT_ALL_TABLES: a value the new column cannot hold is an error, not a conversion.
    pub strict: bool,
    /// A warning raised while a chunk is copied (other than the expected duplicate-key skips on the shared key)
    /// stops the run before the cut-over; off: it is logged and the copy goes on.
    pub panic_on_warnings: bool,
    /// The ghost's CREATE/ALTER runs without NO_ZERO_DATE / NO_ZERO_IN_DATE (a zero-date DEFAULT is accepted).
    pub allow_zero_in_date: bool,
}

impl Default for RowWrites {
    fn default() -> Self {
        RowWrites { strict: true, panic_on_warnings: true, allow_zero_in_date: false }
    }
}

/// The settings every run takes, migrate and move-tables alike: the shared flag groups (copy, throttle,
/// cut-over, hooks, run) after their one conversion (src/cli/settings.rs). Each config holds one of these; no
/// run-wide setting is repeated in a config of its own.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Without it: a dry run that validates and changes nothing.
    pub execute: bool,
    /// Continue a run from its checkpoint table.
    pub resume: bool,
    /// How long to keep retrying after connection errors before leaving a resumable state.
    pub retry_for: Duration,
    /// `--mysql-timeout`: connect timeout and the sessions' net read/write timeouts (see `engine::connection`).
    pub mysql_timeout: Option<Duration>,
    /// The command a user runs to resume (printed when the run stops resumable).
    pub resume_command: Option<String>,
    pub chunk_size: u64,
    /// Adapt the chunk size towards this duration per chunk.
    pub chunk_target: Duration,
    pub dml_batch_size: u64,
    /// Writer connections of the applier (`--apply-threads`): each batch is split by key over them.
    pub apply_threads: usize,
    /// Strict mode, warnings and zero dates of the row writers.
    pub writes: RowWrites,
    /// Lock wait timeout of the cut-over's (or the fence's) rename, retried up to `default_retries` times.
    pub cut_over_lock_timeout: Duration,
    pub default_retries: u32,
    /// Start with the cut-over postponed until approved (console `C` / socket `unpostpone`).
    pub postpone_cut_over: bool,
    /// The cut-over waits while this file exists.
    pub postpone_cut_over_flag_file: Option<PathBuf>,
    /// `--hooks-path`: directory of gh-ost-on-* executables (docs/hooks.md).
    pub hooks_path: Option<PathBuf>,
    /// `--hooks-hint`, `--hooks-hint-owner`, `--hooks-hint-token`: passed to every hook.
    pub hook_hints: HookHints,
    /// `--hooks-status-interval`: how often gh-ost-on-status runs.
    pub hooks_status_interval: Duration,
    /// `--hook-timeout-seconds`: a hook still running after this is killed (and has failed).
    pub hook_timeout: Duration,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// The throttle's inputs.
    pub throttle: ThrottleConfig,
}

/// What holds the copy back (gh-ost's throttle flags); an input that cannot be read throttles (fails closed).
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    pub max_lag_millis: u64,
    pub throttle_flag_file: Option<PathBuf>,
    pub throttle_additional_flag_file: Option<PathBuf>,
    pub panic_flag_file: Option<PathBuf>,
    /// Throttle while this query returns a value > 0; an error throttles (fails closed).
    pub throttle_query: Option<String>,
    pub nice_ratio: f64,
    /// `--max-load Var=N,...`: throttle while a global status variable is at or above N.
    pub max_load: Vec<crate::engine::throttle::throttlers::LoadThreshold>,
    /// `--critical-load Var=N,...`: abort (resumably) or hibernate when one is reached.
    pub critical_load: Vec<crate::engine::throttle::throttlers::LoadThreshold>,
    /// `--critical-load-interval-millis`: a met critical load is checked again after this before acting (0: at once).
    pub critical_load_interval: Duration,
    /// `--critical-load-hibernate-seconds`: instead of aborting, pause copy and apply this long (0: abort).
    pub critical_load_hibernate: Duration,
    /// `--throttle-control-replicas`: replicas whose heartbeat lag throttles the copy.
    pub throttle_control_replicas: Vec<crate::engine::throttle::throttlers::ReplicaAddr>,
    /// Also check the replicas the primary lists (SHOW REPLICAS / SHOW SLAVE HOSTS).
    pub discover_replicas: bool,
    /// `--throttle-http URL`: throttle unless a HEAD request answers 200 (plain http).
    pub throttle_http: Option<String>,
    /// `--throttle-http-interval-millis`: time between two checks of the URL.
    pub throttle_http_interval: Duration,
    /// `--throttle-http-timeout-millis`: a check slower than this is an error.
    pub throttle_http_timeout: Duration,
    /// `--ignore-http-errors`: an unreachable URL does not throttle (gh-ost's flag; by default it does: fail closed).
    pub ignore_http_errors: bool,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_lag_millis: 1500,
            throttle_flag_file: None,
            throttle_additional_flag_file: None,
            panic_flag_file: None,
            throttle_query: None,
            nice_ratio: 0.0,
            max_load: Vec::new(),
            critical_load: Vec::new(),
            critical_load_interval: Duration::ZERO,
            critical_load_hibernate: Duration::ZERO,
            throttle_control_replicas: Vec::new(),
            discover_replicas: true,
            throttle_http: None,
            throttle_http_interval: Duration::from_millis(100),
            throttle_http_timeout: Duration::from_millis(1000),
            ignore_http_errors: false,
        }
    }
}

impl Default for RunSettings {
    /// gh-ost's defaults where they exist.
    fn default() -> Self {
        RunSettings {
            execute: false,
            resume: false,
            retry_for: Duration::from_secs(60),
            resume_command: None,
            chunk_size: 1000,
            chunk_target: Duration::from_millis(500),
            dml_batch_size: 1000,
            apply_threads: 1,
            mysql_timeout: None,
            writes: RowWrites::default(),
            cut_over_lock_timeout: Duration::from_secs(3),
            default_retries: 60,
            postpone_cut_over: false,
            postpone_cut_over_flag_file: None,
            hooks_path: None,
            hook_hints: HookHints::default(),
            hooks_status_interval: Duration::from_secs(60),
            hook_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_millis(500),
            throttle: ThrottleConfig::default(),
        }
    }
}

/// Everything a migration needs: the table, the ALTER, migrate's own choices, and the run-wide settings.
#[derive(Debug, Clone)]
pub struct MigrationConfig {
    /// The primary: the table is read and changed there (ghost, changelog, checkpoint, cut-over).
    pub source: ConnectionConfig,
    /// Replica mode (gh-ost's default topology): the server whose binary log is streamed, when `--host` named a
    /// replica; `source` is then its primary. None: the binary log of `source`.
    pub binlog_source: Option<ConnectionConfig>,
    /// gh-ost's `--assume-master-host` (host, port): the primary, instead of the one `--host` replicates from.
    pub assume_master_host: Option<(String, u16)>,
    /// gh-ost's `--master-user`: the user on the primary in replica mode (default: `source`'s).
    pub master_user: Option<String>,
    /// gh-ost's `--replica-server-id`: the server id the binlog stream presents (None: one picked per run, 1000000
    /// and up). Preflight refuses one the server or a replica of it already has.
    pub replica_server_id: Option<u32>,
    pub database: String,
    pub table: String,
    /// The ALTER clause or full statement, as given.
    pub alter: String,
    pub cut_over: CutOverMode,
    pub approve_renamed_columns: bool,
    pub skip_renamed_columns: bool,
    /// gh-ost's `--allow-nullable-unique-key`: a nullable unique key may be the migration's key (see `ColumnMapping::nullable_key`).
    pub allow_nullable_unique_key: bool,
    pub allow_on_master: bool,
    /// gh-ost's `--test-on-replica` / `--migrate-on-replica`: the whole migration on the replica `--host` names
    /// (no replica mode; nothing is written on its primary). None: the usual topology.
    pub on_replica: Option<OnReplica>,
    /// The server may replicate from another one (two primaries, gh-ost's `--allow-master-master`); without it a
    /// server that is a replica is refused, naming its primary.
    pub allow_master_master: bool,
    pub ok_to_drop_table: bool,
    pub initially_drop_ghost_table: bool,
    pub initially_drop_old_table: bool,
    pub exact_rowcount: bool,
    /// Verify original and ghost chunk by chunk (checksums over the shared columns) before the ready phase; on
    /// by default (`--checksum=false` turns it off).
    pub checksum: bool,
    /// Create the ghost without its plain secondary indexes and add them in place after the copy (on by default;
    /// `--defer-secondary-indexes=false` turns it off). See `engine::plan::indexes`.
    pub defer_secondary_indexes: bool,
    /// `--copy-threads`: copy workers, one per slice of the key range (None: this machine's cores, at most 4; see
    /// `engine::copy::parallel`). A resume keeps the slices its checkpoint holds.
    pub copy_threads: Option<usize>,
    pub attempt_instant_ddl: bool,
    /// `--analyze-ghost-table-before-cutover`: ANALYZE TABLE on the ghost right before the cut-over (a failure
    /// stops the run with the original serving).
    pub analyze_ghost_before_cutover: bool,
    /// gh-ost's `--force-table-names`: the artifact tables are `_<name>_gho`, `_ghc`, `_ghk`, `_del`.
    pub force_table_names: Option<String>,
    /// The old table's name when it is not `_<base>_del`: gh-ost's `--timestamp-old-table` (`_<base>_<start
    /// time>_del`, chosen by the command line for a new run and read back from the checkpoint's `old-table` row on
    /// resume, so every run of one migration renames the original to the same name).
    pub old_table_name: Option<String>,
    /// gh-ost's `--checkpoint`: the checkpoint table is kept after the swap (unless `--ok-to-drop-table`), so that
    /// `--revert` can bring the old table up to date later.
    pub keep_checkpoint: bool,
    /// gh-ost's `--revert --old-table X`: X (the old table of a migration that ran with `--checkpoint`) is this
    /// run's ghost, brought up to date from the kept checkpoint's position and swapped back in
    /// (`pipeline/migrate/revert.rs`).
    pub revert_from: Option<String>,
    /// gh-ost's `--discard-foreign-keys`: a table with child-side foreign keys is migrated and the new table has
    /// none (the ghost is created without them); parent-side ones are still refused.
    pub discard_foreign_keys: bool,
    /// gh-ost's `--include-triggers` with its naming (`--trigger-suffix`, `--remove-trigger-suffix-if-exists`):
    /// the original's triggers are created on the new table at the cut-over. None: a table with triggers is refused.
    pub triggers: Option<crate::engine::cutover::triggers::TriggerNaming>,
    /// Following a promoted primary (docs/failover.md).
    pub failover: FailoverSettings,
    /// Copy, throttle, cut-over, hook and run settings (shared with move-tables).
    pub run: RunSettings,
}

/// How a migration follows its primary when it goes away or is demoted (docs/failover.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverSettings {
    /// `--failover-candidates`: servers that may be the new primary, tried after `--host` itself.
    pub candidates: Vec<(String, u16)>,
    /// `--failover-timeout`: how long to wait for a new primary before stopping resumably (zero: never follow).
    pub timeout: Duration,
}

impl Default for FailoverSettings {
    fn default() -> Self {
        FailoverSettings { candidates: Vec::new(), timeout: Duration::from_secs(600) }
    }
}

impl MigrationConfig {
    /// Defaults for everything but the connection, table and ALTER (gh-ost's defaults where they exist).
    pub fn new(source: ConnectionConfig, database: &str, table: &str, alter: &str) -> Self {
        MigrationConfig {
            source,
            binlog_source: None,
            assume_master_host: None,
            master_user: None,
            replica_server_id: None,
            database: database.to_string(),
            table: table.to_string(),
            alter: alter.to_string(),
            cut_over: CutOverMode::Atomic,
            approve_renamed_columns: false,
            allow_nullable_unique_key: false,
            skip_renamed_columns: false,
            allow_on_master: true,
            on_replica: None,
            allow_master_master: false,
            ok_to_drop_table: false,
            initially_drop_ghost_table: false,
            initially_drop_old_table: false,
            exact_rowcount: false,
            checksum: true,
            defer_secondary_indexes: true,
            copy_threads: None,
            attempt_instant_ddl: false,
            analyze_ghost_before_cutover: false,
            force_table_names: None,
            old_table_name: None,
            keep_checkpoint: false,
            revert_from: None,
            discard_foreign_keys: false,
            triggers: None,
            failover: FailoverSettings::default(),
            run: RunSettings::default(),
        }
    }

    /// The server whose binary log the run streams (the replica in replica mode, else the primary).
    pub fn binlog_server(&self) -> &ConnectionConfig {
        self.binlog_source.as_ref().unwrap_or(&self.source)
    }

    /// The name the artifact tables are built on: the table's, or gh-ost's `--force-table-names`.
    pub fn artifact_base(&self) -> &str {
        self.force_table_names.as_deref().unwrap_or(&self.table)
    }
    pub fn ghost_table(&self) -> String {
        match &self.revert_from {
            Some(old) => old.clone(),
            None => format!("_{}_gho", self.artifact_base()),
        }
    }
    /// The ghost of a migration (not of a revert): the name the original migration's renames used.
    pub fn migration_ghost_table(&self) -> String {
        format!("_{}_gho", self.artifact_base())
    }
    /// A revert's old table: the table it swaps out (the migrated one) is kept as `_<base>_rev_del`.
    pub fn reverted_table(&self) -> String {
        format!("_{}_rev_del", self.artifact_base())
    }
    pub fn changelog_table(&self) -> String {
        format!("_{}_ghc", self.artifact_base())
    }
    pub fn old_table(&self) -> String {
        self.old_table_name.clone().unwrap_or_else(|| self.default_old_table())
    }
    /// `_<base>_del`, the old table's name without `--timestamp-old-table`.
    pub fn default_old_table(&self) -> String {
        format!("_{}_del", self.artifact_base())
    }
    /// gh-ost's `--timestamp-old-table` name for a run started at `stamp` (`YYYYMMDDhhmmss`, local time).
    pub fn timestamped_old_table(&self, stamp: &str) -> String {
        format!("_{}_{stamp}_del", self.artifact_base())
    }
    pub fn checkpoint_table(&self) -> String {
        format!("_{}_ghk", self.artifact_base())
    }
}
