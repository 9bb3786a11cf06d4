//! Following a promoted primary (docs/failover.md): what a server is as a primary (writable and not replicating,
//! read-only, a replica, unreachable), the watch that ends a run's attempt as soon as one of its servers is demoted
//! or has been unreachable past `--retry-seconds` (so nothing more is written there), and the search for the new
//! primary of that server: its host again, then the candidates, then the replicas the old primary listed, each
//! taken only once it is writable, not replicating and holds what the run needs there ([`Holds`]: the checkpoint
//! rows the run committed, or the GTID set the stream continues from). The run then resumes there on the ordinary
//! `--resume` path (the loop is [`crate::engine::pipeline::follow`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result, WrapErr};
use mysql_async::prelude::Queryable;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::checkpoint;
use crate::engine::config::ConnectionConfig;
use crate::engine::pipeline::tasks::StopReason;
use crate::engine::shared::Shared;
use crate::engine::stream::gtid::GtidSet;

/// The stop reason the watch records: a run stopped with it is a failover, not an operator's stop.
pub(crate) const STOP_PREFIX: &str = "failover: ";

/// How often the watch looks at the primary.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// How often the search goes over the candidates again.
const SEARCH_EVERY: Duration = Duration::from_secs(1);
/// A candidate (or the watched primary) that does not answer within this is unreachable for this look.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What a server is, as the primary of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// Writable and replicating from nobody.
    Primary,
    /// Not the primary any more, or not yet: why (read-only, replicates from X).
    Not(String),
}

/// A server looked at: its role, flavour and executed GTID set (MariaDB `@@gtid_binlog_pos`, MySQL `@@gtid_executed`).
pub(crate) struct Probe {
    pub(crate) role: Role,
    pub(crate) mariadb: bool,
    pub(crate) executed: String,
}

/// Connects to `c`, giving up after [`CONNECT_TIMEOUT`].
pub(crate) async fn connect(c: &ConnectionConfig) -> Result<mysql_async::Conn> {
    match tokio::time::timeout(CONNECT_TIMEOUT, crate::engine::connection::connect(c.opts())).await {
        Ok(r) => r.wrap_err_with(|| format!("cannot connect to {}", c.display())),
        Err(_) => Err(eyre!("cannot connect to {}: no answer within {CONNECT_TIMEOUT:?}", c.display())),
    }
}

/// Looks at the server on `conn`: read-only (`read_only`, MySQL's `super_read_only`), replicating (a replication
/// channel whose threads run), or the primary.
pub(crate) async fn probe(conn: &mut mysql_async::Conn) -> Result<Probe> {
    let version: String = conn.query_first("SELECT @@version").await?.unwrap_or_default();
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    let (read_only, super_read_only): (u8, u8) = match mariadb {
        true => conn.query_first("SELECT @@GLOBAL.read_only, 0").await?.unwrap_or((0, 0)),
        false => conn.query_first("SELECT @@GLOBAL.read_only, @@GLOBAL.super_read_only").await?.unwrap_or((0, 0)),
    };
    let executed: String = match mariadb {
        true => conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await?,
        false => conn.query_first("SELECT @@GLOBAL.gtid_executed").await?,
    }
    .unwrap_or_default();
    let q = if mariadb { "SHOW SLAVE STATUS" } else { "SHOW REPLICA STATUS" };
    let rows: Vec<mysql_async::Row> = match conn.query(q).await {
        Ok(rows) => rows,
        // Not allowed to look (as preflight, a writable server is then taken for a primary).
        Err(mysql_async::Error::Server(e)) if matches!(e.code, 1227 | 1142 | 1044) => Vec::new(),
        Err(e) => return Err(e).wrap_err(q),
    };
    let replicating = rows.iter().find_map(|row| {
        let text = |names: [&str; 2]| names.iter().find_map(|n| row.get_opt::<String, _>(*n).and_then(|r| r.ok())).unwrap_or_default();
        let running = |v: String| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("connecting");
        let io = running(text(["Replica_IO_Running", "Slave_IO_Running"]));
        let sql = running(text(["Replica_SQL_Running", "Slave_SQL_Running"]));
        (io || sql).then(|| format!("{}:{}", text(["Source_Host", "Master_Host"]), text(["Source_Port", "Master_Port"])))
    });
    let role = match (replicating, read_only != 0 || super_read_only != 0) {
        (Some(from), _) => Role::Not(format!("replicates from {from}")),
        (None, true) => Role::Not(if super_read_only != 0 { "super_read_only is on".into() } else { "read_only is on".into() }),
        (None, false) => Role::Primary,
    };
    Ok(Probe { role, mariadb, executed })
}

/// Connects to `c` and looks at it.
pub(crate) async fn probe_at(c: &ConnectionConfig) -> Result<Probe> {
    let mut conn = connect(c).await?;
    let p = probe(&mut conn).await;
    let _ = conn.disconnect().await;
    p
}

/// The replicas a primary lists (`SHOW REPLICAS` / `SHOW SLAVE HOSTS`, those that report a port).
async fn listed_replicas(conn: &mut mysql_async::Conn, primary_host: &str) -> Vec<(String, u16)> {
    let rows = match conn.query::<mysql_async::Row, _>("SHOW REPLICAS").await {
        Ok(r) => r,
        Err(_) => conn.query::<mysql_async::Row, _>("SHOW SLAVE HOSTS").await.unwrap_or_default(),
    };
    let mut out = Vec::new();
    for row in rows {
        let col = |name: &str| row.columns_ref().iter().position(|c| c.name_str().eq_ignore_ascii_case(name));
        let host: String = col("Host").and_then(|i| row.get::<Option<String>, _>(i).flatten()).unwrap_or_default();
        let port: u64 = col("Port").and_then(|i| row.get::<Option<u64>, _>(i).flatten()).unwrap_or(0);
        if port == 0 || port > u64::from(u16::MAX) {
            continue;
        }
        out.push((if host.is_empty() { primary_host.to_string() } else { host }, port as u16));
    }
    out
}

/// The watch over one attempt's primary. It ends the attempt (the stop reason starts with [`STOP_PREFIX`], the
/// attempt's token is cancelled) once the primary is read-only or replicating, or has not answered for `retry_for`.
pub(crate) struct Watch {
    task: JoinHandle<()>,
    done: CancellationToken,
    noticed: Arc<Mutex<Option<String>>>,
    replicas: Arc<Mutex<Vec<(String, u16)>>>,
}

impl Watch {
    /// Watches `primary`, the run's `label` server ("primary", "source", "target").
    pub(crate) fn start(label: &'static str, primary: ConnectionConfig, retry_for: Duration, attempt: CancellationToken, stop: StopReason) -> Watch {
        let done = CancellationToken::new();
        let noticed = Arc::new(Mutex::new(None));
        let replicas = Arc::new(Mutex::new(Vec::new()));
        let (d, n, r) = (done.clone(), noticed.clone(), replicas.clone());
        let task = tokio::spawn(async move {
            if let Some(why) = watch(&primary, retry_for, &d, &r).await {
                tracing::warn!("the {label} {}: {why}; copy and apply stop, looking for its new primary", primary.display());
                if let Ok(mut g) = n.lock() {
                    *g = Some(why.clone());
                }
                stop.set(&format!("{STOP_PREFIX}the {label} {} {why}", primary.display()));
                attempt.cancel();
            }
        });
        Watch { task, done, noticed, replicas }
    }

    /// Ends the watch; what it noticed (None: the primary was fine whenever it looked) and the replicas it saw.
    pub(crate) async fn end(self) -> (Option<String>, Vec<(String, u16)>) {
        self.done.cancel();
        let _ = self.task.await;
        let noticed = self.noticed.lock().ok().and_then(|g| g.clone());
        let replicas = self.replicas.lock().map(|g| g.clone()).unwrap_or_default();
        (noticed, replicas)
    }
}

/// Looks at the primary every [`WATCH_EVERY`] until `done`; Some(why) once it is not the primary any more.
async fn watch(primary: &ConnectionConfig, retry_for: Duration, done: &CancellationToken, replicas: &Mutex<Vec<(String, u16)>>) -> Option<String> {
    let mut conn: Option<mysql_async::Conn> = None;
    let mut last_ok = Instant::now();
    let mut listed_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = done.cancelled() => return None,
            _ = tokio::time::sleep(WATCH_EVERY) => {}
        }
        if conn.is_none() {
            conn = connect(primary).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            if last_ok.elapsed() > retry_for {
                return Some(format!("unreachable for {}s (--retry-seconds)", last_ok.elapsed().as_secs()));
            }
            continue;
        };
        match probe(c).await {
            Ok(Probe { role: Role::Primary, .. }) => {
                last_ok = Instant::now();
                if listed_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    listed_at = Some(Instant::now());
                    let found = listed_replicas(c, &primary.host).await;
                    if let Ok(mut g) = replicas.lock() {
                        for f in found {
                            if !g.contains(&f) {
                                g.push(f);
                            }
                        }
                    }
                }
            }
            Ok(Probe { role: Role::Not(why), .. }) => return Some(why),
            // A lost connection is tried again (and counts towards `retry_for`); an error the server answered
            // with says it is there.
            Err(e) if e.chain().any(|c| matches!(c.downcast_ref::<mysql_async::Error>(), Some(mysql_async::Error::Server(_)))) => {
                tracing::debug!("failover watch: {e:#}");
                last_ok = Instant::now();
            }
            Err(_) => conn = None,
        }
    }
}

/// Where the search found the new primary: its connection and the checkpoint's GTID set it holds.
pub(crate) struct Adopted {
    pub(crate) primary: ConnectionConfig,
    pub(crate) gtid_set: String,
}

/// What a candidate must hold to be taken.
#[derive(Debug, Clone)]
pub(crate) enum Holds {
    /// The run's checkpoint table (migrate's primary, a move's target), its rows at least at the last checkpoint the
    /// run committed; `streamed`: the server is also the one the stream reads (migrate), so it must have executed
    /// the GTID set its checkpoint names.
    Checkpoint { database: String, table: String, streamed: bool },
    /// The stream's position (a move's source, whose checkpoint lives on the target): the candidate has executed
    /// the committed GTID set, and `drain` too once the fence recorded one.
    Stream { drain: Option<String> },
}

/// What to look for.
pub(crate) struct Search {
    /// The server given up: its host:port is tried first (a VIP, DNS name or proxy that now leads elsewhere).
    pub(crate) old: ConnectionConfig,
    pub(crate) candidates: Vec<(String, u16)>,
    pub(crate) discovered: Vec<(String, u16)>,
    pub(crate) holds: Holds,
    /// The GTID set of the last checkpoint this run committed: a candidate must hold it (see [`Holds`]).
    pub(crate) committed: String,
    /// Rows the copy had committed: a candidate's copy checkpoint rows must have reached them ([`Holds::Checkpoint`]).
    pub(crate) copied_rows: u64,
    pub(crate) timeout: Duration,
}

/// The replicas a primary listed, then the throttle-control replicas (`--throttle-control-replicas`: the DBA named
/// them as replicas of this primary, so one of them may be promoted), each once.
pub(crate) fn with_control_replicas(mut discovered: Vec<(String, u16)>, control: &[crate::engine::throttle::throttlers::ReplicaAddr]) -> Vec<(String, u16)> {
    for r in control {
        let c = (r.host.clone(), r.port);
        if !discovered.contains(&c) {
            discovered.push(c);
        }
    }
    discovered
}

impl Search {
    /// The candidates in order, each once: the old host, the candidates given, the replicas found.
    fn order(&self) -> Vec<ConnectionConfig> {
        let mut seen: Vec<(String, u16)> = Vec::new();
        let firsts = std::iter::once((self.old.host.clone(), self.old.port));
        for c in firsts.chain(self.candidates.iter().cloned()).chain(self.discovered.iter().cloned()) {
            if !seen.contains(&c) {
                seen.push(c);
            }
        }
        seen.into_iter().map(|(host, port)| ConnectionConfig { host, port, ..self.old.clone() }).collect()
    }

    /// Waits for a new primary until the timeout (Ok(None), every candidate's last verdict in the status) or a
    /// stop (`cancel`; Ok(None) too). The status says what it waits for, since when, and what each candidate was.
    pub(crate) async fn run(&self, shared: &Shared, cancel: &CancellationToken) -> Result<Option<Adopted>> {
        let started = Instant::now();
        let order = self.order();
        loop {
            let mut verdicts = Vec::with_capacity(order.len());
            for c in &order {
                match self.check(c).await {
                    Ok(gtid_set) => {
                        shared.with(|i| i.status.failover.waited_seconds = started.elapsed().as_secs_f64());
                        return Ok(Some(Adopted { primary: c.clone(), gtid_set }));
                    }
                    Err(why) => verdicts.push(format!("{}: {why}", c.display())),
                }
            }
            shared.with(|i| {
                i.status.failover.waited_seconds = started.elapsed().as_secs_f64();
                i.status.failover.candidates_tried = verdicts.clone();
            });
            if started.elapsed() >= self.timeout {
                return Ok(None);
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(None),
                _ = tokio::time::sleep(SEARCH_EVERY) => {}
            }
        }
    }

    /// Whether `c` is the new primary: writable, not replicating, holding what [`Holds`] says. Ok: the GTID set the
    /// run continues from there; Err: why not (yet).
    async fn check(&self, c: &ConnectionConfig) -> std::result::Result<String, String> {
        let mut conn = connect(c).await.map_err(|e| format!("unreachable ({})", root_cause(&e)))?;
        let verdict = self.check_on(&mut conn).await;
        let _ = conn.disconnect().await;
        verdict
    }

    async fn check_on(&self, conn: &mut mysql_async::Conn) -> std::result::Result<String, String> {
        let p = probe(conn).await.map_err(|e| format!("cannot be looked at: {e:#}"))?;
        if let Role::Not(why) = p.role {
            return Err(why);
        }
        let parse = |what: &str, set: &str| GtidSet::parse(p.mariadb, set).map_err(|e| format!("{what} GTID set `{set}` is unreadable: {e:#}"));
        let executed = parse("its", &p.executed)?;
        match &self.holds {
            Holds::Checkpoint { database, table, streamed } => self.check_checkpoint(conn, database, table, (*streamed).then_some(&executed), &parse).await,
            Holds::Stream { drain } => {
                for (what, set) in std::iter::once(("the checkpoint's", &self.committed)).chain(drain.iter().map(|d| ("the drain", d))) {
                    let needed = parse(what, set)?;
                    if !executed.contains(&needed) {
                        return Err(format!(
                            "behind: it has executed {} but {what} GTID set is {set} ({} transactions missing)",
                            p.executed,
                            needed.count_after(&executed)
                        ));
                    }
                }
                Ok(self.committed.clone())
            }
        }
    }

    /// [`Holds::Checkpoint`]: the checkpoint rows are there, have reached the last committed checkpoint and (when
    /// `executed` is given) name a GTID set the server has executed.
    async fn check_checkpoint(
        &self,
        conn: &mut mysql_async::Conn,
        database: &str,
        table: &str,
        executed: Option<&GtidSet>,
        parse: &(dyn Fn(&str, &str) -> std::result::Result<GtidSet, String> + Sync),
    ) -> std::result::Result<String, String> {
        let st = checkpoint::read(conn, database, table)
            .await
            .map_err(|e| format!("its checkpoint cannot be read: {e:#}"))?
            .ok_or_else(|| format!("has no checkpoint table {database}.{table} (not a replica of the old primary?)"))?;
        let here = parse("its checkpoint's", &st.applied_gtid_set)?;
        if let Some(executed) = executed {
            if !executed.contains(&here) {
                return Err(format!("its checkpoint names GTID set {} but it has executed only {}", st.applied_gtid_set, executed));
            }
        }
        // The checkpoint rows arrive by replication: until the last one this run committed is here, the candidate
        // is behind (waited on), and one that never gets it lost it with the old primary (refused at the timeout).
        if !self.committed.trim().is_empty() && !here.contains(&parse("the last committed checkpoint's", &self.committed)?) {
            return Err(format!(
                "behind: its checkpoint is at GTID set {}, this run had committed {} on the old primary ({} transactions missing)",
                st.applied_gtid_set,
                self.committed,
                parse("", &self.committed)?.count_after(&here)
            ));
        }
        let copied = checkpoint::rows_copied_total(conn, database, table).await.map_err(|e| format!("its copy checkpoint cannot be read: {e:#}"))?;
        if copied < self.copied_rows {
            return Err(format!("behind: its copy checkpoint holds {copied} rows copied, this run had committed {} on the old primary", self.copied_rows));
        }
        Ok(st.applied_gtid_set)
    }
}

/// The innermost cause, for one-line verdicts.
fn root_cause(e: &color_eyre::Report) -> String {
    e.chain().last().map(|c| c.to_string()).unwrap_or_default()
}

/// `command` (a resume command, shell-quoted) with `flags` (the host's and the port's: `--host`/`--port`,
/// `--target-host`/`--target-port`) set to `to`.
pub(crate) fn rehost(command: &str, to: &ConnectionConfig, flags: (&str, &str)) -> String {
    let Some(mut words) = shlex::split(command) else { return command.to_string() };
    let mut set = |flag: &str, value: String| {
        let eq = format!("{flag}=");
        if let Some(i) = words.iter().position(|w| w == flag) {
            if i + 1 < words.len() {
                words[i + 1] = value;
                return;
            }
        }
        match words.iter().position(|w| w.starts_with(&eq)) {
            Some(i) => words[i] = format!("{eq}{value}"),
            None => {
                let at = words.len().saturating_sub(1);
                words.insert(at, value);
                words.insert(at, flag.to_string());
            }
        }
    };
    set(flags.0, to.host.clone());
    set(flags.1, to.port.to_string());
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// A word as the resume command quotes it (plain when it is safe unquoted).
fn quote(w: &str) -> String {
    if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:,@".contains(c)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(host: &str, port: u16) -> ConnectionConfig {
        ConnectionConfig { host: host.into(), port, user: "u".into(), password: Default::default(), socket: None, tls: None, gtid_domain_id: None }
    }

    #[test]
    fn the_resume_command_names_the_new_primary() {
        let c = "revenant migrate --host 127.0.0.1 --port 3306 --alter 'ADD COLUMN f INT' --resume";
        let flags = ("--host", "--port");
        assert_eq!(rehost(c, &at("db2", 3307), flags), "revenant migrate --host db2 --port 3307 --alter 'ADD COLUMN f INT' --resume");
        let c = "revenant migrate --host=a --alter x --resume";
        assert_eq!(rehost(c, &at("b", 3307), flags), "revenant migrate --host=b --alter x --port 3307 --resume");
        let c = "revenant move-tables --host a --port 1 --target-host=t --target-port 2 --resume";
        let moved = rehost(c, &at("t2", 3308), ("--target-host", "--target-port"));
        assert_eq!(moved, "revenant move-tables --host a --port 1 --target-host=t2 --target-port 3308 --resume");
    }

    #[test]
    fn candidates_are_tried_once_each_host_first() {
        let old = at("vip", 3306);
        let candidates = [("db2".to_string(), 3306), ("vip".to_string(), 3306)];
        let discovered = [("db3".to_string(), 3306), ("db2".to_string(), 3306)];
        let holds = Holds::Stream { drain: None };
        let s = Search { old, candidates: candidates.to_vec(), discovered: discovered.to_vec(), holds, committed: String::new(), copied_rows: 0, timeout: Duration::ZERO };
        let order: Vec<String> = s.order().iter().map(|c| c.display()).collect();
        assert_eq!(order, ["vip:3306", "db2:3306", "db3:3306"]);
    }

    #[test]
    fn throttle_control_replicas_are_candidates_after_the_listed_replicas() {
        use crate::engine::throttle::throttlers::ReplicaAddr;
        let control = [ReplicaAddr { host: "db3".into(), port: 3306 }, ReplicaAddr { host: "db4".into(), port: 3307 }];
        let all = with_control_replicas(vec![("db3".to_string(), 3306)], &control);
        assert_eq!(all, [("db3".to_string(), 3306), ("db4".to_string(), 3307)]);
    }
}
