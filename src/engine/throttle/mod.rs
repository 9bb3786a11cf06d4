//! Throttle: the signals that make the copy wait (lag, load, flag files, queries, HTTP), failing closed.

pub mod flag_file;
pub mod live;
pub mod loops;
pub mod query;
pub mod throttlers;
