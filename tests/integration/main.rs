//! The integration tests: the real `tap-harvest` binary against the Harvest simulator
//! (`harvest-sim`), or against small hand-written servers. One test binary, as ripgrep has it:
//! each module below is a topic, and `util` holds the harness they share (compiled once).
//!
//! Tests run in parallel threads of this one process: each starts its own simulator on a free
//! port and writes its files in its own temporary directory; none changes the process's
//! environment or current directory.

mod util;

mod accounts;
mod adding_a_stream;
mod bad_input;
mod cli;
mod deletions;
mod ecosystem;
mod hostile;
mod layers;
mod maps;
mod per_user;
mod reliability;
mod reports;
mod sync;
