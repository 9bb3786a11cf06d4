//! revenant: online schema migrations for MySQL and MariaDB, with a terminal console.
//!
//! `engine` does the work and knows nothing of terminals; `console` renders its status snapshots and sends it
//! commands; `control` carries the same protocol over a Unix socket for `attach` and gh-ost's text commands;
//! `sandbox` starts throwaway servers for the tests and `revenant demo`.

pub mod cli;
pub mod console;
pub mod control;
pub mod engine;
pub mod sandbox;
