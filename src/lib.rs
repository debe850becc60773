//! tap-harvest: a Singer tap for Harvest (REST API v2), as a library. The binary
//! (`src/main.rs`) is a thin layer over [`app::main`]; the integration tests and the benchmark
//! take the stream table, keys and limits from here instead of keeping copies.
//!
//! Layers, from the outside in: [`app`] (the command line: discover, about, test, sync),
//! [`engine`] (the plan and the one reading path), [`client`] (auth, rate budgets, retries,
//! pagination), [`streams`] (the table of streams: data, no logic of their own), [`conform`]
//! (records made valid for their schemas), [`output`] (every Singer message, framed and
//! written by one writer).

pub mod about;
pub mod app;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod conform;
pub mod engine;
#[cfg(test)]
mod fuzz_tests;
pub mod log;
pub mod output;
pub mod settings;
pub mod state;
pub mod streams;
pub mod util;
