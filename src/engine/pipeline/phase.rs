//! The ordered phases of a migration. One enum drives gating (what a command may do now), the console's phase
//! strip and the log lines that announce each step.

use serde::{Deserialize, Serialize};

/// Phases in the order a migration passes through them. `Failed` and `Stopped` are terminal, like `Done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Checking the server, the table and the ALTER; nothing is changed yet.
    Preflight,
    /// Creating the ghost, changelog and checkpoint tables; opening the binlog stream.
    Setup,
    /// Copying rows in chunks while the binlog is applied.
    Copy,
    /// Rows copied; adding the secondary indexes the ghost was created without, in place, while the binlog is
    /// applied (`--defer-secondary-indexes`).
    Indexes,
    /// Rows copied; applying the remaining binlog backlog.
    Catchup,
    /// Caught up; proving that original and ghost hold the same rows (checksums per chunk), repairing what differs.
    Verify,
    /// Caught up; the cut-over waits for approval (postponed) while the applier keeps up.
    ReadyToCutOver,
    /// Swapping the tables (or, for move-tables, the cooperative fence/drain steps).
    CutOver,
    /// Dropping or keeping the artifacts after a successful swap.
    Cleanup,
    /// The migration is complete.
    Done,
    /// Stopped on request with a checkpoint written; resumable.
    Stopped,
    /// Failed; the message says why and whether `--resume` continues it.
    Failed,
}

impl Phase {
    /// Every phase, in order (terminal ones last).
    pub const ALL: [Phase; 12] = [
        Phase::Preflight,
        Phase::Setup,
        Phase::Copy,
        Phase::Indexes,
        Phase::Catchup,
        Phase::Verify,
        Phase::ReadyToCutOver,
        Phase::CutOver,
        Phase::Cleanup,
        Phase::Done,
        Phase::Stopped,
        Phase::Failed,
    ];

    /// The phases shown on the console's phase strip, in order: every one up to Done (Stopped and Failed are
    /// shown as badges instead).
    pub const STRIP: &'static [Phase] = Phase::ALL.split_at(10).0;

    /// A short label for badges and the strip.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Setup => "setup",
            Phase::Copy => "copy",
            Phase::Indexes => "indexes",
            Phase::Catchup => "catch-up",
            Phase::Verify => "verify",
            Phase::ReadyToCutOver => "ready",
            Phase::CutOver => "cut-over",
            Phase::Cleanup => "cleanup",
            Phase::Done => "done",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        }
    }

    /// gh-ost's `State:` word for the status line.
    pub fn gh_ost_state(self) -> &'static str {
        match self {
            Phase::Preflight | Phase::Setup => "initializing",
            Phase::Copy => "migrating",
            Phase::Indexes => "migrating",
            Phase::Catchup => "migrating",
            Phase::Verify => "migrating",
            Phase::ReadyToCutOver => "postponing cut-over",
            Phase::CutOver => "cutting over",
            Phase::Cleanup | Phase::Done => "done",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        }
    }

    /// True once the migration can no longer make progress in this process.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed | Phase::Stopped)
    }

    /// The cut-over may be started (approved) only from here.
    pub fn can_cut_over(self) -> bool {
        self == Phase::ReadyToCutOver
    }

    /// Throttle, pause and checkpoint commands make sense while rows or events still move.
    pub fn is_running(self) -> bool {
        matches!(self, Phase::Copy | Phase::Indexes | Phase::Catchup | Phase::Verify | Phase::ReadyToCutOver)
    }

    /// Index on the strip (terminal failure states map to the last position reached is unknown here).
    pub fn strip_index(self) -> Option<usize> {
        Phase::STRIP.iter().position(|p| *p == self)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_ordered_as_a_migration_runs() {
        let mut sorted = Phase::STRIP.to_vec();
        sorted.sort();
        assert_eq!(sorted, Phase::STRIP.to_vec());
        assert!(Phase::Copy < Phase::CutOver);
        assert!(Phase::ReadyToCutOver.can_cut_over());
        assert!(!Phase::Copy.can_cut_over());
    }
}
