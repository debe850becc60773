//! tap-harvest: a Singer tap for Harvest (REST API v2), as a library. The binary
//! (`src/main.rs`) is a thin layer over [`app::main`]; the integration tests and the benchmark
//! take the stream table, keys and limits from here instead of keeping copies.
//!
//! The layers, from the bottom up. Each uses only the layers below it, which the integration
//! test `layers` holds (no import circle):
//!
//! 1. [`util`] and [`log`]: small helpers (dates, "did you mean", links in errors) and the
//!    one logger (stderr, text or JSON, secrets redacted). The `stream-maps` crate
//!    (`crates/stream-maps`) sits here too: the Meltano SDK's stream maps, knowing nothing of
//!    the tap.
//! 2. [`streams`]: the table that declares every stream, as data; [`state`]: bookmarks and
//!    the deletion memory as the STATE holds them.
//! 3. [`catalog`]: the catalog's selection; [`conform`]: records made valid for their schemas.
//! 4. [`output`]: every Singer message, framed and written by one writer.
//! 5. [`client`]: the request path in layers (admission under the rate budget,
//!    authentication, the send, the retry policy), pagination; configured by its own
//!    [`client::config::ClientConfig`].
//! 6. [`engine`]: the plan (one typed plan per stream kind) and the one reading path,
//!    deletions, progress; configured by its own [`engine::config::SyncConfig`].
//! 7. [`settings`] (every setting with its default), [`config`] (the config file parsed into
//!    the client's and the engine's parts), [`cli`] and [`about`].
//! 8. [`app`]: the command line (discover, about, test, sync).

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
