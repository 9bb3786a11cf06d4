//! Throttle: the signals that make the copy wait (lag, load, flag files, queries, HTTP), failing closed.

pub mod loops;
pub mod throttlers;
