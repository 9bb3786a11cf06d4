//! Hooks: the team's scripts that a migration calls at its milestones, compatible with gh-ost's `--hooks-path`.
//! Every executable in the hooks directory whose name starts with a hook's name (`gh-ost-on-startup`,
//! `gh-ost-on-startup-notify-chat`, ...) runs, in name order, with gh-ost's environment (`GH_OST_*`) and the same
//! values again as `REVENANT_*`. The environment is built from scratch: nothing of revenant's own environment is
//! inherited but `PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ`, `TMPDIR` and `USER`, so a password (`MYSQL_PWD`, a my.cnf
//! read into memory) never reaches a hook. A hook that outlives its timeout is killed with its process group.
//! Which hook failures fail the migration is [`Hook::fails_step`]; docs/hooks.md is the user's contract.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;

use crate::engine::status::{Eta, Status};

/// gh-ost's hooks, in the order a migration reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    OnStartup,
    OnValidated,
    OnRowcountComplete,
    OnBeforeRowCopy,
    OnRowCopyComplete,
    OnBeginPostponed,
    OnBeforeCutOver,
    OnInteractiveCommand,
    OnSuccess,
    OnFailure,
    OnStatus,
    OnBatchCopyRetry,
    OnStopReplication,
    OnStartReplication,
    /// revenant's own: the run was adopted on a new primary (docs/failover.md).
    OnFailover,
}

impl Hook {
    pub const ALL: [Hook; 15] = [
        Hook::OnStartup,
        Hook::OnValidated,
        Hook::OnRowcountComplete,
        Hook::OnBeforeRowCopy,
        Hook::OnRowCopyComplete,
        Hook::OnBeginPostponed,
        Hook::OnBeforeCutOver,
        Hook::OnInteractiveCommand,
        Hook::OnSuccess,
        Hook::OnFailure,
        Hook::OnStatus,
        Hook::OnBatchCopyRetry,
        Hook::OnStopReplication,
        Hook::OnStartReplication,
        Hook::OnFailover,
    ];

    /// gh-ost's file name prefix for this hook.
    pub fn file_name(&self) -> &'static str {
        match self {
            Hook::OnStartup => "gh-ost-on-startup",
            Hook::OnValidated => "gh-ost-on-validated",
            Hook::OnRowcountComplete => "gh-ost-on-rowcount-complete",
            Hook::OnBeforeRowCopy => "gh-ost-on-before-row-copy",
            Hook::OnRowCopyComplete => "gh-ost-on-row-copy-complete",
            Hook::OnBeginPostponed => "gh-ost-on-begin-postponed",
            Hook::OnBeforeCutOver => "gh-ost-on-before-cut-over",
            Hook::OnInteractiveCommand => "gh-ost-on-interactive-command",
            Hook::OnSuccess => "gh-ost-on-success",
            Hook::OnFailure => "gh-ost-on-failure",
            Hook::OnStatus => "gh-ost-on-status",
            Hook::OnBatchCopyRetry => "gh-ost-on-batch-copy-retry",
            Hook::OnStopReplication => "gh-ost-on-stop-replication",
            Hook::OnStartReplication => "gh-ost-on-start-replication",
            Hook::OnFailover => "revenant-on-failover",
        }
    }

    /// Whether a failing hook fails the step it guards (as in gh-ost). on-status, on-failure, on-success and
    /// on-batch-copy-retry only log: the first two report, on-success runs after the swap (nothing to undo), the
    /// last must not turn a retried chunk into a failed migration. on-interactive-command refuses the command.
    pub fn fails_step(&self) -> bool {
        !matches!(self, Hook::OnStatus | Hook::OnFailure | Hook::OnSuccess | Hook::OnBatchCopyRetry | Hook::OnStartReplication | Hook::OnFailover)
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.file_name())
    }
}

/// What the hooks are told about the migration that does not change while it runs.
#[derive(Debug, Clone, Default)]
pub struct HookIdentity {
    pub database: String,
    pub table: String,
    pub ghost_table: String,
    pub old_table: String,
    /// The ALTER as given.
    pub ddl: String,
    /// host:port of the server whose table is migrated.
    pub migrated_host: String,
    /// host:port of the server lag is inspected on (the same server for an in-place migration).
    pub inspected_host: String,
    /// The host revenant runs on.
    pub executing_host: String,
    pub dry_run: bool,
    /// `--revert`: gh-ost's GH_OST_REVERT.
    pub revert: bool,
}

/// `--hooks-hint`, `--hooks-hint-owner`, `--hooks-hint-token`: free text passed to every hook.
#[derive(Debug, Clone, Default)]
pub struct HookHints {
    pub hint: String,
    pub owner: String,
    pub token: String,
}

/// The hook runner of one migration.
#[derive(Debug, Clone)]
pub struct Hooks {
    dir: Option<PathBuf>,
    timeout: Duration,
    hints: HookHints,
    identity: HookIdentity,
}

/// Variables inherited from revenant's own environment; everything else is dropped.
const INHERITED: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"];

/// How much of a failing hook's stderr the error carries.
const STDERR_TAIL: usize = 800;

impl Hooks {
    /// Hooks from `dir` (None: no hooks). Refuses a directory that does not exist, before anything changes.
    pub fn new(dir: Option<PathBuf>, timeout: Duration, hints: HookHints, identity: HookIdentity) -> Result<Hooks> {
        if let Some(d) = &dir {
            if !d.is_dir() {
                return Err(eyre!("--hooks-path {} is not a directory", d.display()))
                    .suggestion("create the directory with the gh-ost-on-* scripts in it, or leave --hooks-path out");
            }
        }
        Ok(Hooks { dir, timeout: timeout.max(Duration::from_millis(100)), hints, identity })
    }

    /// No hooks at all.
    pub fn disabled() -> Hooks {
        Hooks { dir: None, timeout: Duration::from_secs(60), hints: HookHints::default(), identity: HookIdentity::default() }
    }

    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The executables for `hook`, in name order.
    pub fn scripts(&self, hook: Hook) -> Result<Vec<PathBuf>> {
        let Some(dir) = &self.dir else { return Ok(Vec::new()) };
        let mut found = Vec::new();
        let entries = std::fs::read_dir(dir).wrap_err_with(|| format!("reading the hooks directory {}", dir.display()))?;
        for entry in entries {
            let entry = entry.wrap_err_with(|| format!("reading the hooks directory {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.starts_with(hook.file_name()) {
                continue;
            }
            let path = entry.path();
            let meta = std::fs::metadata(&path).wrap_err_with(|| format!("reading {}", path.display()))?;
            if !meta.is_file() {
                continue;
            }
            if meta.permissions().mode() & 0o111 == 0 {
                tracing::warn!("hook {} is not executable: skipped (chmod +x it to run it)", path.display());
                continue;
            }
            found.push(path);
        }
        found.sort();
        Ok(found)
    }

    /// The environment a hook gets: gh-ost's variables, their `REVENANT_*` twins, and `extra` (names without
    /// prefix, e.g. `("COMMAND", "throttle")`, set as both `GH_OST_COMMAND` and `REVENANT_COMMAND`).
    pub fn environment(&self, hook: Hook, extra: &[(String, String)], status: &Status) -> Vec<(String, String)> {
        let id = &self.identity;
        let eta_seconds = match status.eta {
            Eta::Time(s) => format!("{}", s.round() as i64),
            Eta::Due => "0".to_string(),
            Eta::Measuring => "-1".to_string(),
        };
        let lag = status.heartbeat_lag_seconds.unwrap_or(0.0);
        // After a failover the run works on the new primary (followed only when its binary log is read there too).
        let (migrated_host, inspected_host) = match status.failover.count > 0 && !status.target.host.is_empty() {
            true => (status.target.host.clone(), status.target.host.clone()),
            false => (id.migrated_host.clone(), id.inspected_host.clone()),
        };
        let mut facts: Vec<(String, String)> = vec![
            ("DATABASE_NAME".into(), id.database.clone()),
            ("TABLE_NAME".into(), id.table.clone()),
            ("GHOST_TABLE_NAME".into(), id.ghost_table.clone()),
            ("OLD_TABLE_NAME".into(), id.old_table.clone()),
            ("DDL".into(), id.ddl.clone()),
            ("ELAPSED_SECONDS".into(), format!("{:.6}", status.elapsed_seconds)),
            ("ELAPSED_COPY_SECONDS".into(), format!("{:.6}", status.elapsed_copy_seconds)),
            ("ESTIMATED_ROWS".into(), status.copy.rows_estimate.to_string()),
            ("COPIED_ROWS".into(), status.copy.rows_copied.to_string()),
            ("INSPECTED_LAG".into(), format!("{lag:.6}")),
            ("HEARTBEAT_LAG".into(), format!("{lag:.6}")),
            ("PROGRESS".into(), format!("{:.6}", status.copy.percent())),
            ("ETA_SECONDS".into(), eta_seconds),
            ("MIGRATED_HOST".into(), migrated_host),
            ("INSPECTED_HOST".into(), inspected_host),
            ("EXECUTING_HOST".into(), id.executing_host.clone()),
            ("HOOKS_HINT".into(), self.hints.hint.clone()),
            ("HOOKS_HINT_OWNER".into(), self.hints.owner.clone()),
            ("HOOKS_HINT_TOKEN".into(), self.hints.token.clone()),
            ("DRY_RUN".into(), id.dry_run.to_string()),
            ("REVERT".into(), id.revert.to_string()),
        ];
        facts.extend(extra.iter().cloned());
        let mut env: Vec<(String, String)> = Vec::new();
        for k in INHERITED {
            if let Ok(v) = std::env::var(k) {
                env.push((k.to_string(), v));
            }
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
        }
        for (k, v) in &facts {
            env.push((format!("GH_OST_{k}"), v.clone()));
        }
        for (k, v) in &facts {
            env.push((format!("REVENANT_{k}"), v.clone()));
        }
        env.push(("REVENANT_HOOK".into(), hook.file_name().into()));
        env.push(("REVENANT_PHASE".into(), status.phase.map(|p| p.label().to_string()).unwrap_or_default()));
        env
    }

    /// Runs every script of `hook`, one after the other. An Err names the hook, the script, its exit code and the
    /// tail of its stderr; whether that fails the migration is the caller's choice ([`Hook::fails_step`]).
    pub async fn fire(&self, hook: Hook, extra_env: &[(String, String)], status: &Status) -> Result<()> {
        let scripts = self.scripts(hook)?;
        if scripts.is_empty() {
            return Ok(());
        }
        let env = self.environment(hook, extra_env, status);
        for script in scripts {
            self.run_one(hook, &script, &env).await?;
        }
        Ok(())
    }

    /// Fires a hook whose failure only logs (on-status, on-failure, on-success, on-batch-copy-retry).
    pub async fn fire_logged(&self, hook: Hook, extra_env: &[(String, String)], status: &Status) {
        if let Err(e) = self.fire(hook, extra_env, status).await {
            tracing::warn!("{e:#}");
        }
    }

    async fn run_one(&self, hook: Hook, script: &Path, env: &[(String, String)]) -> Result<()> {
        tracing::info!("hook {hook}: running {}", script.display());
        let mut cmd = tokio::process::Command::new(script);
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().wrap_err_with(|| format!("hook {hook}: cannot run {}", script.display()))?;
        let pid = child.id();
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(r) => r.wrap_err_with(|| format!("hook {hook}: waiting for {}", script.display()))?,
            Err(_) => {
                if let Some(pid) = pid {
                    // The whole process group: a shell's children would otherwise keep running.
                    // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
                    unsafe {
                        libc::kill(-(pid as i32), libc::SIGKILL);
                    }
                }
                return Err(eyre!("hook {hook} ({}) timed out after {:?} and was killed", script.display(), self.timeout))
                    .suggestion("make the hook finish sooner or raise --hook-timeout-seconds");
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!("hook {hook}: {line}");
        }
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail = tail(stderr.trim_end(), STDERR_TAIL);
        let code = match output.status.code() {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".to_string(),
        };
        Err(eyre!("hook {hook} ({}) failed with {code}: {}", script.display(), if tail.is_empty() { "(no stderr)" } else { tail }))
    }
}

impl Hooks {
    /// The hooks of an in-place migration, from its settings.
    pub fn for_migration(cfg: &crate::engine::config::MigrationConfig) -> Result<Hooks> {
        let identity = HookIdentity {
            database: cfg.database.clone(),
            table: cfg.table.clone(),
            ghost_table: cfg.ghost_table(),
            old_table: cfg.old_table(),
            ddl: cfg.alter.clone(),
            migrated_host: cfg.source.display(),
            // Replica mode: gh-ost's inspected host is the replica whose binary log is read.
            inspected_host: cfg.binlog_server().display(),
            executing_host: executing_host(),
            dry_run: !cfg.run.execute,
            revert: cfg.revert_from.is_some(),
        };
        let hints = cfg.run.hook_hints.clone();
        Hooks::new(cfg.run.hooks_path.clone(), cfg.run.hook_timeout, hints, identity)
    }
}

/// This machine's host name (gh-ost's GH_OST_EXECUTING_HOST).
pub fn executing_host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).to_string()
}

/// Runs gh-ost-on-status every `interval` and gh-ost-on-batch-copy-retry after each retried chunk, until
/// `cancel`. Failures only log.
pub async fn background_hooks(
    hooks: std::sync::Arc<Hooks>,
    shared: std::sync::Arc<crate::engine::shared::Shared>,
    interval: Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    use std::sync::atomic::Ordering;
    if !hooks.enabled() {
        return;
    }
    let interval = interval.max(Duration::from_secs(1));
    let mut next_status = tokio::time::Instant::now() + interval;
    let mut retries_seen = shared.copy_retries.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let retries = shared.copy_retries.load(Ordering::Relaxed);
        if retries > retries_seen {
            retries_seen = retries;
            let error = shared.with(|i| i.last_copy_error.clone()).unwrap_or_default();
            let snap = shared.snapshot(0);
            hooks.fire_logged(Hook::OnBatchCopyRetry, &[("LAST_BATCH_COPY_ERROR".into(), error)], &snap).await;
        }
        if tokio::time::Instant::now() >= next_status {
            next_status = tokio::time::Instant::now() + interval;
            let snap = shared.snapshot(0);
            hooks.fire_logged(Hook::OnStatus, &[("STATUS".into(), status_text(&snap))], &snap).await;
        }
    }
}

/// The last `max` bytes of `s`, on a character boundary.
fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A short status text for `GH_OST_STATUS` (on-status), in the spirit of gh-ost's status line; a failover (waiting
/// for a new primary, or where the run was adopted) is in its state, as in the status line.
pub fn status_text(s: &Status) -> String {
    let state = if s.throttle.throttled {
        format!("throttled, {}", s.throttle.reason)
    } else {
        s.phase.map(|p| p.gh_ost_state().to_string()).unwrap_or_else(|| "initializing".into())
    };
    let state = s.failover.in_state(state);
    format!(
        "Copy: {}/{} {:.1}%; Applied: {}; Backlog: {}; Lag: {:.2}s; State: {state}; ETA: {}",
        s.copy.rows_copied,
        s.copy.rows_estimate,
        s.copy.percent(),
        s.binlog.events_applied,
        s.binlog.backlog,
        s.heartbeat_lag_seconds.unwrap_or(0.0),
        s.eta
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_on_status_text_carries_a_failover() {
        let mut s = Status { phase: Some(crate::engine::Phase::Copy), ..Default::default() };
        assert!(status_text(&s).contains("State: migrating;"), "{}", status_text(&s));
        s.failover.waiting = true;
        s.failover.reason = "127.0.0.1:3306 is read-only".into();
        assert!(status_text(&s).contains("State: waiting for a new primary"), "{}", status_text(&s));
        s.failover.waiting = false;
        s.failover.adopted_on = "127.0.0.1:3307".into();
        s.failover.adopted_gtid_set = "0-1-42".into();
        s.failover.count = 1;
        assert!(status_text(&s).contains("State: migrating; adopted on 127.0.0.1:3307 at GTID 0-1-42"), "{}", status_text(&s));
    }

    fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn hooks(dir: &Path, timeout: Duration) -> Hooks {
        let id = HookIdentity { database: "app".into(), table: "t".into(), ddl: "ADD COLUMN c INT".into(), ..Default::default() };
        Hooks::new(Some(dir.to_path_buf()), timeout, HookHints { hint: "h".into(), ..Default::default() }, id).unwrap()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("revenant-hooks-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn prefix_match_in_name_order_with_clean_environment() {
        let d = temp_dir("order");
        let out = d.join("out.txt");
        write_script(&d, "gh-ost-on-startup-b", &format!("echo b:$GH_OST_DATABASE_NAME:$REVENANT_DDL:${{MYSQL_PWD:-none}} >> {}", out.display()));
        write_script(&d, "gh-ost-on-startup", &format!("echo a:$GH_OST_HOOKS_HINT >> {}", out.display()));
        write_script(&d, "gh-ost-on-success", &format!("echo wrong >> {}", out.display()));
        std::fs::write(d.join("gh-ost-on-startup-c"), "#!/bin/sh\necho not executable\n").unwrap();
        std::env::set_var("MYSQL_PWD", "secret-in-parent");
        hooks(&d, Duration::from_secs(10)).fire(Hook::OnStartup, &[], &Status::default()).await.unwrap();
        std::env::remove_var("MYSQL_PWD");
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text, "a:h\nb:app:ADD COLUMN c INT:none\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn failure_names_hook_exit_code_and_stderr() {
        let d = temp_dir("fail");
        write_script(&d, "gh-ost-on-before-cut-over", "echo 'not during business hours' >&2; exit 3");
        let e = hooks(&d, Duration::from_secs(10)).fire(Hook::OnBeforeCutOver, &[], &Status::default()).await.unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("gh-ost-on-before-cut-over") && text.contains("exit code 3") && text.contains("not during business hours"), "{text}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn timeout_kills_the_hook_and_its_children() {
        let d = temp_dir("timeout");
        let marker = d.join("survived");
        write_script(&d, "gh-ost-on-status", &format!("(sleep 2; touch {}) & sleep 30", marker.display()));
        let e = hooks(&d, Duration::from_millis(300)).fire(Hook::OnStatus, &[], &Status::default()).await.unwrap_err();
        assert!(format!("{e:#}").contains("timed out"), "{e:#}");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "a child of the killed hook kept running");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn missing_directory_is_refused() {
        let e = Hooks::new(Some("/nonexistent/hooks".into()), Duration::from_secs(1), HookHints::default(), HookIdentity::default()).unwrap_err();
        assert!(format!("{e}").contains("--hooks-path"));
    }
}
