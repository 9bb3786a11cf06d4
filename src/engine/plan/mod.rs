//! Plan: what a run will do, checked before anything changes: the server and table preflight, the ALTER, and the
//! schema facts (columns, keys, the column mapping between original and ghost).

pub mod alter;
pub mod preflight;
pub mod schema;
