//! The migration engine: preflight, ghost table, chunked copy, binlog apply, checkpoints and cut-over.
//! It has no terminal dependencies; front ends reach it through [`status::EngineHandle`].

pub mod alter;
pub mod applier;
pub mod binlog;
pub mod checkpoint;
pub mod config;
pub mod copier;
pub mod cutover;
pub mod delete_log;
pub mod failpoint;
pub mod gtid;
pub mod hooks;
pub mod migration;
pub mod move_tables;
pub mod phase;
pub mod retry;
pub mod preflight;
pub mod schema;
pub mod shared;
pub mod sql;
pub mod status;
pub mod throttlers;
pub mod values;

pub use phase::Phase;
pub use status::{Command, CommandReply, CommandRequest, EngineHandle, Status};
