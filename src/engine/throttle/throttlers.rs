//! The throttlers beyond the manual switch and the flag files: replica lag (the changelog heartbeat read back on
//! each control replica and on the replicas discovered from the primary), `--max-load` and `--critical-load` on
//! global status, `--throttle-query` and `--throttle-http`. Each reports a [`ThrottleSignal`] and, when it
//! throttles, a reason in gh-ost's wording. They fail closed: a signal that cannot be read throttles, with that
//! reason. Their thresholds live in [`ThrottleSettings`], which the control socket changes while the migration runs.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;

use crate::engine::config::{ConnectionConfig, MigrationConfig, RunSettings};
use crate::engine::shared::Shared;
use crate::engine::sql::qualified;
use crate::engine::status::ThrottleSignal;

/// `Var=N`: throttle (max-load) or act (critical-load) when the global status variable reaches N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadThreshold {
    pub variable: String,
    pub threshold: u64,
}

/// A replica whose lag throttles the copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplicaAddr {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ReplicaAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The throttle thresholds that can change while the migration runs (socket `max-load=...`, ...).
#[derive(Debug, Clone, Default)]
pub struct ThrottleSettings {
    pub max_load: Vec<LoadThreshold>,
    pub critical_load: Vec<LoadThreshold>,
    pub throttle_query: Option<String>,
    /// `--throttle-control-replicas`: checked in addition to the replicas discovered from the primary.
    pub control_replicas: Vec<ReplicaAddr>,
    pub postpone_flag_file: Option<PathBuf>,
    /// `--throttle-http` (settable live, as gh-ost's `throttle-http=` command).
    pub throttle_http: Option<String>,
    /// Bumped when the control replicas are set live: the discovered ones are forgotten and found again.
    pub replicas_generation: u64,
}

impl ThrottleSettings {
    pub fn from_config(run: &RunSettings) -> Self {
        ThrottleSettings {
            max_load: run.throttle.max_load.clone(),
            critical_load: run.throttle.critical_load.clone(),
            throttle_query: run.throttle.throttle_query.clone(),
            control_replicas: run.throttle.throttle_control_replicas.clone(),
            postpone_flag_file: run.postpone_cut_over_flag_file.clone(),
            throttle_http: run.throttle.throttle_http.clone(),
            replicas_generation: 0,
        }
    }
}

/// Parses `Var=N[,Var=N...]` (empty: none).
pub fn parse_load(text: &str) -> Result<Vec<LoadThreshold>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (var, n) = part.split_once('=').ok_or_else(|| format!("`{part}` is not Var=N (e.g. Threads_running=25)"))?;
        let var = var.trim();
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{var}` is not a status variable name"));
        }
        let threshold = n.trim().parse::<u64>().map_err(|_| format!("threshold `{}` of {var} is not a whole number", n.trim()))?;
        out.push(LoadThreshold { variable: var.to_string(), threshold });
    }
    Ok(out)
}

/// `Var=N,...` for people.
pub fn format_load(load: &[LoadThreshold]) -> String {
    load.iter().map(|l| format!("{}={}", l.variable, l.threshold)).collect::<Vec<_>>().join(",")
}

/// Parses `host[:port][,host[:port]...]`; a missing port is `default_port`.
pub fn parse_replicas(text: &str, default_port: u16) -> Result<Vec<ReplicaAddr>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (host, port) = match part.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| format!("port `{p}` of `{part}` is not 1..65535"))?),
            None => (part, default_port),
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '=' || c == '/') {
            return Err(format!("`{part}` is not host[:port]"));
        }
        out.push(ReplicaAddr { host: host.to_string(), port });
    }
    Ok(out)
}

pub fn format_replicas(r: &[ReplicaAddr]) -> String {
    r.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(",")
}

/// Checks an `http://host[:port]/path` URL (plain HTTP only): host, port and path with query.
pub fn parse_http_url(url: &str) -> Result<(String, u16, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("`{url}` is not an http:// URL (https is not supported)"));
    }
    let authority = uri.authority().ok_or_else(|| format!("`{url}` has no host"))?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(format!("`{url}` has no usable host"));
    }
    let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    Ok((authority.host().to_string(), authority.port_u16().unwrap_or(80), path))
}

/// The status code of a HEAD request (gh-ost's `--throttle-http`), within `timeout` (hyper's HTTP/1 client).
pub async fn http_status(url: &str, timeout: Duration) -> Result<u16, String> {
    use hyper_util::rt::TokioIo;
    let (host, port, path) = parse_http_url(url)?;
    let work = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("cannot talk HTTP: {e}"))?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::head(path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::USER_AGENT, "revenant")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let res = sender.send_request(req).await.map_err(|e| format!("no HTTP answer: {e}"));
        conn.abort();
        Ok(res?.status().as_u16())
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

/// What the throttle loop must do beyond throttling.
#[derive(Debug, Clone, PartialEq)]
pub enum CriticalAction {
    /// Abort now, resumably (critical-load met twice).
    Abort(String),
}

/// One reading of a signal: its line in the status and, when it throttles, the reason.
struct Reading {
    signal: ThrottleSignal,
    reason: Option<String>,
}

/// The throttlers' connections and last readings; [`Throttlers::check`] runs on the throttle loop's tick.
pub struct Throttlers {
    cfg: MigrationConfig,
    status_conn: Option<mysql_async::Conn>,
    query_conn: Option<mysql_async::Conn>,
    replica_conns: Vec<(ReplicaAddr, Option<mysql_async::Conn>)>,
    discovered: Vec<ReplicaAddr>,
    generation: u64,
    last_discovery: Option<Instant>,
    last_slow: Option<Instant>,
    /// When the --throttle-http URL was last asked, and its answer (on its own interval).
    last_http: Option<Instant>,
    http_reading: Option<Reading>,
    slow_readings: Vec<Reading>,
    critical_pending: Option<(Instant, String)>,
    hibernating_until: Option<(Instant, String)>,
}

/// How often the database and HTTP signals are read (the flag files and manual switch are read on every tick).
const SLOW_INTERVAL: Duration = Duration::from_millis(500);
/// How often the primary is asked for its replicas.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(5);
/// How long one signal may take to read before it counts as unreadable.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

impl Throttlers {
    pub fn new(cfg: MigrationConfig) -> Self {
        Throttlers {
            cfg,
            status_conn: None,
            query_conn: None,
            replica_conns: Vec::new(),
            discovered: Vec::new(),
            generation: 0,
            last_discovery: None,
            last_slow: None,
            last_http: None,
            http_reading: None,
            slow_readings: Vec::new(),
            critical_pending: None,
            hibernating_until: None,
        }
    }

    /// Reads the signals that are due and returns every signal line, the reasons that throttle now, and an action.
    pub async fn check(&mut self, shared: &Shared) -> (Vec<ThrottleSignal>, Vec<String>, Option<CriticalAction>) {
        let settings = shared.throttle_settings();
        let mut action = None;
        if self.last_slow.is_none_or(|t| t.elapsed() >= SLOW_INTERVAL) {
            self.last_slow = Some(Instant::now());
            let mut readings = Vec::new();
            readings.extend(self.replica_lag(shared, &settings).await);
            readings.extend(self.max_load(&settings).await);
            if let Some(q) = &settings.throttle_query {
                readings.push(self.throttle_query(q).await);
            }
            let (critical, act) = self.critical_load(shared, &settings).await;
            readings.extend(critical);
            action = act;
            self.slow_readings = readings;
        }
        match settings.throttle_http.clone() {
            Some(url) => {
                if self.last_http.is_none_or(|t| t.elapsed() >= self.cfg.run.throttle.throttle_http_interval) {
                    self.last_http = Some(Instant::now());
                    self.http_reading =
                        Some(throttle_http(&url, self.cfg.run.throttle.throttle_http_timeout, self.cfg.run.throttle.ignore_http_errors).await);
                }
            }
            // Cleared live: its last answer no longer counts.
            None => self.http_reading = None,
        }
        let mut signals = Vec::new();
        let mut reasons = Vec::new();
        for r in self.slow_readings.iter().chain(self.http_reading.iter()) {
            signals.push(r.signal.clone());
            reasons.extend(r.reason.clone());
        }
        (signals, reasons, action)
    }

    async fn source_status(&mut self, vars: &[String]) -> Result<Vec<(String, String)>, String> {
        if self.status_conn.is_none() {
            self.status_conn = Some(connect(&self.cfg.source).await?);
        }
        let c = self.status_conn.as_mut().ok_or("no connection")?;
        let list = vars.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(",");
        let q = format!("SHOW GLOBAL STATUS WHERE Variable_name IN ({list})");
        match tokio::time::timeout(READ_TIMEOUT, c.query::<(String, String), _>(q)).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                self.status_conn = None;
                Err(e.to_string())
            }
            Err(_) => {
                self.status_conn = None;
                Err("no answer within 2 s".into())
            }
        }
    }

    async fn load_values(&mut self, load: &[LoadThreshold]) -> Vec<(LoadThreshold, Result<u64, String>)> {
        if load.is_empty() {
            return Vec::new();
        }
        let vars: Vec<String> = load.iter().map(|l| l.variable.clone()).collect();
        match self.source_status(&vars).await {
            Ok(rows) => load
                .iter()
                .map(|l| {
                    let v = rows
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&l.variable))
                        .ok_or_else(|| format!("no status variable {}", l.variable))
                        .and_then(|(_, v)| v.trim().parse::<f64>().map(|f| f as u64).map_err(|_| format!("{} is not a number ({v})", l.variable)));
                    (l.clone(), v)
                })
                .collect(),
            Err(e) => load.iter().map(|l| (l.clone(), Err(e.clone()))).collect(),
        }
    }

    async fn max_load(&mut self, settings: &ThrottleSettings) -> Vec<Reading> {
        let values = self.load_values(&settings.max_load).await;
        values
            .into_iter()
            .map(|(l, v)| match v {
                Ok(n) => {
                    let over = n >= l.threshold;
                    Reading {
                        signal: ThrottleSignal { name: format!("max-load {}", l.variable), value: n.to_string(), threshold: format!(">= {}", l.threshold), throttling: over },
                        reason: over.then(|| format!("max-load {}={} >= {}", l.variable, n, l.threshold)),
                    }
                }
                Err(e) => Reading {
                    signal: ThrottleSignal { name: format!("max-load {}", l.variable), value: format!("error: {e}"), threshold: format!(">= {}", l.threshold), throttling: true },
                    reason: Some(format!("max-load {} unreadable ({e})", l.variable)),
                },
            })
            .collect()
    }

    /// gh-ost's critical load: met once, checked again after `--critical-load-interval-millis`, then abort (or
    /// hibernate for `--critical-load-hibernate-seconds`: copy and apply pause).
    async fn critical_load(&mut self, shared: &Shared, settings: &ThrottleSettings) -> (Vec<Reading>, Option<CriticalAction>) {
        use std::sync::atomic::Ordering;
        if let Some((until, why)) = self.hibernating_until.clone() {
            if Instant::now() < until {
                let left = until.saturating_duration_since(Instant::now()).as_secs_f64();
                let reason = format!("critical-load hibernation ({why}), {left:.0}s left");
                return (vec![Reading { signal: ThrottleSignal { name: "critical-load".into(), value: why, threshold: "hibernating".into(), throttling: true }, reason: Some(reason) }], None);
            }
            self.hibernating_until = None;
            shared.paused.store(false, Ordering::Relaxed);
            tracing::info!("critical-load hibernation over: resuming");
        }
        let values = self.load_values(&settings.critical_load).await;
        let mut readings = Vec::new();
        let mut met: Option<String> = None;
        for (l, v) in values {
            match v {
                Ok(n) => {
                    let hit = n >= l.threshold;
                    if hit && met.is_none() {
                        met = Some(format!("critical-load met: {}={}, >={}", l.variable, n, l.threshold));
                    }
                    readings.push(Reading {
                        signal: ThrottleSignal { name: format!("critical-load {}", l.variable), value: n.to_string(), threshold: format!(">= {}", l.threshold), throttling: hit },
                        reason: None,
                    });
                }
                // Unreadable: throttle (fail closed), but never abort on a reading that did not happen.
                Err(e) => readings.push(Reading {
                    signal: ThrottleSignal { name: format!("critical-load {}", l.variable), value: format!("error: {e}"), threshold: format!(">= {}", l.threshold), throttling: true },
                    reason: Some(format!("critical-load {} unreadable ({e})", l.variable)),
                }),
            }
        }
        let Some(why) = met else {
            self.critical_pending = None;
            return (readings, None);
        };
        let confirmed = match &self.critical_pending {
            _ if self.cfg.run.throttle.critical_load_interval.is_zero() => true,
            Some((since, _)) => since.elapsed() >= self.cfg.run.throttle.critical_load_interval,
            None => false,
        };
        if !confirmed {
            if self.critical_pending.is_none() {
                tracing::warn!("{why}: checking again in {} ms", self.cfg.run.throttle.critical_load_interval.as_millis());
                self.critical_pending = Some((Instant::now(), why.clone()));
            }
            // The copy waits while it is being confirmed.
            readings.push(Reading { signal: ThrottleSignal { name: "critical-load".into(), value: why.clone(), threshold: "confirming".into(), throttling: true }, reason: Some(why) });
            return (readings, None);
        }
        self.critical_pending = None;
        if self.cfg.run.throttle.critical_load_hibernate.is_zero() {
            tracing::error!("{why}: aborting (the migration stays resumable)");
            return (readings, Some(CriticalAction::Abort(why)));
        }
        tracing::warn!("{why}: hibernating for {}s (copy and apply pause)", self.cfg.run.throttle.critical_load_hibernate.as_secs());
        shared.paused.store(true, Ordering::Relaxed);
        self.hibernating_until = Some((Instant::now() + self.cfg.run.throttle.critical_load_hibernate, why.clone()));
        readings.push(Reading { signal: ThrottleSignal { name: "critical-load".into(), value: why.clone(), threshold: "hibernating".into(), throttling: true }, reason: Some(format!("critical-load hibernation ({why})")) });
        (readings, None)
    }

    async fn throttle_query(&mut self, q: &str) -> Reading {
        let r: Result<i64, String> = async {
            if self.query_conn.is_none() {
                self.query_conn = Some(connect(&self.cfg.source).await?);
            }
            let c = self.query_conn.as_mut().ok_or("no connection")?;
            match tokio::time::timeout(READ_TIMEOUT, super::query::read_only_first(c, q)).await {
                Ok(Ok(v)) => Ok(v.and_then(|s| s.trim().parse::<f64>().ok()).map(|f| f as i64).unwrap_or(0)),
                Ok(Err(e)) => {
                    self.query_conn = None;
                    Err(e)
                }
                Err(_) => {
                    self.query_conn = None;
                    Err("no answer within 2 s".into())
                }
            }
        }
        .await;
        match r {
            Ok(v) => Reading {
                signal: ThrottleSignal { name: "throttle-query".into(), value: v.to_string(), threshold: "> 0".into(), throttling: v > 0 },
                reason: (v > 0).then(|| "throttle-query".to_string()),
            },
            Err(e) => Reading {
                signal: ThrottleSignal { name: "throttle-query".into(), value: format!("error: {e}"), threshold: "> 0".into(), throttling: true },
                reason: Some(format!("throttle-query unreadable (error: {e})")),
            },
        }
    }

    /// Replicas to check: the control replicas plus those discovered (kept once found, so one that goes away
    /// throttles instead of silently dropping out).
    async fn discover(&mut self, settings: &ThrottleSettings) {
        if settings.replicas_generation != self.generation {
            self.generation = settings.replicas_generation;
            self.discovered.clear();
            self.last_discovery = None;
        }
        if !self.cfg.run.throttle.discover_replicas || self.last_discovery.is_some_and(|t| t.elapsed() < DISCOVERY_INTERVAL) {
            return;
        }
        self.last_discovery = Some(Instant::now());
        if self.status_conn.is_none() {
            match connect(&self.cfg.source).await {
                Ok(c) => self.status_conn = Some(c),
                Err(e) => {
                    tracing::debug!("replica discovery: {e}");
                    return;
                }
            }
        }
        let Some(c) = self.status_conn.as_mut() else { return };
        let rows = match c.query::<mysql_async::Row, _>("SHOW REPLICAS").await {
            Ok(r) => r,
            Err(_) => match c.query::<mysql_async::Row, _>("SHOW SLAVE HOSTS").await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("replica discovery: {e}");
                    return;
                }
            },
        };
        for row in rows {
            let col = |name: &str| row.columns_ref().iter().position(|c| c.name_str().eq_ignore_ascii_case(name));
            let host: String = col("Host").and_then(|i| row.get::<Option<String>, _>(i).flatten()).unwrap_or_default();
            let port: u64 = col("Port").and_then(|i| row.get::<Option<u64>, _>(i).flatten()).unwrap_or(0);
            // Binlog clients (revenant's own streamer among them) register without a port: not replicas to check.
            if port == 0 || port > u16::MAX as u64 {
                continue;
            }
            let host = if host.is_empty() { self.cfg.source.host.clone() } else { host };
            let addr = ReplicaAddr { host, port: port as u16 };
            if !self.discovered.contains(&addr) {
                tracing::info!("replica {addr} discovered: its lag throttles the copy");
                self.discovered.push(addr);
            }
        }
    }

    async fn replica_lag(&mut self, shared: &Shared, settings: &ThrottleSettings) -> Vec<Reading> {
        use std::sync::atomic::Ordering;
        self.discover(settings).await;
        let mut wanted: Vec<ReplicaAddr> = settings.control_replicas.clone();
        for d in &self.discovered {
            if !wanted.contains(d) {
                wanted.push(d.clone());
            }
        }
        self.replica_conns.retain(|(a, _)| wanted.contains(a));
        for a in &wanted {
            if !self.replica_conns.iter().any(|(b, _)| b == a) {
                self.replica_conns.push((a.clone(), None));
            }
        }
        let max_lag = shared.max_lag_millis.load(Ordering::Relaxed) as f64 / 1000.0;
        let sql = format!("SELECT value FROM {} WHERE hint = 'heartbeat'", qualified(&self.cfg.database, &self.cfg.changelog_table()));
        let mut readings = Vec::new();
        let source = self.cfg.source.clone();
        for (addr, conn) in self.replica_conns.iter_mut() {
            let lag = replica_heartbeat_lag(&source, addr, conn, &sql).await;
            let name = format!("replica {addr}");
            readings.push(match lag {
                Ok(l) => {
                    let over = l > max_lag;
                    Reading {
                        signal: ThrottleSignal { name, value: format!("{l:.1}s"), threshold: format!("{max_lag:.1}s"), throttling: over },
                        reason: over.then(|| format!("{addr} replica-lag={l:.1}s")),
                    }
                }
                Err(e) => Reading {
                    signal: ThrottleSignal { name, value: format!("error: {e}"), threshold: format!("{max_lag:.1}s"), throttling: true },
                    reason: Some(format!("{addr} replica-lag unreadable ({e})")),
                },
            });
        }
        readings
    }
}

async fn connect(c: &ConnectionConfig) -> Result<mysql_async::Conn, String> {
    match tokio::time::timeout(READ_TIMEOUT, crate::engine::connection::connect(c.opts())).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("cannot connect: {e}")),
        Err(_) => Err("cannot connect within 2 s".into()),
    }
}

/// Seconds since the heartbeat the replica holds was written on the primary.
async fn replica_heartbeat_lag(
    source: &ConnectionConfig,
    addr: &ReplicaAddr,
    conn: &mut Option<mysql_async::Conn>,
    sql: &str,
) -> Result<f64, String> {
    if conn.is_none() {
        // The primary's credentials, the replica's address (gh-ost does the same).
        let rc = ConnectionConfig { host: addr.host.clone(), port: addr.port, socket: None, ..source.clone() };
        *conn = Some(connect(&rc).await?);
    }
    let c = conn.as_mut().ok_or("no connection")?;
    let value = match tokio::time::timeout(READ_TIMEOUT, c.query_first::<String, _>(sql)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            *conn = None;
            return Err(e.to_string());
        }
        Err(_) => {
            *conn = None;
            return Err("no answer within 2 s".into());
        }
    };
    let written_us: u64 = value
        .ok_or("no heartbeat on the replica yet")?
        .trim()
        .parse()
        .map_err(|_| "the heartbeat is not a number".to_string())?;
    let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    Ok(now_us.saturating_sub(written_us) as f64 / 1e6)
}

async fn throttle_http(url: &str, timeout: Duration, ignore_errors: bool) -> Reading {
    let signal = |value: String, throttling: bool| ThrottleSignal {
        name: "throttle-http".into(),
        value,
        threshold: "200".into(),
        throttling,
    };
    match http_status(url, timeout).await {
        Ok(200) => Reading { signal: signal("200".into(), false), reason: None },
        Ok(code) => Reading { signal: signal(code.to_string(), true), reason: Some(format!("http={code}")) },
        Err(e) if ignore_errors => Reading { signal: signal(format!("error ignored (--ignore-http-errors): {e}"), false), reason: None },
        Err(e) => Reading { signal: signal(format!("error: {e}"), true), reason: Some(format!("http unreachable ({e})")) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_lists_parse_and_refuse() {
        let l = parse_load("Threads_running=50, Threads_connected=1000").unwrap();
        assert_eq!(l, vec![LoadThreshold { variable: "Threads_running".into(), threshold: 50 }, LoadThreshold { variable: "Threads_connected".into(), threshold: 1000 }]);
        assert_eq!(format_load(&l), "Threads_running=50,Threads_connected=1000");
        assert!(parse_load("").unwrap().is_empty());
        assert!(parse_load("Threads_running").is_err());
        assert!(parse_load("Threads_running=x").is_err());
        assert!(parse_load("a-b=1").is_err());
    }

    #[test]
    fn replica_lists_parse_and_refuse() {
        let r = parse_replicas("db2:3307,db3", 3306).unwrap();
        assert_eq!(format_replicas(&r), "db2:3307,db3:3306");
        assert!(parse_replicas("db2:0", 3306).is_err());
        assert!(parse_replicas("db2:x", 3306).is_err());
        assert!(parse_replicas("a b", 3306).is_err());
    }

    #[test]
    fn only_plain_http_urls() {
        assert_eq!(parse_http_url("http://127.0.0.1:8080/throttle").unwrap(), ("127.0.0.1".into(), 8080, "/throttle".into()));
        assert_eq!(parse_http_url("http://lb").unwrap(), ("lb".into(), 80, "/".into()));
        assert!(parse_http_url("https://lb/x").is_err());
        assert!(parse_http_url("http://:80/").is_err());
    }
}
