//! The transaction assembler: binlog events in (already read from the wire and mapped by the streamer), whole
//! transactions out, each with its GTID and the GTID set that is safe to store as the applied position after it.
//! No I/O. Anything it cannot interpret inside a transaction that may touch a watched table is a [`Fatal`] error:
//! the run stops (resumably: the checkpoint still holds the position before that transaction), never a skip.
//!
//! Boundaries (recorded in `fixtures/`): a GTID event opens a group. MariaDB flags a standalone group (one query,
//! no XID: DDL, `XA COMMIT`) and logs no `BEGIN` for the others; on MySQL a QUERY right after the GTID that is not
//! `BEGIN` or `XA START` is the whole group. Otherwise the group ends at XID, a `COMMIT`/`ROLLBACK` query, or the
//! XA_PREPARE event. Queries inside a group (`SAVEPOINT`, `ROLLBACK TO`, `XA END`, statement-format DML) never end
//! it: both flavours log `SAVEPOINT` inside transactions.
//!
//! XA: rows of `XA START .. XA END; XA PREPARE` are held until `XA COMMIT` (applied then, with the commit's GTID)
//! or dropped at `XA ROLLBACK`. While any XA transaction is prepared and unresolved, the position handed out never
//! covers its PREPARE, so a checkpoint, a stop, a crash or a reconnect starts again before it and reads its rows
//! once more. That is exact because:
//! - MySQL: a GTID set may have gaps, and a dump from a set sends exactly the transactions missing from it; the
//!   safe set is everything seen minus the pending PREPAREs' GTIDs: the server resends those PREPAREs and nothing
//!   that was already applied.
//! - MariaDB: a position is one sequence number per domain (no gaps), so the safe position is frozen at the whole
//!   set as it was just before the first PREPARE of a run of overlapping XA transactions, until none is pending.
//!   A stream from there replays every transaction after it (the applier's REPLACE/DELETE of full row images are
//!   idempotent in order), and every XA COMMIT in that replay finds its PREPARE in the replay too, whatever the
//!   domains: the freeze began when nothing was pending.
//!
//! The one case that cannot be exact: an XA COMMIT whose PREPARE lies before the stream's first start (its rows
//! were prepared, so invisible to the copy, and are not in the log read): that is a [`Fatal`] error.

use std::collections::BTreeMap;
use std::fmt;

use color_eyre::eyre::Result;

use crate::engine::stream::gtid::{Gtid, GtidSet};
use crate::engine::stream::statement::{self, Control, NameCase};

/// A deterministic stop: retrying reads the same events again. The run stops; the message says why and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal(pub String);

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}

fn fatal<T>(msg: String) -> Result<T> {
    Err(Fatal(msg).into())
}

/// Is this error (or any error it wraps) a [`Fatal`] one?
pub fn is_fatal(e: &color_eyre::eyre::Report) -> bool {
    e.chain().any(|c| c.is::<Fatal>())
}

/// One event, as the streamer maps it. `R` is a rows event's payload (decoded row changes; a test's label).
#[derive(Debug, Clone, PartialEq)]
pub enum Event<R> {
    /// MySQL GTID / GTID_TAGGED / ANONYMOUS_GTID (`gtid` None), MariaDB GTID. `standalone`: MariaDB's flag (a
    /// single statement, or else a transaction with an implicit BEGIN); None on MySQL (the next event decides).
    Gtid { gtid: Option<Gtid>, standalone: Option<bool> },
    /// A QUERY event: default database and text.
    Query { schema: String, text: String },
    /// A rows event; `table` is the watched table's index, None for other tables (their rows are not decoded).
    Rows { table: Option<usize>, rows: R },
    Xid,
    /// XA_PREPARE event (type 38); `one_phase` for `XA COMMIT ... ONE PHASE`.
    XaPrepare { one_phase: bool },
    /// MySQL Transaction_payload (type 40): the client expands it, its events follow.
    Payload,
    /// An event the streamer cannot read. `watched`: Some(true) of a watched table, Some(false) of another,
    /// None when it cannot tell.
    Unreadable { what: String, watched: Option<bool> },
    /// No transaction content (format description, table map, rotate, heartbeat, GTID list, ...).
    Other,
}

/// What the assembler hands out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output<R> {
    /// A whole transaction with watched rows, or a statement (DDL) to check.
    Transaction {
        gtid: Option<Gtid>,
        /// The position to record once this transaction is applied.
        safe_set: String,
        rows: Vec<R>,
        /// The statement and its default database, when the transaction was one query.
        statement: Option<(String, String)>,
    },
    /// A transaction with nothing to apply was passed.
    Progress { safe_set: String },
}

/// A watched table's names as the source spells them (compared with the server's [`NameCase`]).
#[derive(Debug, Clone)]
pub struct WatchedName {
    pub database: String,
    pub table: String,
}

#[derive(Debug)]
enum State<R> {
    Idle,
    /// A GTID event was read; nothing else of its group yet.
    AfterGtid(Option<Gtid>),
    Open(Open<R>),
}

#[derive(Debug)]
struct Open<R> {
    gtid: Option<Gtid>,
    /// The xid, for a group opened by `XA START`.
    xa: Option<String>,
    rows: Vec<R>,
}

#[derive(Debug)]
struct Pending<R> {
    gtid: Option<Gtid>,
    rows: Vec<R>,
}

/// Assembles one stream's events; a new stream (reconnect, resume) starts a new assembler at the safe position.
#[derive(Debug)]
pub struct Assembler<R> {
    executed: GtidSet,
    /// MariaDB: the set just before the first PREPARE of the pending ones (see the module doc).
    frozen: Option<GtidSet>,
    pending: BTreeMap<String, Pending<R>>,
    state: State<R>,
    watched: Vec<WatchedName>,
    case: NameCase,
}

impl<R> Assembler<R> {
    pub fn new(start: GtidSet, watched: Vec<WatchedName>, case: NameCase) -> Self {
        Assembler { executed: start, frozen: None, pending: BTreeMap::new(), state: State::Idle, watched, case }
    }

    /// The position safe to record now (never covering a prepared, unresolved XA transaction).
    pub fn safe_set(&self) -> GtidSet {
        if let Some(f) = &self.frozen {
            return f.clone();
        }
        let mut s = self.executed.clone();
        for p in self.pending.values() {
            if let Some(g) = &p.gtid {
                s.remove(g);
            }
        }
        s
    }

    /// True inside a transaction (between its GTID and its end).
    pub fn in_transaction(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Feeds one event; returns what it completes, if anything.
    pub fn feed(&mut self, event: Event<R>) -> Result<Option<Output<R>>> {
        match event {
            Event::Gtid { gtid, standalone } => {
                if let Some(label) = self.open_label() {
                    return fatal(format!(
                        "the binlog transaction {label} ended without a commit event before the next GTID (an event \
                         the client could not read, e.g. a compressed transaction payload?); the run stops so that \
                         nothing is skipped: check the source's binlog settings and resume"
                    ));
                }
                self.state = match standalone {
                    Some(false) => State::Open(Open { gtid, xa: None, rows: Vec::new() }),
                    _ => State::AfterGtid(gtid),
                };
                Ok(None)
            }
            Event::Query { schema, text } => self.query(schema, text),
            Event::Rows { table, rows } => self.rows(table, rows),
            Event::Xid => Ok(self.end_commit()),
            Event::XaPrepare { one_phase } => self.xa_prepare(one_phase),
            Event::Payload => Ok(None),
            Event::Unreadable { what, watched } => {
                if watched == Some(false) {
                    return Ok(None);
                }
                let which = if watched == Some(true) { "a watched table" } else { "a table revenant cannot name" };
                fatal(format!("the binlog holds {what} of {which}, which revenant cannot read; the run stops so that no change is skipped"))
            }
            Event::Other => Ok(None),
        }
    }

    fn open_label(&self) -> Option<String> {
        let g = match &self.state {
            State::Idle | State::AfterGtid(_) => return None,
            State::Open(o) => &o.gtid,
        };
        Some(g.as_ref().map_or_else(|| "(anonymous)".to_string(), ToString::to_string))
    }

    fn query(&mut self, schema: String, text: String) -> Result<Option<Output<R>>> {
        let control = statement::classify(&text);
        let state = std::mem::replace(&mut self.state, State::Idle);
        match state {
            State::Open(mut open) => {
                let fresh = open.rows.is_empty() && open.xa.is_none();
                let out = match control {
                    Control::Commit => return Ok(self.finish(open.gtid, open.rows, None)),
                    Control::XaCommit { one_phase: true, .. } => return Ok(self.finish(open.gtid, open.rows, None)),
                    Control::XaCommit { xid, one_phase: false } if fresh => return self.xa_resolve(open.gtid, &xid, true),
                    Control::XaRollback(xid) if fresh => return self.xa_resolve(open.gtid, &xid, false),
                    // MariaDB logs no XA START: the xid first shows in XA END.
                    Control::XaStart(xid) | Control::XaEnd(xid) if open.xa.is_none() || open.xa.as_ref() == Some(&xid) => {
                        open.xa = Some(xid);
                        Ok(None)
                    }
                    Control::Rollback if open.rows.is_empty() => return Ok(self.finish(open.gtid, Vec::new(), None)),
                    Control::Rollback => fatal(format!(
                        "the binlog transaction {} changed a watched table and ended with ROLLBACK (a mix with a \
                         non-transactional table); revenant cannot tell which of its rows stayed",
                        label(&open.gtid)
                    )),
                    Control::Savepoint | Control::Begin => Ok(None),
                    Control::XaStart(_) | Control::XaEnd(_) | Control::XaPrepare(_) | Control::XaCommit { .. } | Control::XaRollback(_) => {
                        fatal(format!("unexpected '{text}' inside the binlog transaction {}", label(&open.gtid)))
                    }
                    Control::Statement => {
                        self.refuse_statement_dml(&schema, &text)?;
                        Ok(None)
                    }
                };
                if out.is_ok() {
                    self.state = State::Open(open);
                }
                out
            }
            State::Idle | State::AfterGtid(_) => {
                let gtid = match state {
                    State::AfterGtid(g) => g,
                    _ => None,
                };
                match control {
                    Control::Begin => self.open(gtid, None),
                    Control::XaStart(xid) => self.open(gtid, Some(xid)),
                    Control::XaCommit { xid, one_phase: false } => self.xa_resolve(gtid, &xid, true),
                    Control::XaRollback(xid) => self.xa_resolve(gtid, &xid, false),
                    Control::Statement => {
                        self.refuse_statement_dml(&schema, &text)?;
                        Ok(self.finish(gtid, Vec::new(), Some((schema, text))))
                    }
                    _ => Ok(self.finish(gtid, Vec::new(), None)),
                }
            }
        }
    }

    fn open(&mut self, gtid: Option<Gtid>, xa: Option<String>) -> Result<Option<Output<R>>> {
        self.state = State::Open(Open { gtid, xa, rows: Vec::new() });
        Ok(None)
    }

    /// DML written as a statement (`binlog_format=STATEMENT`/MIXED) carries no row images: if it names a watched
    /// table its changes cannot be applied, so the run stops.
    fn refuse_statement_dml(&self, schema: &str, text: &str) -> Result<()> {
        if !statement::is_dml(text) {
            return Ok(());
        }
        for w in &self.watched {
            if statement::mentions(text, schema, &w.database, &w.table, self.case) {
                return fatal(format!(
                    "{}.{} was changed by a statement logged as text, not as row images (a session with \
                     binlog_format=STATEMENT or MIXED?): {text}; revenant cannot apply it. Make every writer use \
                     binlog_format=ROW, then start the migration over",
                    w.database, w.table
                ));
            }
        }
        Ok(())
    }

    fn rows(&mut self, table: Option<usize>, rows: R) -> Result<Option<Output<R>>> {
        match &mut self.state {
            State::Open(open) => {
                if table.is_some() {
                    open.rows.push(rows);
                }
            }
            State::AfterGtid(g) => {
                let gtid = g.take();
                let rows = if table.is_some() { vec![rows] } else { Vec::new() };
                self.state = State::Open(Open { gtid, xa: None, rows });
            }
            State::Idle => {
                if let Some(i) = table {
                    let name = self.watched.get(i).map_or_else(String::new, |w| format!("{}.{}", w.database, w.table));
                    return fatal(format!("a row event of {name} outside any transaction (no GTID or BEGIN before it)"));
                }
            }
        }
        Ok(None)
    }

    fn end_commit(&mut self) -> Option<Output<R>> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => None,
            State::AfterGtid(g) => self.finish(g, Vec::new(), None),
            State::Open(open) => self.finish(open.gtid, open.rows, None),
        }
    }

    fn xa_prepare(&mut self, one_phase: bool) -> Result<Option<Output<R>>> {
        let open = match std::mem::replace(&mut self.state, State::Idle) {
            State::Open(o) => o,
            State::AfterGtid(g) => Open { gtid: g, xa: None, rows: Vec::new() },
            State::Idle => return fatal("an XA PREPARE event outside any transaction".to_string()),
        };
        if one_phase {
            return Ok(self.finish(open.gtid, open.rows, None));
        }
        let Some(xid) = open.xa else {
            return fatal(format!("an XA PREPARE event in {} without XA START", label(&open.gtid)));
        };
        if self.pending.is_empty() && matches!(self.executed, GtidSet::MariaDb(_)) {
            self.frozen = Some(self.executed.clone());
        }
        if let Some(g) = &open.gtid {
            self.executed.add(g);
        }
        self.pending.insert(xid, Pending { gtid: open.gtid, rows: open.rows });
        Ok(Some(Output::Progress { safe_set: self.safe_set().to_string() }))
    }

    fn xa_resolve(&mut self, gtid: Option<Gtid>, xid: &str, commit: bool) -> Result<Option<Output<R>>> {
        let prepared = self.pending.remove(xid);
        if self.pending.is_empty() {
            self.frozen = None;
        }
        let rows = match prepared {
            Some(p) => p.rows,
            None if !commit => Vec::new(),
            None => {
                return fatal(format!(
                    "XA COMMIT {xid} ({}) commits an XA transaction prepared before this stream's start position: \
                     its rows were invisible to the copy and are not in the binary log from there, so revenant \
                     cannot tell whether it changed a watched table. Start the migration over (drop its tables) \
                     once XA RECOVER on the source shows no prepared transaction",
                    label(&gtid)
                ))
            }
        };
        let rows = if commit { rows } else { Vec::new() };
        Ok(self.finish(gtid, rows, None))
    }

    fn finish(&mut self, gtid: Option<Gtid>, rows: Vec<R>, statement: Option<(String, String)>) -> Option<Output<R>> {
        self.state = State::Idle;
        if let Some(g) = &gtid {
            self.executed.add(g);
        }
        let safe_set = self.safe_set().to_string();
        if rows.is_empty() && statement.is_none() {
            return Some(Output::Progress { safe_set });
        }
        Some(Output::Transaction { gtid, safe_set, rows, statement })
    }
}

fn label(g: &Option<Gtid>) -> String {
    g.as_ref().map_or_else(|| "(anonymous)".to_string(), ToString::to_string)
}

#[cfg(test)]
#[path = "assembler_tests.rs"]
mod tests;
