//! The migration engine: preflight, ghost table, chunked copy, binlog apply, checkpoints and cut-over.
//! It has no terminal dependencies; front ends reach it through [`status::EngineHandle`].
//!
//! One folder per piece of the pipeline (docs/architecture.md draws them):
//! `plan` (what to do: preflight, ALTER, schema), `stream` (the binary log in), `copy` (rows in chunks),
//! `apply` (row events onto the target), `checkpoint` (the rows that make a run resumable), `throttle` (when the
//! copy waits), `cutover` (the swap or the fence), `verify` (the checksums before the cut-over), and `pipeline` (the ordered steps that drive them all).

pub mod apply;
pub mod checkpoint;
pub mod config;
pub mod connection;
pub mod copy;
pub mod cutover;
pub mod failpoint;
pub mod hooks;
pub mod pipeline;
pub mod plan;
pub mod retry;
pub mod shared;
pub mod sql;
pub mod status;
pub mod stream;
pub mod throttle;
pub mod verify;

pub use pipeline::phase::Phase;
pub use status::{Command, CommandReply, CommandRequest, EngineHandle, Status};
