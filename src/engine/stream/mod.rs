//! Stream: the binary log read from a GTID position, whole transactions of the watched tables out; GTID sets of
//! both flavours.

pub mod assembler;
pub mod binlog;
pub mod events;
pub mod gtid;
pub mod queue;
pub mod start;
pub mod statement;
