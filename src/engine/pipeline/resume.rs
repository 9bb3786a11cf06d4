//! The resume table: one pure function, [`resume_from`], decides where a `--resume` continues, for migrate and
//! move-tables alike, from what the checkpoint rows say and what exists on the servers. Every combination of the
//! tables revenant works with has one answer, including the ones no step of ours produces (those refuse, drop
//! nothing, and say what to do). The unit tests below walk the whole table.

use crate::engine::pipeline::phase::Phase;

/// The table revenant renames into the original's place stands as `_<t>_del` as a sentry or as the real original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldTable {
    Absent,
    /// Our cut-over sentry (an empty marker table that makes a queued RENAME fail).
    Sentry,
    /// A real table: the original, renamed away by a cut-over (migrate) or by the fence (move-tables).
    Table,
}

/// What exists on the servers, observed right before the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The original table under its own name (on the source).
    pub original: bool,
    /// `_<t>_del` on the source.
    pub old: OldTable,
    /// The table the rows are copied into: `_<t>_gho` for migrate, the target table for move-tables.
    pub ghost: bool,
}

/// What the checkpoint's summary row says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckpointFacts {
    /// The `phase` column (`setup`, `copy`, `catchup`, `ready`, `cut-over`, `drain`, `complete`, `cleanup`,
    /// `done`, `rolled-back`, or `stopped:<phase>`).
    pub phase: String,
    /// The cut-over (migrate's swap, a move's fence) began.
    pub cutover_started: bool,
    /// migrate: the swap is done; move-tables: the drain is done.
    pub cutover_complete: bool,
    /// move-tables: the GTID set read right after the fence.
    pub drain_gtid: Option<String>,
}

impl CheckpointFacts {
    /// The phase without a `stopped:` prefix.
    fn base_phase(&self) -> &str {
        self.phase.strip_prefix("stopped:").unwrap_or(&self.phase)
    }

    /// Setup committed its start position and copy ranges (the phase moved past `setup`).
    fn setup_done(&self) -> bool {
        !matches!(self.base_phase(), "" | "setup" | "preflight")
    }
}

/// Which run is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Migrate,
    MoveTables,
}

/// Where a resume continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// The setup never committed: set up again (the partial artifacts are ours and hold nothing yet).
    SetupAgain,
    /// Continue the copy and the stream from the checkpoint, entering `from` first. `drop_sentry`: a cut-over
    /// attempt left its sentry behind (the original kept serving): remove it first.
    Continue { from: Phase, drop_sentry: bool },
    /// migrate, two-step cut-over interrupted between its renames: the original is `_<t>_del`, no `t`: apply the
    /// binary log up to now (no write can reach a renamed table) and rename the ghost into place.
    FinishRename,
    /// migrate: the tables were swapped; only the clean-up is left.
    Cleanup,
    /// move-tables: the source tables are fenced; drain (to the recorded drain GTID, or to the source's executed
    /// set when the crash came before it was recorded), then announce.
    Drain,
    /// move-tables: drained; only the success hook and `done` are left.
    Announce,
    /// move-tables: already done.
    AlreadyDone,
    /// No step of ours leaves this state, or continuing could lose data: nothing is changed or dropped.
    Refuse { what: String, todo: String },
}

fn refuse(what: impl Into<String>, todo: impl Into<String>) -> Resume {
    Resume::Refuse { what: what.into(), todo: todo.into() }
}

/// The phase a continued run enters first, from the checkpoint's phase.
fn continue_at(ck: &CheckpointFacts) -> Phase {
    match ck.base_phase() {
        "indexes" => Phase::Indexes,
        "catchup" => Phase::Catchup,
        "verify" => Phase::Verify,
        "ready" | "cut-over" => Phase::ReadyToCutOver,
        _ => Phase::Copy,
    }
}

/// Decides where `--resume` continues. `checkpoint` is None when there is no checkpoint table.
pub fn resume_from(kind: RunKind, checkpoint: Option<&CheckpointFacts>, observed: Observed) -> Resume {
    let Some(ck) = checkpoint else {
        return refuse("nothing to resume: there is no checkpoint table", "run without --resume to start a new run");
    };
    match kind {
        RunKind::Migrate => migrate(ck, observed),
        RunKind::MoveTables => move_tables(ck, observed),
    }
}

fn migrate(ck: &CheckpointFacts, o: Observed) -> Resume {
    match (o.original, o.old, o.ghost) {
        // Swapped: the original serves as `_<t>_del`, the ghost as `t`.
        (true, OldTable::Table, false) if ck.cutover_started => Resume::Cleanup,
        (true, OldTable::Table, false) => refuse(
            "the original and _<t>_del exist, the ghost does not, but the checkpoint records no cut-over",
            "someone renamed or dropped tables by hand; check them: revenant changes nothing",
        ),
        // The two-step cut-over renamed the original away and crashed before renaming the ghost in.
        (false, OldTable::Table, true) if ck.cutover_started => Resume::FinishRename,
        (false, OldTable::Table, true) => refuse(
            "the original table is missing and _<t>_del exists, but the checkpoint records no cut-over",
            "someone renamed the table by hand: rename _<t>_del back to the original name, then resume",
        ),
        (false, OldTable::Table, false) => refuse(
            "neither the original table nor the ghost exists; _<t>_del holds the original",
            "nothing was dropped: RENAME TABLE _<t>_del TO <t> to serve it again, then start a new migration",
        ),
        (false, _, true) => refuse(
            "the original table is missing; only the ghost exists",
            "nothing was dropped; find out who dropped or renamed the original before doing anything",
        ),
        (false, _, false) => refuse(
            "neither the original table nor the ghost exists",
            "nothing was dropped by this resume; clean up the checkpoint table (docs/checkpoints.md)",
        ),
        (true, OldTable::Table, true) => refuse(
            "a table _<t>_del exists next to the ghost and it is not revenant's sentry",
            "check it by hand: drop or rename it if it holds nothing you need, then resume",
        ),
        (true, _, _) if !ck.setup_done() => Resume::SetupAgain,
        (true, _, false) => refuse(
            "the ghost table is missing",
            "nothing was dropped; clean up the checkpoint table (docs/checkpoints.md) and start again",
        ),
        (true, old, true) => Resume::Continue { from: continue_at(ck), drop_sentry: old == OldTable::Sentry },
    }
}

/// For move-tables `original` means every source table serves under its name, `old` that every one is fenced
/// (`Table`), `ghost` that every target table exists. A mix of serving and fenced source tables is refused before
/// (the fence renames them all in one statement).
fn move_tables(ck: &CheckpointFacts, o: Observed) -> Resume {
    let fenced = o.old == OldTable::Table && !o.original;
    let serving = o.original && o.old == OldTable::Absent;
    match ck.base_phase() {
        "rolled-back" => {
            return refuse(
                "this move was rolled back (the source tables serve again)",
                "drop the target tables and the checkpoint table, then start a new move (docs/move-tables.md)",
            )
        }
        "done" => return Resume::AlreadyDone,
        _ => {}
    }
    if !fenced && !serving {
        return refuse(
            "the source tables are neither all serving nor all fenced",
            "check the tables on the source by hand: the fence renames them all in one statement",
        );
    }
    if ck.drain_gtid.is_some() && serving {
        return refuse(
            "the checkpoint says the source tables were fenced, but they serve under their names again",
            "someone renamed them back by hand: the target may lack their later writes; check both sides, then start a new move",
        );
    }
    if !o.ghost && ck.setup_done() {
        return refuse(
            "a target table is missing although the copy began",
            "nothing was dropped on the source; drop the checkpoint table on the target and start a new move",
        );
    }
    match (fenced, ck.cutover_complete) {
        (true, true) => Resume::Announce,
        (true, false) => Resume::Drain,
        (false, _) if !ck.setup_done() => Resume::SetupAgain,
        (false, _) => Resume::Continue { from: continue_at(ck), drop_sentry: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLDS: [OldTable; 3] = [OldTable::Absent, OldTable::Sentry, OldTable::Table];
    const PHASES: [&str; 10] = ["setup", "copy", "indexes", "catchup", "ready", "cut-over", "stopped:copy", "drain", "complete", "cleanup"];

    fn facts(phase: &str, started: bool) -> CheckpointFacts {
        CheckpointFacts { phase: phase.into(), cutover_started: started, ..Default::default() }
    }

    fn every_observation() -> Vec<Observed> {
        let mut all = Vec::new();
        for original in [false, true] {
            for old in OLDS {
                for ghost in [false, true] {
                    all.push(Observed { original, old, ghost });
                }
            }
        }
        all
    }

    #[test]
    fn no_checkpoint_is_nothing_to_resume() {
        for kind in [RunKind::Migrate, RunKind::MoveTables] {
            for o in every_observation() {
                assert!(matches!(resume_from(kind, None, o), Resume::Refuse { .. }), "{kind:?} {o:?}");
            }
        }
    }

    #[test]
    fn migrate_every_combination_has_the_safe_answer() {
        for o in every_observation() {
            for phase in PHASES {
                for started in [false, true] {
                    let ck = facts(phase, started);
                    let got = resume_from(RunKind::Migrate, Some(&ck), o);
                    let setup_done = phase != "setup";
                    let want = match (o.original, o.old, o.ghost) {
                        (true, OldTable::Table, false) if started => Resume::Cleanup,
                        (false, OldTable::Table, true) if started => Resume::FinishRename,
                        (true, OldTable::Absent | OldTable::Sentry, _) if !setup_done => Resume::SetupAgain,
                        (true, old @ (OldTable::Absent | OldTable::Sentry), true) => {
                            Resume::Continue { from: continue_at(&ck), drop_sentry: old == OldTable::Sentry }
                        }
                        _ => {
                            assert!(matches!(got, Resume::Refuse { .. }), "{o:?} {phase} {started}: {got:?}");
                            continue;
                        }
                    };
                    assert_eq!(got, want, "{o:?} phase {phase} cut-over started {started}");
                }
            }
        }
    }

    #[test]
    fn migrate_never_cleans_up_without_the_original_serving() {
        // A clean-up may drop _<t>_del (--ok-to-drop-table): only when `t` exists and the ghost is gone.
        for o in every_observation() {
            for phase in PHASES {
                let got = resume_from(RunKind::Migrate, Some(&facts(phase, true)), o);
                if got == Resume::Cleanup {
                    assert!(o.original && o.old == OldTable::Table && !o.ghost, "{o:?}");
                }
            }
        }
    }

    #[test]
    fn migrate_without_table_or_ghost_refuses_and_says_what_to_do() {
        let o = Observed { original: false, old: OldTable::Absent, ghost: false };
        match resume_from(RunKind::Migrate, Some(&facts("copy", false)), o) {
            Resume::Refuse { what, todo } => {
                assert!(what.contains("neither the original table nor the ghost"), "{what}");
                assert!(todo.contains("nothing was dropped"), "{todo}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn migrate_continues_at_the_recorded_phase() {
        let o = Observed { original: true, old: OldTable::Absent, ghost: true };
        let at = |p: &str| match resume_from(RunKind::Migrate, Some(&facts(p, false)), o) {
            Resume::Continue { from, .. } => from,
            other => panic!("{other:?}"),
        };
        assert_eq!(at("copy"), Phase::Copy);
        assert_eq!(at("stopped:copy"), Phase::Copy);
        assert_eq!(at("indexes"), Phase::Indexes);
        assert_eq!(at("catchup"), Phase::Catchup);
        assert_eq!(at("ready"), Phase::ReadyToCutOver);
        assert_eq!(at("stopped:cut-over"), Phase::ReadyToCutOver);
    }

    fn move_facts(phase: &str, drain: bool, complete: bool) -> CheckpointFacts {
        CheckpointFacts {
            phase: phase.into(),
            cutover_started: drain,
            cutover_complete: complete,
            drain_gtid: drain.then(|| "0-1-10".to_string()),
        }
    }

    #[test]
    fn move_every_combination_has_the_safe_answer() {
        for o in every_observation() {
            for phase in PHASES.iter().chain(["done", "rolled-back"].iter()) {
                for drain in [false, true] {
                    for complete in [false, true] {
                        let ck = move_facts(phase, drain, complete);
                        let got = resume_from(RunKind::MoveTables, Some(&ck), o);
                        let fenced = !o.original && o.old == OldTable::Table;
                        let serving = o.original && o.old == OldTable::Absent;
                        let setup_done = *phase != "setup";
                        let want = match *phase {
                            "rolled-back" => None,
                            "done" => Some(Resume::AlreadyDone),
                            _ if !fenced && !serving => None,
                            _ if drain && serving => None,
                            _ if !o.ghost && setup_done => None,
                            _ if fenced && complete => Some(Resume::Announce),
                            _ if fenced => Some(Resume::Drain),
                            _ if !setup_done => Some(Resume::SetupAgain),
                            _ => Some(Resume::Continue { from: continue_at(&ck), drop_sentry: false }),
                        };
                        match want {
                            Some(w) => assert_eq!(got, w, "{o:?} {phase} drain {drain} complete {complete}"),
                            None => assert!(matches!(got, Resume::Refuse { .. }), "{o:?} {phase}: {got:?}"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_move_renamed_back_by_hand_is_refused() {
        let o = Observed { original: true, old: OldTable::Absent, ghost: true };
        assert!(matches!(resume_from(RunKind::MoveTables, Some(&move_facts("drain", true, false)), o), Resume::Refuse { .. }));
    }
}
