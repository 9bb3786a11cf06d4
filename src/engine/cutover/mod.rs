//! Cut-over: the last step of a run. `swap` renames the ghost into place (atomic or two-step) for migrate,
//! after `definition` checked that the original is still the table the migration was planned for, and with
//! `triggers` (gh-ost's `--include-triggers`) put on the ghost under the lock;
//! `on_replica` stops replication before a `--test-on-replica` cut-over and swaps back after it;
//! `blockers` finds the sessions whose locks would make a RENAME queue (and block every writer behind it).

pub mod blockers;
pub mod definition;
pub mod on_replica;
pub mod swap;
pub mod triggers;
