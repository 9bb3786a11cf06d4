//! Plan: what a run will do, checked before anything changes: the server and table preflight, the ALTER, and the
//! schema facts (columns, keys, the column mapping between original and ghost), and the topology (which server's
//! binary log is streamed, which server the table is changed on), the old table's name, and the secondary indexes
//! the ghost is created without.

pub mod alter;
pub mod indexes;
pub mod old_table;
pub mod preflight;
pub mod schema;
pub mod topology;
