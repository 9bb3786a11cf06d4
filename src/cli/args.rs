//! The command line: subcommands and their flags (gh-ost's names where they share a meaning). The flag groups
//! that `migrate` and `move-tables` share (connection, copy, throttle, cut-over, hooks, output and run) are one
//! clap struct each, flattened into both commands under their own `--help` heading; src/cli/settings.rs turns them
//! into the engine's settings in one place. Each field stands on one line with its clap attribute, so that a group
//! reads as a table.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::ghost_compat::GhostCompatArgs;

#[derive(Debug, Parser)]
#[command(name = "revenant", version, propagate_version = true, about = "Online schema migrations for MySQL and MariaDB, with a terminal console")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Change a live table's schema without blocking its writers (gh-ost style, triggerless).
    #[command(
        args_override_self = true,
        after_help = "gh-ost's flags: each is honoured, accepted as a no-op that says why, or refused by name with what \
                      to do instead; docs/gh-ost-compatibility.md has the table."
    )]
    Migrate(MigrateArgs),
    /// A sandbox server, a seeded table, a write load, and a migration in the console.
    Demo(DemoArgs),
    /// Open the console on a migration running elsewhere on this host.
    Attach(AttachArgs),
    /// Copy tables to another server and finish with a cooperative, crash-safe cut-over.
    #[command(args_override_self = true)]
    MoveTables(MoveTablesArgs),
    /// Run outside test cases (gh-ost localtests format) against sandbox servers.
    #[command(hide = true)]
    RunCases(RunCasesArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CutOverArg {
    /// The table is never missing (gh-ost's `default` is this).
    #[value(alias = "default")]
    Atomic,
    /// Rename the original away, then the ghost in: a moment without the table.
    #[value(name = "two-step")]
    TwoStep,
}

/// The server revenant connects to (on a move: the source).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// Server host (the primary: a replica is refused, naming its primary) [default: --conf's host, else 127.0.0.1].
    #[arg(long)] pub host: Option<String>,
    /// Server port [default: --conf's port, else 3306].
    #[arg(long)] pub port: Option<u16>,
    /// User (default: from --conf / ~/.my.cnf, else the login name).
    #[arg(long)] pub user: Option<String>,
    /// Password on the command line: visible in the process list; prefer --conf, MYSQL_PWD or --ask-pass.
    #[arg(long)] pub password: Option<String>,
    /// Prompt for the password.
    #[arg(long)] pub ask_pass: bool,
    /// A my.cnf-style file with a [client] section (user, password, host, port, ssl-ca, ssl-cert, ssl-key, ssl-mode).
    #[arg(long)] pub conf: Option<PathBuf>,
    /// TLS to the server (rustls): the certificate chain and the host name are verified.
    #[arg(long)] pub ssl: bool,
    /// CA certificate (PEM) that signed the server's certificate; only it is trusted. Requires --ssl.
    #[arg(long)] pub ssl_ca: Option<PathBuf>,
    /// Client certificate (PEM), with --ssl-key. Requires --ssl.
    #[arg(long)] pub ssl_cert: Option<PathBuf>,
    /// Client key (PEM), with --ssl-cert. Requires --ssl.
    #[arg(long)] pub ssl_key: Option<PathBuf>,
    /// Encrypt without verifying the server's certificate or name (logs a warning). Requires --ssl.
    #[arg(long)] pub ssl_allow_insecure: bool,
    /// The mysql client's ssl-mode: DISABLED, REQUIRED (no verification), VERIFY_CA, VERIFY_IDENTITY (PREFERRED is refused).
    #[arg(long)] pub ssl_mode: Option<String>,
}

/// How the rows are copied and the binary log applied.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Copy")]
pub struct CopyArgs {
    /// Rows per copy chunk to start with (it adapts to --chunk-time-millis).
    #[arg(long, default_value_t = 1000)] pub chunk_size: u64,
    /// Target duration of one copy chunk.
    #[arg(long, default_value_t = 500)] pub chunk_time_millis: u64,
    /// Row events applied per transaction (at most).
    #[arg(long, default_value_t = 1000)] pub dml_batch_size: u64,
    /// Apply the binary log over N connections at once: each batch's row changes are split by key (a row's changes
    /// always on one connection, in order), each connection commits its part with its own position row in the
    /// checkpoint, and a resume continues from the least of them (a kill -9 redoes at most one batch). Default:
    /// this machine's cores, at most 4.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))] pub apply_threads: Option<u16>,
    /// Stop before the cut-over when copying a chunk raises a warning: a value the new definition cannot hold as
    /// it is (cut, out of range, not in the character set, NULL into NOT NULL) or a duplicate on a unique key the
    /// ALTER adds. ON BY DEFAULT here (gh-ost's is off); --panic-on-warnings=false logs it and copies the changed value.
    #[arg(long, overrides_with = "no_panic_on_warnings")] pub panic_on_warnings: bool,
    /// --panic-on-warnings=false.
    #[arg(long, hide = true, overrides_with = "panic_on_warnings")] pub no_panic_on_warnings: bool,
    /// Copy and apply without strict mode (gh-ost's flag): a value the new column cannot hold is converted by the
    /// server's non-strict rules instead of failing the applier (the copy still stops on its warning unless
    /// --panic-on-warnings=false).
    #[arg(long)] pub skip_strict_mode: bool,
    /// Create and alter the ghost without NO_ZERO_DATE / NO_ZERO_IN_DATE in the session's sql_mode, so an ALTER
    /// with a zero-date DEFAULT is accepted (gh-ost's flag). Rows holding zero dates are always copied as they are.
    #[arg(long)] pub allow_zero_in_date: bool,
}

/// When and how the cut-over runs (on a move: the fencing rename on the source).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cut-over")]
pub struct CutOverArgs {
    /// Lock wait timeout of a cut-over attempt (on a move: of the fencing rename on the source).
    #[arg(long, default_value_t = 3)] pub cut_over_lock_timeout_seconds: u64,
    /// Cut-over attempts before giving up (the original keeps serving).
    #[arg(long, default_value_t = 60)] pub default_retries: u32,
    /// The cut-over waits while this file exists (created at start when missing).
    #[arg(long)] pub postpone_cut_over_flag_file: Option<PathBuf>,
    /// Postpone the cut-over until approved in the console (C) or the socket (unpostpone).
    #[arg(long)] pub postpone_cut_over: bool,
}

/// gh-ost's hooks (docs/hooks.md).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Hooks")]
pub struct HookArgs {
    /// Directory of hook executables named gh-ost-on-startup, gh-ost-on-before-cut-over, ... (docs/hooks.md).
    #[arg(long)] pub hooks_path: Option<PathBuf>,
    /// Free text passed to hooks as GH_OST_HOOKS_HINT.
    #[arg(long)] pub hooks_hint: Option<String>,
    /// Passed to hooks as GH_OST_HOOKS_HINT_OWNER.
    #[arg(long)] pub hooks_hint_owner: Option<String>,
    /// Passed to hooks as GH_OST_HOOKS_HINT_TOKEN.
    #[arg(long)] pub hooks_hint_token: Option<String>,
    /// A hook still running after this many seconds is killed, and counts as failed.
    #[arg(long, default_value_t = 60)] pub hook_timeout_seconds: u64,
}

/// What the run shows, and where it can be reached.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Output and control")]
pub struct OutputArgs {
    /// Print one JSON status object per line instead of gh-ost's status line.
    #[arg(long)] pub status_json: bool,
    /// No console: print status lines (also when stdout is not a terminal).
    #[arg(long)] pub headless: bool,
    /// Console theme: a name in themes/ (default, dark, light, mono) or a TOML file.
    #[arg(long)] pub theme: Option<String>,
    /// Control socket (default /tmp/gh-ost.<db>.<table>.sock; on a move, the first table's name).
    #[arg(long)] pub serve_socket_file: Option<PathBuf>,
    /// On SIGINT/SIGTERM or a stop, write the state JSON here instead of stdout.
    #[arg(long)] pub state_file: Option<PathBuf>,
    /// More log output (revenant logs at info level already: the same as without it).
    #[arg(long)] pub verbose: bool,
    /// Even more log output (debug level).
    #[arg(long)] pub debug: bool,
    /// Less log output: warnings and errors only (status lines and the final report are still printed).
    #[arg(long)] pub quiet: bool,
}

impl OutputArgs {
    /// The log level these flags ask for (REVENANT_LOG overrides it).
    pub fn log_level(&self) -> &'static str {
        if self.debug {
            "debug"
        } else if self.quiet {
            "warn"
        } else {
            "info"
        }
    }
}

/// Settings of the run as a whole.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Run")]
pub struct RunArgs {
    /// Settings from a TOML file (keys are these flags' names); flags override it.
    #[arg(long)] pub config: Option<PathBuf>,
    /// Continue from the checkpoint table (migrate: _<table>_ghk; move-tables: on the target).
    #[arg(long)] pub resume: bool,
    /// How long to retry after lost connections or server restarts before stopping resumably.
    #[arg(long, default_value_t = 60)] pub retry_seconds: u64,
    /// gh-ost's connect, read and write timeout (seconds, fractions allowed; 0 or absent: none): a connection
    /// attempt gives up after it (a lost connection, retried for --retry-seconds), and every session gets it as
    /// net_read_timeout / net_write_timeout (whole seconds, at least 1). Running queries are not cut short.
    #[arg(long, value_name = "SECONDS")] pub mysql_timeout: Option<f64>,
}

/// The flag groups `migrate` and `move-tables` share.
#[derive(Debug, Clone, Args)]
pub struct SharedArgs {
    #[command(flatten)]
    pub copy: CopyArgs,
    #[command(flatten)]
    pub throttle: ThrottleArgs,
    #[command(flatten)]
    pub cut_over: CutOverArgs,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,
    /// Database of the table.
    #[arg(long, help_heading = "Migration")] pub database: Option<String>,
    /// Table to migrate.
    #[arg(long, help_heading = "Migration")] pub table: Option<String>,
    /// The ALTER clause ("ADD COLUMN c INT"), or a full "ALTER TABLE db.t ...".
    #[arg(long, help_heading = "Migration")] pub alter: Option<String>,
    /// Do it. Without this flag: a dry run that validates everything and changes nothing.
    #[arg(long, help_heading = "Migration")] pub execute: bool,
    /// Confirm that revenant read the ALTER's column renames right.
    #[arg(long, help_heading = "Migration")] pub approve_renamed_columns: bool,
    /// Do not copy renamed columns.
    #[arg(long, help_heading = "Migration")] pub skip_renamed_columns: bool,
    /// gh-ost's: migrate by a UNIQUE key whose columns allow NULL when the table has no PRIMARY nor NOT NULL UNIQUE
    /// key. Only while no row holds a NULL in it: checked before anything changes and again before the cut-over,
    /// and a NULL written during the run stops it before the cut-over (the original serving).
    #[arg(long, help_heading = "Migration")] pub allow_nullable_unique_key: bool,
    /// Accepted for gh-ost runbooks: revenant always runs on the primary.
    #[arg(long, help_heading = "Migration")] pub allow_on_master: bool,
    /// Drop the old table (_<t>_del) after a successful cut-over.
    #[arg(long, help_heading = "Migration")] pub ok_to_drop_table: bool,
    /// Drop a leftover ghost table (_<t>_gho) before starting.
    #[arg(long, help_heading = "Migration")] pub initially_drop_ghost_table: bool,
    /// Drop a leftover old table (_<t>_del) before starting.
    #[arg(long, help_heading = "Migration")] pub initially_drop_old_table: bool,
    /// Count the rows exactly for progress (SELECT COUNT(*), before the copy starts).
    #[arg(long, help_heading = "Migration")] pub exact_rowcount: bool,
    /// Verify before the cut-over (on by default; --checksum=false turns it off): after catch-up, original and ghost
    /// are compared chunk by chunk (COUNT and CRC32 over the shared columns, in consistent snapshots taken under a
    /// short read lock on the original); a differing chunk is copied again, and differences that stay fail the run
    /// before any cut-over. `verify` on the socket (`v` in the console) verifies again while the cut-over waits.
    #[arg(long, help_heading = "Migration", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub checksum: bool,
    /// Create the ghost table with its primary and unique keys only and add its other secondary indexes after the
    /// copy, in one in-place ALTER (ALGORITHM=INPLACE, LOCK=NONE) while the binlog is applied: the server builds
    /// them from sorted rows, faster than the copy inserting into them row by row. On by default;
    /// --defer-secondary-indexes=false creates the ghost with all its indexes. Tables with FULLTEXT, SPATIAL,
    /// functional indexes or foreign keys keep all their indexes.
    #[arg(long, help_heading = "Migration", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub defer_secondary_indexes: bool,
    /// Copy with N workers at once, each on its own slice of the key range with its own watermark row in the
    /// checkpoint (a kill -9 redoes at most one chunk per slice). Default: this machine's cores, at most 4; a table
    /// under 10 chunks per slice gets fewer. The slices are fixed when the copy starts: --resume keeps them.
    #[arg(long, value_name = "N", help_heading = "Migration", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub copy_threads: Option<u16>,
    /// First ask the server for the ALTER with ALGORITHM=INSTANT (metadata only, lock wait as the cut-over's);
    /// done if it can, else the migration runs as usual. This alters the original table in place.
    #[arg(long, help_heading = "Migration")] pub attempt_instant_ddl: bool,
    /// ANALYZE TABLE on the ghost right before the cut-over, so the new table starts with fresh statistics; if the
    /// ANALYZE fails the run stops there (the original serving; --resume continues).
    #[arg(long, help_heading = "Cut-over")] pub analyze_ghost_table_before_cutover: bool,
    /// Build the helper tables' names on NAME instead of the table's: _NAME_gho, _NAME_ghc, _NAME_ghk, _NAME_del
    /// (gh-ost's flag; for tables whose names are too long for the suffixes). Give it again with --resume.
    #[arg(long, value_name = "NAME", help_heading = "Migration")] pub force_table_names: Option<String>,
    /// gh-ost's flag: the original is renamed to _<table>_<YYYYMMDDhhmmss>_del (the run's start, local time), so
    /// old tables of several migrations do not clash. The name is kept in the checkpoint: --resume uses it.
    #[arg(long, help_heading = "Migration")] pub timestamp_old_table: bool,
    /// Revert a completed migration that ran with --checkpoint (gh-ost's flag): the old table named by --old-table
    /// is brought up to date from the kept checkpoint and swapped back in; the migrated table is kept as
    /// _<table>_rev_del. Give the migration's own flags (--alter too) besides.
    #[arg(long, help_heading = "Migration")] pub revert: bool,
    /// With --revert: the migration's old table, e.g. _mytable_del.
    #[arg(long, value_name = "NAME", help_heading = "Migration")] pub old_table: Option<String>,
    /// gh-ost's flag: run the whole migration on the replica --host names (nothing on its primary), then stop
    /// replication, cut over and swap straight back: the original serves again and the migrated copy stays as
    /// _<table>_gho, to compare while replication stays stopped (START REPLICA afterwards).
    #[arg(long, help_heading = "Connection")] pub test_on_replica: bool,
    /// With --test-on-replica: do not stop replication before the cut-over (the tables may then differ).
    #[arg(long, help_heading = "Connection")] pub test_on_replica_skip_replica_stop: bool,
    /// gh-ost's flag: run the whole migration on the replica --host names, cut-over included (its primary keeps
    /// the old table; replication goes on). The replica's writes get its own GTIDs.
    #[arg(long, help_heading = "Connection")] pub migrate_on_replica: bool,
    /// DANGER (gh-ost's flag): migrate a table that has foreign keys to other tables; the new table is created
    /// without them, so after the cut-over the table has NO foreign keys. A table that other tables' foreign keys
    /// reference is still refused (the references would follow the old table).
    #[arg(long, help_heading = "Migration")] pub discard_foreign_keys: bool,
    /// gh-ost's flag: the table's triggers are created on the new table (named with --trigger-suffix) at the
    /// cut-over, under the lock, once everything before it is applied; the copy and the applier never fire them.
    /// Without it a table with triggers is refused.
    #[arg(long, help_heading = "Migration")] pub include_triggers: bool,
    /// With --include-triggers (required with it): appended to each trigger's name on the new table (e.g. _v2),
    /// since trigger names are unique in a database and the old table keeps its own.
    #[arg(long, value_name = "SUFFIX", help_heading = "Migration")] pub trigger_suffix: Option<String>,
    /// With --include-triggers and --trigger-suffix: a trigger whose name ends with the suffix loses it instead
    /// (so repeated migrations alternate between two names).
    #[arg(long, help_heading = "Migration")] pub remove_trigger_suffix_if_exists: bool,
    /// Replica mode (gh-ost's default): when --host is a replica its binary log is streamed and the table is
    /// changed on its primary; this names the primary (HOST[:PORT], port 3306 by default) instead of the one the
    /// replica reports (two primaries, or a primary the replica knows by another name).
    #[arg(long, value_name = "HOST[:PORT]", help_heading = "Connection")] pub assume_master_host: Option<String>,
    /// Replica mode: the user on the primary (default: --user); the password comes from the same sources.
    #[arg(long, value_name = "USER", help_heading = "Connection")] pub master_user: Option<String>,
    /// The server id the binary log stream presents (gh-ost's flag; default: one picked per run, 1000000 and up).
    /// One the server or a replica of it already has is refused.
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Connection")]
    pub replica_server_id: Option<u32>,
    #[command(flatten)]
    pub failover: FailoverArgs,
    #[command(flatten)]
    pub shared: SharedArgs,
    /// Continue from a state dump (checked against the checkpoint table); implies --resume.
    #[arg(long, help_heading = "Run")] pub resume_state: Option<PathBuf>,
    /// atomic (the table is never missing; gh-ost's `default`) or two-step.
    #[arg(long, value_enum, default_value_t = CutOverArg::Atomic, help_heading = "Cut-over")] pub cut_over: CutOverArg,
    /// Seconds between runs of gh-ost-on-status.
    #[arg(long, default_value_t = 60, help_heading = "Hooks")] pub hooks_status_interval: u64,
    /// Also serve the control protocol on 127.0.0.1:PORT.
    #[arg(long, help_heading = "Output and control")] pub serve_tcp_port: Option<u16>,
    /// `unpostpone` must name the table.
    #[arg(long, help_heading = "Output and control")] pub force_named_cut_over: bool,
    /// `panic` must name the table.
    #[arg(long, help_heading = "Output and control")] pub force_named_panic: bool,
    /// Serve Prometheus metrics on plain HTTP at this address (e.g. 127.0.0.1:9187).
    #[arg(long, help_heading = "Output and control")] pub metrics_addr: Option<String>,
    /// Send the same metrics as StatsD gauges (`revenant.<name>`, every second) to host:port over UDP, or to a Unix
    /// datagram socket path (gh-ost's flag).
    #[arg(long, value_name = "ADDR", help_heading = "Output and control")] pub statsd_addr: Option<String>,
    /// StatsD tags on every gauge, key:value (repeatable, comma-separated: env:prod,service:db); database and table
    /// are always added. Needs --statsd-addr.
    #[arg(long, value_name = "TAGS", help_heading = "Output and control")] pub statsd_tags: Vec<String>,
    /// With --statsd-addr: seconds between the process's gauges (resident and virtual memory, threads: gh-ost's
    /// Go runtime gauges); 0 sends none.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, help_heading = "Output and control")] pub runtime_metrics_interval: u64,
    #[command(flatten)]
    pub ghost: GhostCompatArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Which sandbox server.
    #[arg(long, default_value = "mariadb")] pub flavor: String,
    /// Rows to seed.
    #[arg(long, default_value_t = 1_000_000)] pub rows: u64,
    /// Writes per second of the write load (inserts, updates and deletes by random id over 4 connections).
    #[arg(long, default_value_t = 300)] pub write_rate: u64,
    /// The ALTER to run.
    #[arg(long, default_value = "ADD COLUMN f INT NOT NULL DEFAULT 0, ADD KEY idx_c (c)")] pub alter: String,
    /// No console: status lines; the cut-over is approved automatically (unless --postpone-cut-over).
    #[arg(long)] pub headless: bool,
    /// Headless too: hold the cut-over until `unpostpone` on the control socket (or `revenant attach` and `C`).
    #[arg(long)] pub postpone_cut_over: bool,
    /// Console theme.
    #[arg(long)] pub theme: Option<String>,
    /// Control socket (default /tmp/gh-ost.demo.orders.sock).
    #[arg(long)] pub serve_socket_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// The migration's control socket (default: the only /tmp/gh-ost.*.sock).
    pub socket: Option<PathBuf>,
    /// Watch only: no key sends a command.
    #[arg(long)] pub read_only: bool,
    /// Screen refreshes per second at most (`+`/`-` change it live); the console redraws only on change.
    #[arg(long, default_value_t = 2.0)] pub refresh_hz: f64,
    /// Console theme.
    #[arg(long)] pub theme: Option<String>,
}

/// The throttle flags of `migrate` and `move-tables` (gh-ost's names); on a move, the signals are read on the
/// source and the lag is the heartbeat's from the source to the target.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Throttling")]
pub struct ThrottleArgs {
    /// Throttle the copy while heartbeat lag exceeds this.
    #[arg(long, default_value_t = 1500)] pub max_lag_millis: u64,
    /// Milliseconds between two heartbeats written to the changelog table (lag is measured from them).
    #[arg(long, default_value_t = 500)] pub heartbeat_interval_millis: u64,
    /// Throttle while this file exists.
    #[arg(long)] pub throttle_flag_file: Option<PathBuf>,
    /// Throttle while this file exists (a second one, shared by migrations).
    #[arg(long)] pub throttle_additional_flag_file: Option<PathBuf>,
    /// Throttle while this query returns a value > 0 (checked every second; an error throttles).
    #[arg(long)] pub throttle_query: Option<String>,
    /// Stop (resumably) when this file appears.
    #[arg(long)] pub panic_flag_file: Option<PathBuf>,
    /// Sleep this fraction of each chunk's time after it.
    #[arg(long, default_value_t = 0.0)] pub nice_ratio: f64,
    /// Throttle while a global status variable is at or above N: Var=N[,Var=N...] (e.g. Threads_running=25).
    #[arg(long)] pub max_load: Option<String>,
    /// Stop (resumably) when a global status variable reaches N: Var=N[,Var=N...].
    #[arg(long)] pub critical_load: Option<String>,
    /// A met critical load is checked again after this many ms before acting (0: act at once).
    #[arg(long, default_value_t = 0)] pub critical_load_interval_millis: u64,
    /// On critical load, pause copy and apply this many seconds instead of stopping (0: stop).
    #[arg(long, default_value_t = 0)] pub critical_load_hibernate_seconds: u64,
    /// Replicas whose heartbeat lag throttles the copy: host[:port][,...] (replicas the primary lists are checked too).
    #[arg(long)] pub throttle_control_replicas: Option<String>,
    /// Throttle unless a HEAD request to this http:// URL answers 200 (unreachable throttles).
    #[arg(long)] pub throttle_http: Option<String>,
    /// Milliseconds between two --throttle-http checks.
    #[arg(long, default_value_t = 100)] pub throttle_http_interval_millis: u64,
    /// Milliseconds a --throttle-http check may take; a slower answer counts as an error.
    #[arg(long, default_value_t = 1000)] pub throttle_http_timeout_millis: u64,
    /// A --throttle-http URL that cannot be reached (or times out) does not throttle; other codes than 200 still do.
    #[arg(long)] pub ignore_http_errors: bool,
}

#[derive(Debug, Clone, Args)]
pub struct MoveTablesArgs {
    /// The source server (where the tables are now).
    #[command(flatten)]
    pub conn: ConnectionArgs,
    /// Database of the tables on the source.
    #[arg(long, help_heading = "Move")] pub database: Option<String>,
    /// Tables to move, comma separated (t1,t2).
    #[arg(long, value_delimiter = ',', help_heading = "Move")] pub tables: Vec<String>,
    /// An ALTER clause applied to every table on the target ("ADD COLUMN c INT"); default: the same definition.
    #[arg(long, help_heading = "Move")] pub alter: Option<String>,
    /// Check both servers and every table and say what would be done, changing nothing on either server.
    #[arg(long, conflicts_with = "execute", help_heading = "Move")] pub dry_run: bool,
    /// Accepted for runbooks written the gh-ost way: a move runs unless --dry-run is given.
    #[arg(long, help_heading = "Move")] pub execute: bool,
    /// Give fenced tables back to the source (RENAME TABLE _<t>_del TO t) after an aborted cut-over.
    #[arg(long, help_heading = "Move")] pub rollback: bool,
    /// Verify before the fence (on by default; --checksum=false turns it off): after catch-up, every source table
    /// and its target table are compared chunk by chunk (COUNT and CRC32 over the shared columns, on each server
    /// in consistent snapshots taken under a short read lock on the source table); a differing chunk is copied
    /// again, and differences that stay fail the move before the fence, the source tables serving. `verify` on
    /// the socket (`v` in the console) verifies again while the cut-over waits.
    #[arg(long, help_heading = "Move", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub checksum: bool,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub failover: FailoverArgs,
    #[command(flatten)]
    pub shared: SharedArgs,
}

/// Following a promoted primary (docs/failover.md), for migrate's `--host` and a move's source (and, with the
/// timeout, its target).
#[derive(Debug, Clone, Args)]
pub struct FailoverArgs {
    /// revenant's: servers that may be the new primary after a failover (HOST:PORT,...), tried after --host
    /// itself and before the replicas revenant discovered (docs/failover.md).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',', help_heading = "Connection")]
    pub failover_candidates: Vec<String>,
    /// revenant's: how long to wait for a new primary once the primary is gone or demoted (90s, 10m, 1h; 0: do not
    /// follow); past it the run stops resumably (exit 3).
    #[arg(long, value_name = "DURATION", default_value = "10m", help_heading = "Connection")]
    pub failover_timeout: String,
}

/// The server a move copies the tables to.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Target server")]
pub struct TargetArgs {
    /// Target server host.
    #[arg(long)] pub target_host: Option<String>,
    /// Target user (default: from --target-conf, else the source's user).
    #[arg(long)] pub target_user: Option<String>,
    /// Database the tables are created in on the target (default: --database).
    #[arg(long)] pub target_database: Option<String>,
    /// A my.cnf-style file with the target's credentials (default: the source's password sources).
    #[arg(long)] pub target_conf: Option<PathBuf>,
    /// Target server port.
    #[arg(long, default_value_t = 3306)] pub target_port: u16,
    /// TLS to the target, verified (without any --target-ssl* flag: --target-conf's ssl keys, else the source's TLS).
    #[arg(long)] pub target_ssl: bool,
    /// CA certificate (PEM) of the target's certificate. Requires --target-ssl.
    #[arg(long)] pub target_ssl_ca: Option<PathBuf>,
    /// Client certificate (PEM) for the target, with --target-ssl-key. Requires --target-ssl.
    #[arg(long)] pub target_ssl_cert: Option<PathBuf>,
    /// Client key (PEM) for the target, with --target-ssl-cert. Requires --target-ssl.
    #[arg(long)] pub target_ssl_key: Option<PathBuf>,
    /// Encrypt to the target without verifying its certificate (logs a warning). Requires --target-ssl.
    #[arg(long)] pub target_ssl_allow_insecure: bool,
    /// ssl-mode for the target: DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY.
    #[arg(long)] pub target_ssl_mode: Option<String>,
    /// revenant's: servers that may be the target's new primary after a failover (HOST:PORT,...), tried after
    /// --target-host and before the target's replicas revenant discovered (docs/failover.md).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub target_failover_candidates: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RunCasesArgs {
    /// Directory of case directories.
    pub dir: PathBuf,
    /// Only cases whose name contains this.
    #[arg(long)] pub only: Option<String>,
    /// Flavours (default: REVENANT_TEST_FLAVORS or both).
    #[arg(long)] pub flavors: Option<String>,
}
