//! Copy: the original's rows copied to the target in chunks by the shared unique key, each chunk in one
//! transaction with its watermark; the delete log keeps a lock-free copy exact.

mod across;
pub mod copier;
pub mod delete_log;
pub mod json_leaves;
pub mod warnings;
