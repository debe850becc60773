//! `harvest-sim`: a faithful local simulator of the Harvest REST API v2.
//!
//! One listener serves the API under `/v2`, Harvest ID (OAuth token refresh and the accounts
//! list) under `/id/api/v2`, and an unauthenticated control API under `/__control`. The account
//! is generated deterministically from a seed and a [`Size`]; [`SimConfig::accounts`] adds more
//! Harvest accounts, each with its own id, name and data, all reached by the same tokens and
//! picked per request by `Harvest-Account-Id` ([`Sim::account`] addresses one). See the crate
//! README for the full contract (envelopes, pagination modes, auth, permissions, rate limits,
//! faults, several accounts, control API).
//!
//! ```no_run
//! use harvest_sim::{Sim, SimConfig, Size};
//! let sim = Sim::start(SimConfig::fast(Size::Tiny)).unwrap();
//! println!("{}", sim.base_url()); // http://127.0.0.1:PORT/v2
//! let clients = sim.truth("clients");
//! assert!(!clients.is_empty());
//! ```
//!
//! # Layers
//!
//! Each module uses only modules of the layers below it (bottom first):
//!
//! 1. `util`, `config`: dates, timestamps and decimals; settings, credentials and the plain
//!    values of the library API (leaves).
//! 2. `model`: the records, the resource names (`Res`), the account (`Data`), tombstones, and
//!    each record's JSON view.
//! 3. `params`: query string, list filters, paging and cursors, `{"message"}` errors.
//! 4. `resources`: one declaration per resource (`DECLS`): table, parent, route, order,
//!    filters, permissions, view, mutation, deletion and generation rules (`Res::decl`).
//! 5. `query` (sort orders, children indexes, caches, the list envelope), `delete`, `gen`:
//!    generic over the declarations.
//! 6. `mutate` (touch, create, archive, redate), `reports` (aggregates).
//! 7. `api`: `/v2` routes, permissions and answers.
//! 8. `server`: HTTP, auth, rate limits, faults, latency, statistics, Harvest ID, control API.
//! 9. This crate root (`Sim`), then the binary (`main.rs`).
//!
//! Adding a resource touches two files: `model.rs` (its record, view, `Res` variant and
//! `Data` table) and `resources.rs` (its declaration, at the variant's position).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

pub mod api;
pub mod config;
pub mod delete;
pub mod gen;
pub mod model;
pub mod mutate;
pub mod params;
pub mod query;
pub mod reports;
pub mod resources;
pub mod server;
pub mod util;

pub use config::*;
pub use model::AccessRole;

/// A running simulator. It owns a background thread with its own tokio runtime; dropping it
/// shuts the server down.
pub struct Sim {
    state: Arc<server::AppState>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sim {
    /// Generates the accounts, binds the configured address (127.0.0.1:0 by default) and
    /// returns once the server is listening.
    pub fn start(config: SimConfig) -> anyhow::Result<Sim> {
        let bind = config.addr;
        let state = Arc::new(server::AppState::new(config));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<SocketAddr>>();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("harvest-sim".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("harvest-sim-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind(bind).await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let addr = listener.local_addr();
                    let ok = addr.is_ok();
                    let _ = ready_tx.send(addr);
                    if !ok {
                        return;
                    }
                    server::serve(st, listener, async move {
                        let _ = shutdown_rx.await;
                    })
                    .await;
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })?;
        let addr = ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("simulator thread exited before listening"))??;
        state.set_addr(addr);
        Ok(Sim {
            state,
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT/v2`
    pub fn base_url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }
    /// `http://127.0.0.1:PORT/id/api/v2`
    pub fn auth_url(&self) -> String {
        format!("http://{}/id/api/v2", self.addr)
    }
    /// `http://127.0.0.1:PORT/__control`
    pub fn control_url(&self) -> String {
        format!("http://{}/__control", self.addr)
    }

    /// Every Harvest account, the first being [`ACCOUNT_ID`] (see [`SimConfig::accounts`]).
    pub fn accounts(&self) -> Vec<HarvestAccount> {
        self.state
            .accounts()
            .iter()
            .map(|a| a.spec.clone())
            .collect()
    }

    /// The Harvest account with this id, to read, change or revoke it. Panics on an id the
    /// simulator lacks. The methods of `Sim` itself address the first account.
    pub fn account(&self, id: i64) -> SimAccount<'_> {
        let account = self
            .state
            .account(id)
            .unwrap_or_else(|| panic!("harvest-sim: no account {id}"));
        SimAccount {
            state: &self.state,
            account,
        }
    }

    /// The first account ([`ACCOUNT_ID`]).
    fn first(&self) -> SimAccount<'_> {
        SimAccount {
            state: &self.state,
            account: &self.state.accounts()[0],
        }
    }

    /// Every record of a resource exactly as its list endpoint would serve it now (any order);
    /// nested resources carry their parent id (`invoice_id`, `estimate_id` or `user_id`).
    /// Panics on an unknown resource name.
    pub fn truth(&self, resource: &str) -> Vec<serde_json::Value> {
        self.first().truth(resource)
    }

    /// Touches `update` existing records (updated_at = now, plus a visible change) and
    /// creates `create` new ones. Panics on an unknown resource name or `company`.
    pub fn mutate(&self, resource: &str, update: usize, create: usize) -> MutateResult {
        self.first().mutate(resource, update, create)
    }

    /// Deletes records of `resource` by id, with Harvest's cascades (a project's time entries,
    /// an invoice's messages...); `invoice_line_items` and `estimate_line_items` remove line
    /// items from their parent. Panics when Harvest would refuse (see [`delete`]).
    pub fn delete(&self, resource: &str, ids: &[i64]) -> delete::Deleted {
        self.first().delete(resource, ids)
    }

    /// Archives records of `resource` (`is_active: false`); they are not deleted.
    pub fn archive(&self, resource: &str, ids: &[i64]) {
        self.first().archive(resource, ids)
    }

    /// Moves time entries or expenses to another `spent_date` (`updated_at` = now).
    pub fn redate(&self, resource: &str, ids: &[i64], date: NaiveDate) {
        self.first().redate(resource, ids, date)
    }

    /// Ids of `count` records of `resource` that Harvest would let one delete, spread over
    /// the list.
    pub fn deletable(&self, resource: &str, count: usize) -> Vec<i64> {
        self.first().deletable(resource, count)
    }

    /// Adds a fault hitting requests to every account (see [`SimAccount::add_fault`] for one).
    pub fn add_fault(&self, fault: Fault) {
        self.state.add_fault(fault, None);
    }
    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// Adds `fixed` + uniform `[0, jitter]` latency to API and ID requests under `path_prefix`
    /// (all when `None`). Setting a prefix again replaces it; zero and zero removes it.
    pub fn set_latency(&self, fixed: Duration, jitter: Duration, path_prefix: Option<&str>) {
        self.state.set_latency(Latency {
            fixed,
            jitter,
            path_prefix: path_prefix.unwrap_or("").to_string(),
        });
    }
    /// Removes every latency rule.
    pub fn clear_latency(&self) {
        self.state.clear_latency();
    }

    pub fn requests(&self) -> RequestStats {
        self.state.requests()
    }
    pub fn reset_requests(&self) {
        self.state.reset_requests();
    }

    /// The rows `/v2/reports/{path}` would serve an administrator for `from..=to` (all pages;
    /// `project_budget` ignores the dates). Panics on an unknown report path.
    pub fn report(
        &self,
        path: &str,
        from: NaiveDate,
        to: NaiveDate,
        include_fixed_fee: bool,
    ) -> Vec<serde_json::Value> {
        self.first().report(path, from, to, include_fixed_fee)
    }

    /// Switches company features at run time.
    pub fn set_features(&self, features: Features) {
        self.state.set_features(features);
    }
    /// Replaces both rate limits at run time (clears the windows).
    pub fn set_rate_limits(&self, general: Option<RateLimit>, reports: Option<RateLimit>) {
        self.state.set_rate_limits(general, reports);
    }
    /// Makes every OAuth access token issued so far expire now.
    pub fn expire_access_tokens(&self) {
        self.state.expire_access_tokens();
    }
    /// Credentials and URLs (what `GET /__control/info` answers, without `counts`).
    pub fn info(&self) -> serde_json::Value {
        self.first().info()
    }
}

/// One Harvest account of a running simulator ([`Sim::account`]): the same reads and changes
/// as `Sim`'s, on this account's data, plus its faults and revocation.
pub struct SimAccount<'a> {
    state: &'a server::AppState,
    account: &'a server::Account,
}

impl SimAccount<'_> {
    /// Its id (as `Harvest-Account-Id` sends it, in decimal).
    pub fn id(&self) -> i64 {
        self.account.spec.id
    }
    /// Its name (and its company's).
    pub fn name(&self) -> &str {
        &self.account.spec.name
    }

    /// See [`Sim::truth`].
    pub fn truth(&self, resource: &str) -> Vec<serde_json::Value> {
        self.account
            .truth(resource, self.state.features())
            .unwrap_or_else(|e| panic!("harvest-sim truth: {e}"))
    }

    /// See [`Sim::mutate`].
    pub fn mutate(&self, resource: &str, update: usize, create: usize) -> MutateResult {
        self.account
            .mutate(resource, update, create)
            .unwrap_or_else(|e| panic!("harvest-sim mutate: {e}"))
    }

    /// See [`Sim::delete`].
    pub fn delete(&self, resource: &str, ids: &[i64]) -> delete::Deleted {
        self.account
            .delete(resource, ids)
            .unwrap_or_else(|e| panic!("harvest-sim delete: {e}"))
    }

    /// See [`Sim::archive`].
    pub fn archive(&self, resource: &str, ids: &[i64]) {
        self.account
            .archive(resource, ids)
            .unwrap_or_else(|e| panic!("harvest-sim archive: {e}"))
    }

    /// See [`Sim::redate`].
    pub fn redate(&self, resource: &str, ids: &[i64], date: NaiveDate) {
        self.account
            .redate(resource, ids, date)
            .unwrap_or_else(|e| panic!("harvest-sim redate: {e}"))
    }

    /// See [`Sim::deletable`].
    pub fn deletable(&self, resource: &str, count: usize) -> Vec<i64> {
        self.account
            .deletable(resource, count)
            .unwrap_or_else(|e| panic!("harvest-sim deletable: {e}"))
    }

    /// See [`Sim::report`].
    pub fn report(
        &self,
        path: &str,
        from: NaiveDate,
        to: NaiveDate,
        include_fixed_fee: bool,
    ) -> Vec<serde_json::Value> {
        self.account
            .report(path, from, to, include_fixed_fee)
            .unwrap_or_else(|e| panic!("harvest-sim report: {e}"))
    }

    /// Record counts per resource (`{"users": 4, ...}`).
    pub fn counts(&self) -> serde_json::Value {
        self.account.counts()
    }

    /// What `GET /__control/info?account_id=` answers, without `counts`.
    pub fn info(&self) -> serde_json::Value {
        self.state.info(self.account)
    }

    /// Adds a fault hitting only requests to this account.
    pub fn add_fault(&self, fault: Fault) {
        self.state.add_fault(fault, Some(self.id()));
    }

    /// Makes every `/v2` request to this account fail for good, as when the token's user
    /// lost access to it: 401 `invalid_token` or 403 (see [`Revocation`]), whatever the
    /// token. `/accounts` still lists it. Undone by [`SimAccount::restore`].
    pub fn revoke(&self, how: Revocation) {
        self.account.set_revoked(Some(how));
    }
    /// Gives the tokens access to this account again.
    pub fn restore(&self) {
        self.account.set_revoked(None);
    }
    /// How the account answers now, if it is revoked.
    pub fn revoked(&self) -> Option<Revocation> {
        self.account.revoked()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
