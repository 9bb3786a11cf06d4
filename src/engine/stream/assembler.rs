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
//!
//! Parts (bounded memory): a transaction whose watched rows weigh more than the part budget ([`Weigh`], about
//! [`PART_BYTES`]) is handed out in [`Output::Part`]s as its rows arrive, the last rows going out as the
//! [`Output::Transaction`] with its GTID and safe set. A part carries neither: the position stays before the
//! transaction until its last part, so a checkpoint stored between parts starts again at the transaction's first
//! event (the applier's side of the argument is in `apply/applier.rs`). Only a transaction that cannot be rolled
//! back any more once its rows are logged is split: an XA transaction is never (its rows wait for XA COMMIT and may
//! be dropped at XA ROLLBACK). MySQL shows XA at once (`XA START` follows the GTID); MariaDB logs no XA START but
//! flags the GTID event of an XA group (`FL_PREPARED_XA`), so that flag keeps the group whole; a group that shows
//! as XA only after parts were handed out is a [`Fatal`] error, never a guess. A transaction ending in `ROLLBACK`
//! with rows (a mix with a non-transactional table) is fatal whether or not parts went out.

use std::collections::BTreeMap;
use std::fmt;

use color_eyre::eyre::Result;

use crate::engine::stream::gtid::{Gtid, GtidSet};
use crate::engine::stream::statement::{self, Control, NameCase};

/// The part budget: a transaction's watched rows are handed out once they weigh this much (see the module doc).
pub const PART_BYTES: usize = 2 << 20;

/// What a rows payload costs in memory, roughly (bytes).
pub trait Weigh {
    fn weight(&self) -> usize;
}

/// A test's payload: a label, weighing its length.
impl Weigh for String {
    fn weight(&self) -> usize {
        self.len()
    }
}

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
    /// `xa`: MariaDB's flag of an XA group (`FL_PREPARED_XA`); false on MySQL (`XA START` tells).
    Gtid { gtid: Option<Gtid>, standalone: Option<bool>, xa: bool },
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
    /// Rows of a transaction still open, handed out because they weigh more than the part budget. No GTID and no
    /// position: the transaction's last part is its `Transaction` (possibly with no rows).
    Part { rows: Vec<R> },
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
    /// MariaDB flagged the group as XA in its GTID event.
    xa_flagged: bool,
    rows: Vec<R>,
    /// What `rows` weigh, and how many parts of this group went out already.
    weight: usize,
    parts: usize,
}

impl<R> Open<R> {
    fn new(gtid: Option<Gtid>, xa: Option<String>, xa_flagged: bool, rows: Vec<R>) -> Self {
        Open { gtid, xa, xa_flagged, rows, weight: 0, parts: 0 }
    }

    /// Nothing of the group was kept or handed out yet.
    fn empty(&self) -> bool {
        self.rows.is_empty() && self.parts == 0
    }
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
    part_bytes: usize,
}

impl<R: Weigh> Assembler<R> {
    pub fn new(start: GtidSet, watched: Vec<WatchedName>, case: NameCase) -> Self {
        Assembler { executed: start, frozen: None, pending: BTreeMap::new(), state: State::Idle, watched, case, part_bytes: PART_BYTES }
    }

    /// The same with another part budget (tests).
    pub fn with_part_bytes(mut self, bytes: usize) -> Self {
        self.part_bytes = bytes.max(1);
        self
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
            Event::Gtid { gtid, standalone, xa } => {
                if let Some(label) = self.open_label() {
                    return fatal(format!(
                        "the binlog transaction {label} ended without a commit event before the next GTID (an event \
                         the client could not read, e.g. a compressed transaction payload?); the run stops so that \
                         nothing is skipped: check the source's binlog settings and resume"
                    ));
                }
                self.state = match standalone {
                    Some(false) => State::Open(Open::new(gtid, None, xa, Vec::new())),
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
                let fresh = open.empty() && open.xa.is_none();
                let out = match control {
                    Control::Commit => return Ok(self.finish_open(open)),
                    Control::XaCommit { one_phase: true, .. } => return Ok(self.finish_open(open)),
                    Control::XaCommit { xid, one_phase: false } if fresh => return self.xa_resolve(open.gtid, &xid, true),
                    Control::XaRollback(xid) if fresh => return self.xa_resolve(open.gtid, &xid, false),
                    // MariaDB logs no XA START: the xid first shows in XA END.
                    Control::XaStart(_) | Control::XaEnd(_) if open.parts > 0 => fatal(format!(
                        "the binlog transaction {} showed as XA ('{text}') after {} part(s) of its rows were handed \
                         out: revenant cannot apply rows an XA ROLLBACK may drop; the run stops (resumably) before it",
                        label(&open.gtid),
                        open.parts
                    )),
                    Control::XaStart(xid) | Control::XaEnd(xid) if open.xa.is_none() || open.xa.as_ref() == Some(&xid) => {
                        open.xa = Some(xid);
                        Ok(None)
                    }
                    Control::Rollback if open.empty() => return Ok(self.finish(open.gtid, Vec::new(), None)),
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
        self.state = State::Open(Open::new(gtid, xa, false, Vec::new()));
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
                    open.weight += rows.weight();
                    open.rows.push(rows);
                    return Ok(self.part());
                }
            }
            State::AfterGtid(g) => {
                let gtid = g.take();
                let mut open = Open::new(gtid, None, false, Vec::new());
                if table.is_some() {
                    open.weight = rows.weight();
                    open.rows.push(rows);
                }
                self.state = State::Open(open);
                return Ok(self.part());
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

    /// The open group's rows as a part, once they weigh the budget and the group can be split (not XA).
    fn part(&mut self) -> Option<Output<R>> {
        let State::Open(open) = &mut self.state else { return None };
        if open.weight < self.part_bytes || open.xa.is_some() || open.xa_flagged || open.rows.is_empty() {
            return None;
        }
        open.weight = 0;
        open.parts += 1;
        Some(Output::Part { rows: std::mem::take(&mut open.rows) })
    }

    fn end_commit(&mut self) -> Option<Output<R>> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => None,
            State::AfterGtid(g) => self.finish(g, Vec::new(), None),
            State::Open(open) => self.finish_open(open),
        }
    }

    /// A committed group: its last rows go out as the `Transaction` (with none, when parts carried them all).
    fn finish_open(&mut self, open: Open<R>) -> Option<Output<R>> {
        if open.parts == 0 {
            return self.finish(open.gtid, open.rows, None);
        }
        self.state = State::Idle;
        if let Some(g) = &open.gtid {
            self.executed.add(g);
        }
        Some(Output::Transaction { safe_set: self.safe_set().to_string(), gtid: open.gtid, rows: open.rows, statement: None })
    }

    fn xa_prepare(&mut self, one_phase: bool) -> Result<Option<Output<R>>> {
        let open = match std::mem::replace(&mut self.state, State::Idle) {
            State::Open(o) => o,
            State::AfterGtid(g) => Open::new(g, None, false, Vec::new()),
            State::Idle => return fatal("an XA PREPARE event outside any transaction".to_string()),
        };
        if one_phase {
            return Ok(self.finish_open(open));
        }
        if open.parts > 0 {
            return fatal(format!(
                "an XA PREPARE event in {} after {} part(s) of its rows were handed out: revenant cannot apply rows an \
                 XA ROLLBACK may drop; the run stops (resumably) before it",
                label(&open.gtid),
                open.parts
            ));
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
