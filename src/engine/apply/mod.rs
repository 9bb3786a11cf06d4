//! Apply: row events from the stream written onto the target table(s) in batches, each batch in one transaction
//! with the checkpoint's `apply` row; binlog values turned into parameters or SQL.

pub mod applier;
mod multi_row;
pub mod values;
