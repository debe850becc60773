//! The command line: `--about`, `--discover`, `--test` and the sync, each ending as one clear
//! line on stderr and an exit code when it fails. stdout carries only Singer messages (or the
//! catalog, or `--about`); every log line goes to stderr.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::Parser;

use crate::catalog::Selection;
use crate::cli::Args;
use crate::config::{Config, ConfigErrors};
use crate::output::OutputClosed;
use crate::state::State;
use crate::{about, catalog, client, engine, log, output, streams};

/// Runs the tap with the process's arguments and environment.
pub fn main() -> ExitCode {
    log::init_from_env();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message, without its usage block, on one line.
            let text = e.to_string();
            let first = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.trim_start_matches("error: ");
            log::log(log::Level::Critical, &format!("{first} (see --help)"));
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(errors) = e.downcast_ref::<ConfigErrors>() {
                for line in &errors.0 {
                    log::error(line);
                }
                // The last line names every problem too: Meltano shows only that one.
                log::log(
                    log::Level::Critical,
                    &format!("Config validation failed: {}", errors.0.join("; ")),
                );
            } else if e.downcast_ref::<OutputClosed>().is_some() {
                log::log(
                    log::Level::Critical,
                    "stdout was closed before the output was complete (did the target or reader exit?)",
                );
            } else {
                log::log(log::Level::Critical, &format!("{e:#}"));
            }
            ExitCode::FAILURE
        }
    }
}

fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush())
        .map_err(|_| anyhow::Error::new(OutputClosed))
}

fn run(args: Args) -> Result<()> {
    if args.about {
        return print_stdout(&about::render(args.format));
    }
    if args.discover {
        let mut found = catalog::discover()?;
        // With a config whose rows say their account, the catalog says so too.
        let config = args.config.as_ref().and_then(|p| Config::load(p).ok());
        if config.is_some_and(|c| c.client.accounts.several() || c.sync.include_account_id) {
            catalog::with_account_column(&mut found);
        }
        return print_stdout(&serde_json::to_string_pretty(&found)?);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let signals = {
        let _inside = runtime.enter();
        Signals::install().listen()
    };
    let config_path = args
        .config
        .as_ref()
        .ok_or_else(|| anyhow!("--config is required to sync (or use --discover / --about)"))?;
    let config = Config::load(config_path)?;
    let selection = match &args.catalog {
        Some(path) => Selection::load(path)?,
        None => Selection::all(),
    };
    let state = match &args.state {
        Some(path) => State::load(path)?,
        None => State::default(),
    };
    match args.test.as_deref() {
        Some("schema") => runtime.block_on(until_signal(test_schema(selection, config), signals)),
        Some("all") | Some("") => runtime.block_on(until_signal(test_connection(config), signals)),
        Some(other) => Err(anyhow!(
            "unknown --test mode {other:?}: use --test or --test=schema"
        )),
        None => runtime.block_on(sync_until_signal(config, selection, state, signals)),
    }
}

async fn test_schema(selection: Selection, config: Config) -> Result<()> {
    // The config's stream maps and flattening shape the schemas, as in a sync.
    let maps = config
        .sync
        .maps
        .compile()
        .map_err(|e| anyhow!("{}", e.join("; ")))?;
    let selection = engine::plan::mapped_selection(&selection, maps.as_ref())?;
    let outputs = streams::STREAMS
        .iter()
        .filter(|d| selection.is_selected(d.name))
        .map(|def| Ok(engine::plan::Output::new(def, &selection, maps.as_ref())?.schemas(def)))
        .collect::<Result<Vec<_>>>()?;
    let (emitter, writer) = output::start(std::io::stdout(), State::default());
    for (stream, schema, keys, bookmark) in outputs.into_iter().flatten() {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        emitter.schema(&stream, schema, &keys, &bookmark).await?;
    }
    drop(emitter);
    let (_, res) = tokio::task::spawn_blocking(move || writer.finish()).await?;
    res.map_err(|_| anyhow::Error::new(OutputClosed))
}

/// `--test`: one request per account that proves the credentials, the account and the
/// User-Agent.
async fn test_connection(config: Config) -> Result<()> {
    let all = client::Client::connect_accounts(&config.client).await?;
    let several = all.len() > 1;
    for (client, account) in all {
        test_account(&client).await.map_err(|e| match several {
            true => anyhow!("account {account}: {e}"),
            false => e,
        })?;
    }
    Ok(())
}

async fn test_account(client: &client::Client) -> Result<()> {
    let me = client
        .get(
            &client.url("/users/me"),
            "/users/me",
            &client::Counters::default(),
        )
        .await
        .map_err(|e| anyhow!("connection test failed: {e}"))?;
    let who = format!(
        "{} {} <{}>",
        me["first_name"].as_str().unwrap_or(""),
        me["last_name"].as_str().unwrap_or(""),
        me["email"].as_str().unwrap_or("")
    );
    log::info(&format!(
        "connection test passed: signed in to Harvest as {who}"
    ));
    Ok(())
}

/// `work`, unless a signal comes first.
async fn until_signal(
    work: impl std::future::Future<Output = Result<()>>,
    mut signals: tokio::sync::watch::Receiver<Option<&'static str>>,
) -> Result<()> {
    tokio::select! {
        r = work => r,
        _ = signals.changed() => Err(anyhow!("interrupted by {}", signals.borrow().unwrap_or("a signal"))),
    }
}

async fn sync_until_signal(
    config: Config,
    selection: Selection,
    state: State,
    signals: tokio::sync::watch::Receiver<Option<&'static str>>,
) -> Result<()> {
    if config.client.accounts.several() || config.sync.include_account_id {
        return sync_accounts_until_signal(config, selection, state, signals).await;
    }
    sync_one_until_signal(config, selection, state, signals).await
}

/// A sync whose rows say their account: several accounts (a list, `"*"`), or one with
/// `include_account_id`. Each account is planned from its partition of the state (a single
/// account's state is taken over by the first account), and all are read at once.
async fn sync_accounts_until_signal(
    config: Config,
    selection: Selection,
    mut state: State,
    mut signals: tokio::sync::watch::Receiver<Option<&'static str>>,
) -> Result<()> {
    let clients = tokio::select! {
        r = client::Client::connect_accounts(&config.client) => r?,
        _ = signals.changed() => return Err(anyhow!("interrupted by a signal before the sync began")),
    };
    let names: Vec<String> = clients.iter().map(|(_, a)| a.to_string()).collect();
    log::info(&format!(
        "syncing {} Harvest account{}: {}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ));
    // A single account's state goes to the account named first; with "*" and several
    // accounts, which one it was is not known: it is left as it is.
    let owner = match (&config.client.accounts, clients.len()) {
        (client::config::Accounts::All, n) if n > 1 => None,
        _ => clients.first().and_then(|(_, a)| a.id.parse::<i64>().ok()),
    };
    match owner {
        Some(first) if state.partition_for(first) > 0 => log::info(&format!(
            "state: the bookmarks of a single-account sync are taken over by account {first}"
        )),
        None if state.has_loose_bookmarks() => log::warn(
            "state: it holds a single account's bookmarks, and with account_id \"*\" the tap cannot tell which account they are of; they are kept as they are, and every account is read from start_date. To take them over, list the accounts with that one first",
        ),
        _ => {}
    }
    if config.sync.emit_activate_version_messages {
        log::warn("emit_activate_version_messages is not applied when rows say their account: a version would drop the other accounts' rows from the shared tables; deletions are sent as tombstones");
    }
    let views: Vec<State> = clients
        .iter()
        .map(|(_, a)| state.account_view(a.id.parse().unwrap_or_default()))
        .collect();
    // The writer carries the whole state forward: the accounts not in this run keep theirs.
    let (emitter, writer) = output::start(std::io::stdout(), state);
    let last_word = emitter.clone();
    let runs = tokio::select! {
        r = engine::run_accounts(clients, views, &config.sync, &selection, emitter) => Some(r),
        _ = signals.changed() => None,
    };
    let _ = last_word.finish().await;
    drop(last_word);
    let (_, written) = tokio::task::spawn_blocking(move || writer.finish()).await?;
    let result = match runs {
        Some(Ok(runs)) => accounts_result(&runs),
        Some(Err(e)) => Err(e),
        None => Err(anyhow!(
            "interrupted by a signal before the sync finished; rerun with the last STATE to resume"
        )),
    };
    sync_result(result, written)
}

/// How a sync ends: its own error first; else a stdout that did not take everything.
fn sync_result(result: Result<()>, written: std::io::Result<()>) -> Result<()> {
    match (result, written) {
        (Err(e), _) if e.downcast_ref::<OutputClosed>().is_none() => Err(e),
        (_, Err(_)) | (Err(_), _) => Err(anyhow::Error::new(OutputClosed)),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// One line per account that failed, or whose streams did; an error naming them all.
fn accounts_result(runs: &[engine::AccountRun]) -> Result<()> {
    let mut failed = Vec::new();
    for run in runs {
        match &run.outcome {
            Ok(outcome) => {
                for s in &outcome.skipped {
                    log::warn(&format!(
                        "account {}: stream {} was not synced: {}",
                        run.account.id, s.stream, s.reason
                    ));
                }
                if let Some(line) = outcome.failure_line() {
                    log::error(&format!("account {}: {line}", run.account));
                    failed.push(format!("account {}: {line}", run.account));
                }
            }
            Err(e) => {
                log::error(&format!("account {} failed: {e:#}", run.account));
                failed.push(format!("account {} failed: {e:#}", run.account));
            }
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(anyhow!(
        "{} of {} accounts did not sync completely, the others did: {}",
        failed.len(),
        runs.len(),
        failed.join("; ")
    ))
}

async fn sync_one_until_signal(
    config: Config,
    selection: Selection,
    state: State,
    mut signals: tokio::sync::watch::Receiver<Option<&'static str>>,
) -> Result<()> {
    // The state is planned from, then handed to the writer without a copy (it may be tens
    // of MB of other taps' bookmarks).
    let plan = engine::plan(&config.sync, &selection, &state)?;
    let (emitter, writer) = output::start(std::io::stdout(), state);
    let last_word = emitter.clone();
    let outcome = tokio::select! {
        r = engine::run_plan(&config.client, config.sync, plan, emitter) => Some(r),
        _ = signals.changed() => None,
    };
    let _ = last_word.finish().await;
    drop(last_word);
    let (_, written) = tokio::task::spawn_blocking(move || writer.finish()).await?;
    let result = match outcome {
        Some(Ok(outcome)) => {
            for s in &outcome.skipped {
                log::warn(&format!("stream {} was not synced: {}", s.stream, s.reason));
            }
            match outcome.failure_line() {
                Some(line) => Err(anyhow!(line)),
                None => Ok(()),
            }
        }
        Some(Err(e)) => Err(e),
        None => Err(anyhow!(
            "interrupted by a signal before the sync finished; rerun with the last STATE to resume"
        )),
    };
    sync_result(result, written)
}

/// How long the run may take to end after a signal (to write its last STATE, if stdout
/// takes it) before the process exits anyway: a target that stopped reading never holds it.
const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// SIGTERM, SIGINT and SIGHUP, listened to from the start so that a signal at any point after
/// the first moments ends the sync cleanly (flush, last STATE, exit 1), within [`GRACE`]
/// whatever stdout does; a second signal ends it at once.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Must be called inside the runtime.
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Listens in a task of its own (inside the runtime): the receiver learns the first
    /// signal's name.
    fn listen(mut self) -> tokio::sync::watch::Receiver<Option<&'static str>> {
        let (tx, rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let sig = self.recv().await;
            log::warn(&format!(
                "{sig} received: stopping; the last STATE covers every record emitted"
            ));
            let _ = tx.send(Some(sig));
            std::thread::spawn(move || {
                // Exits once stdout has taken nothing for GRACE: a target still reading (a
                // big last STATE on its way) is given the time it needs.
                use std::sync::atomic::Ordering;
                let mut seen = output::WRITTEN.load(Ordering::Relaxed);
                let mut still = std::time::Instant::now();
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                    let now = output::WRITTEN.load(Ordering::Relaxed);
                    if now != seen {
                        seen = now;
                        still = std::time::Instant::now();
                    } else if still.elapsed() >= GRACE {
                        break;
                    }
                }
                log::log(
                    log::Level::Critical,
                    &format!("{sig}: the run did not end within {} s of stdout taking nothing (is it still read?): exiting without a final STATE", GRACE.as_secs()),
                );
                std::process::exit(1);
            });
            let again = self.recv().await;
            log::log(
                log::Level::Critical,
                &format!("{again} received again: exiting now"),
            );
            std::process::exit(1);
        });
        rx
    }

    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            let term = async {
                match self.term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let hup = async {
                match self.hup.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => "SIGTERM",
                _ = hup => "SIGHUP",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
