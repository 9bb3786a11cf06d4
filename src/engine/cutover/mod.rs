//! Cut-over: the last step of a run. `swap` renames the ghost into place (atomic or two-step) for migrate.

pub mod swap;
