//! Pipeline: the ordered phases of a run and the orchestration of the pieces (stream, copy, apply, throttle,
//! cut-over) under one cancellation token, for migrate and move-tables.

pub mod migrate;
pub mod commands;
pub mod driver;
pub mod failover;
pub(crate) mod follow;
pub mod gate;
pub mod lock;
pub mod move_tables;
pub mod phase;
pub mod report;
pub mod resume;
pub mod runtime;
pub mod tasks;
pub(crate) mod verify;
