//! The migration engine: preflight, ghost table, chunked copy, binlog apply, checkpoints and cut-over.
//! It has no terminal dependencies; front ends reach it through [`status::EngineHandle`].

pub mod alter;
pub mod binlog;
pub mod gtid;
pub mod phase;
pub mod schema;
pub mod sql;
pub mod status;
pub mod values;

pub use phase::Phase;
pub use status::{Command, CommandReply, CommandRequest, EngineHandle, Status};
