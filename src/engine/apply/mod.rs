//! Apply: row events from the stream written onto the target table(s) in batches, each batch in one transaction
//! with the checkpoint's `apply` row (or split by key over several writers, each with its own row); binlog values
//! turned into parameters or SQL.

pub mod applier;
mod multi_row;
mod split;
mod target;
pub mod values;
