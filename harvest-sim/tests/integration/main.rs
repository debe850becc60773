//! The simulator's integration tests, in one binary: each module tests one side of it against
//! a running simulator (in-process, or the binary for `control::binary_prints_one_line_and_serves`).

mod accounts;
mod api;
mod auth;
mod changes;
mod common;
mod control;
