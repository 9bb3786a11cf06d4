//! Copy: the original's rows copied to the target in chunks by the shared unique key, each chunk in one
//! transaction with its watermark; the delete log keeps a lock-free copy exact; `parallel` runs one copier per
//! slice of the key range; `boundaries` keeps where the chunks ended, for the verification's chunks.

mod across;
pub mod boundaries;
pub mod copier;
pub mod delete_log;
pub mod json_leaves;
pub mod parallel;
pub mod session;
pub mod warnings;
