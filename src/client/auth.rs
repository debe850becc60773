//! Credentials: a personal access token, or OAuth (refresh-token grant) with access tokens
//! refreshed before they expire and once more on a 401. Secrets never leave this module except
//! in request headers. [`Authenticator`] is the request path's authentication layer.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use reqwest::header::HeaderValue;
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use super::HttpError;

use super::config::{Accounts, ClientConfig, Credentials, Secret};

struct Token {
    value: Secret,
    /// When it is refreshed (before it expires).
    refresh_at: Option<Instant>,
}

pub struct Auth {
    mode: Credentials,
    token: Mutex<Option<Token>>,
    auth_url: String,
    user_agent: String,
    max_retries: u32,
    backoff_base: Duration,
}

/// How long before expiry a token is refreshed.
const MARGIN: Duration = Duration::from_secs(60);

/// The shortest a token is kept before it is refreshed, whatever `expires_in` says (a token
/// that truly expires sooner is refreshed once on its 401).
const MIN_KEEP: Duration = Duration::from_secs(10);

/// The most of a Harvest ID response that is read: its answers are a few hundred bytes.
const MAX_ID_BODY: usize = 1 << 20;

/// When a token that lives `ttl` is refreshed: a minute before it expires, or halfway through
/// a shorter life, and never sooner than [`MIN_KEEP`]: one refresh per token lifetime.
fn keep_for(ttl: Duration) -> Duration {
    if ttl >= MARGIN * 2 {
        ttl - MARGIN
    } else {
        (ttl / 2).max(MIN_KEEP)
    }
}

/// An answer from Harvest ID: its status and (bounded) body.
struct IdAnswer {
    status: u16,
    body: Value,
}

impl Auth {
    pub fn new(config: &ClientConfig) -> Auth {
        let token = match &config.auth {
            Credentials::Token { access_token } => Some(Token {
                value: access_token.clone(),
                refresh_at: None,
            }),
            Credentials::OAuth { .. } => None,
        };
        Auth {
            mode: config.auth.clone(),
            token: Mutex::new(token),
            auth_url: config.auth_url.clone(),
            user_agent: config.user_agent.clone(),
            max_retries: config.max_retries,
            backoff_base: config.backoff_base,
        }
    }

    pub fn is_oauth(&self) -> bool {
        matches!(self.mode, Credentials::OAuth { .. })
    }

    /// The current access token, refreshed first when missing or about to expire.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Secret> {
        let mut guard = self.token.lock().await;
        let fresh = guard
            .as_ref()
            .is_some_and(|t| t.refresh_at.is_none_or(|e| e > Instant::now()));
        if !fresh {
            *guard = Some(self.refresh(http).await?);
        }
        Ok(guard.as_ref().unwrap().value.clone())
    }

    /// Forces a refresh after a 401, unless another request refreshed since `rejected` was used.
    pub async fn refresh_after_401(&self, http: &reqwest::Client, rejected: &Secret) -> Result<()> {
        let mut guard = self.token.lock().await;
        if guard.as_ref().is_some_and(|t| &t.value != rejected) {
            return Ok(());
        }
        *guard = Some(self.refresh(http).await?);
        Ok(())
    }

    /// Sends a request to Harvest ID, retried as API requests are: connection failures,
    /// timeouts, cut bodies and 5xx with backoff, 429 after its (capped) `Retry-After`.
    async fn send_to_id(
        &self,
        what: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<IdAnswer> {
        let mut failures = 0u32;
        loop {
            // What failed, and the `Retry-After` that came with it.
            let (failure, retry_after) = match request().send().await {
                Err(e) => (super::describe(&e), None),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match read_bounded(resp).await {
                        Err(e) => (e, None),
                        Ok(_) if status == 429 || super::retry::retryable_status(status) => {
                            (format!("Harvest ID answered {status}"), retry_after)
                        }
                        Ok(body) => {
                            return Ok(IdAnswer {
                                status,
                                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                            })
                        }
                    }
                }
            };
            failures += 1;
            if failures > self.max_retries {
                bail!("{what}: {failure}; gave up after {failures} tries");
            }
            // Harvest ID's Retry-After, capped at the API's window; else the backoff.
            let wait = super::retry::capped_retry_after(
                retry_after.as_deref(),
                super::retry::backoff(self.backoff_base, failures),
                Duration::from_secs(15),
                what,
            );
            crate::log::warn(&format!(
                "{what}: {failure}; retry {failures}/{} in {:.1} s",
                self.max_retries,
                wait.as_secs_f64()
            ));
            tokio::time::sleep(wait).await;
        }
    }

    async fn refresh(&self, http: &reqwest::Client) -> Result<Token> {
        let Credentials::OAuth {
            client_id,
            client_secret,
            refresh_token,
        } = &self.mode
        else {
            bail!("Harvest rejected the personal access token (401 invalid_token): check access_token and account_id");
        };
        let url = format!("{}/oauth2/token", self.auth_url);
        crate::log::debug(&format!("POST {url} (refresh_token grant)"));
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.expose()),
        ];
        let what = "OAuth token refresh (POST /oauth2/token)";
        let answer = self
            .send_to_id(what, || {
                http.post(&url)
                    .header(reqwest::header::USER_AGENT, &self.user_agent)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(&form)
            })
            .await?;
        let body = answer.body;
        if !(200..300).contains(&answer.status) {
            // Only Harvest ID's own error fields are shown, bounded (a body may echo the form).
            let field = |k: &str| {
                body[k]
                    .as_str()
                    .map(|s| crate::log::redact(s).chars().take(200).collect::<String>())
            };
            let status = answer.status;
            match (status, field("error")) {
                (400 | 401, Some(error)) => {
                    let description = field("error_description").unwrap_or_default();
                    bail!("OAuth token refresh failed ({status} {error}): {description}; check client_id, client_secret and refresh_token")
                }
                _ => bail!(
                    "OAuth token refresh failed: Harvest ID answered {status}{}",
                    field("error_description")
                        .or_else(|| field("message"))
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
            }
        }
        let Some(access) = body["access_token"].as_str() else {
            bail!("OAuth token response from {url} has no access_token");
        };
        crate::log::add_secret(access);
        if access.chars().any(|c| c.is_control() || !c.is_ascii()) {
            bail!("OAuth token response from {url} has an access_token that cannot be sent in a header");
        }
        if let Some(new_refresh) = body["refresh_token"].as_str() {
            crate::log::add_secret(new_refresh);
        }
        let ttl = body["expires_in"].as_u64().unwrap_or(17 * 3600);
        let keep = keep_for(Duration::from_secs(ttl.min(10 * 365 * 86400)));
        if ttl < MARGIN.as_secs() * 2 {
            crate::log::warn(&format!(
                "OAuth access token refreshed; it expires in {ttl} s, unusually soon: it is refreshed again in {:.0} s, not sooner",
                keep.as_secs_f64()
            ));
        } else {
            crate::log::info(&format!(
                "OAuth access token refreshed; it expires in {ttl} s"
            ));
        }
        Ok(Token {
            value: Secret::from(access),
            refresh_at: Some(Instant::now() + keep),
        })
    }

    /// Why the API refused `token` for `account_id` (a 401), as Harvest ID's list of the
    /// token's accounts tells it: a token Harvest ID refuses too, an account the token does
    /// not have (with the ones it has), or a Forecast account.
    pub async fn diagnose_401(
        &self,
        http: &reqwest::Client,
        token: &Secret,
        account_id: &str,
    ) -> String {
        let fix_token = if self.is_oauth() {
            "check client_id, client_secret and refresh_token"
        } else {
            "create a new personal access token at id.getharvest.com/developers"
        };
        let url = format!("{}/accounts", self.auth_url);
        let answer = self
            .send_to_id(
                "asking Harvest ID which accounts the token has (GET /accounts)",
                || {
                    http.get(&url)
                        .bearer_auth(token.expose())
                        .header(reqwest::header::USER_AGENT, &self.user_agent)
                        .header(reqwest::header::ACCEPT, "application/json")
                },
            )
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                return format!(
                    "check the token and account_id (Harvest ID could not be asked: {e})"
                )
            }
        };
        if answer.status == 401 {
            return format!("the access token is invalid, expired or revoked (Harvest ID refuses it too): {fix_token}");
        }
        let accounts: Vec<(String, String, String)> = answer.body["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let id = match &a["id"] {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => String::new(),
                };
                let name = a["name"]
                    .as_str()
                    .unwrap_or("unnamed")
                    .chars()
                    .take(80)
                    .collect();
                let product = a["product"].as_str().unwrap_or("").to_string();
                (id, name, product)
            })
            .collect();
        if !(200..300).contains(&answer.status) || accounts.is_empty() && !answer.body.is_object() {
            return format!(
                "check the token and account_id (Harvest ID answered {} listing the token's accounts)",
                answer.status
            );
        }
        let harvest: Vec<String> = accounts
            .iter()
            .filter(|(_, _, p)| p == "harvest")
            .map(|(id, name, _)| format!("{id} ({name})"))
            .collect();
        let theirs = if harvest.is_empty() {
            "the token has no Harvest account at all".to_string()
        } else {
            format!("the token's Harvest accounts: {}", harvest.join(", "))
        };
        match accounts.iter().find(|(id, _, _)| id == account_id) {
            Some((_, name, p)) if p != "harvest" => format!(
                "account_id {account_id} is a {} account ({name}), not a Harvest one; {theirs}",
                if p == "forecast" { "Forecast" } else { p.as_str() }
            ),
            Some((_, name, _)) => format!(
                "the token is valid and lists account_id {account_id} ({name}), yet Harvest refused it: the token's user may have been deactivated or removed in that account"
            ),
            None => format!("account_id {account_id} is not one of this token's accounts; {theirs}"),
        }
    }

    /// The token's accounts, as Harvest ID lists them.
    pub async fn list_accounts(&self, http: &reqwest::Client) -> Result<Vec<Account>> {
        let token = self.token(http).await?;
        let url = format!("{}/accounts", self.auth_url);
        let answer = self
            .send_to_id("listing the token's accounts (GET /accounts)", || {
                http.get(&url)
                    .bearer_auth(token.expose())
                    .header(reqwest::header::USER_AGENT, &self.user_agent)
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await?;
        let status = answer.status;
        if status == 401 {
            bail!(
                "Harvest ID rejected the token (401) listing its accounts: check the credentials"
            );
        }
        if !(200..300).contains(&status) {
            bail!("listing the token's accounts at {url} failed with {status}");
        }
        let body = answer.body;
        if !body.is_object() {
            bail!("accounts response from {url} is not a JSON object");
        }
        body["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let id = match &a["id"] {
                    Value::Number(n) if n.is_u64() => n.to_string(),
                    Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                        s.clone()
                    }
                    _ => bail!("the accounts list has an account without a usable id"),
                };
                Ok(Account {
                    id,
                    name: a["name"]
                        .as_str()
                        .unwrap_or("unnamed")
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(80)
                        .collect(),
                    harvest: a["product"].as_str() == Some("harvest"),
                })
            })
            .collect()
    }

    /// The accounts to read: the one configured (not looked up), else those of the token's
    /// list that the config names (`"*"`: every Harvest one; none given: the first).
    pub async fn accounts(
        &self,
        http: &reqwest::Client,
        wanted: &Accounts,
    ) -> Result<Vec<Account>> {
        if let Accounts::One(id) = wanted {
            return Ok(vec![Account {
                id: id.clone(),
                name: String::new(),
                harvest: true,
            }]);
        }
        let listed = self.list_accounts(http).await?;
        let harvest: Vec<&Account> = listed.iter().filter(|a| a.harvest).collect();
        let theirs = || {
            if harvest.is_empty() {
                "the token has no Harvest account".to_string()
            } else {
                format!(
                    "the token's Harvest accounts: {}",
                    harvest
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        let chosen: Vec<Account> = match wanted {
            Accounts::One(_) => unreachable!("answered above"),
            Accounts::First => harvest.first().map(|a| (*a).clone()).into_iter().collect(),
            Accounts::All => harvest.iter().map(|a| (*a).clone()).collect(),
            Accounts::These(ids) => {
                let mut chosen = Vec::new();
                for id in ids {
                    match listed.iter().find(|a| &a.id == id) {
                        Some(a) if a.harvest => chosen.push(a.clone()),
                        Some(a) => bail!(
                            "config key 'account_id': {a} is a Forecast account, not a Harvest one; {}",
                            theirs()
                        ),
                        None => bail!(
                            "config key 'account_id': {id} is not one of this token's accounts; {}",
                            theirs()
                        ),
                    }
                }
                chosen
            }
        };
        if chosen.is_empty() {
            bail!("{} (only Forecast or none); set account_id", theirs());
        }
        Ok(chosen)
    }

    /// The account to read: the configured one, else the first Harvest (not Forecast) account
    /// the token can reach.
    pub async fn account_id(
        &self,
        http: &reqwest::Client,
        configured: Option<&str>,
    ) -> Result<String> {
        if let Some(id) = configured {
            return Ok(id.to_string());
        }
        let first = self.accounts(http, &Accounts::First).await?.remove(0);
        crate::log::info(&format!("using Harvest account {first}"));
        Ok(first.id)
    }
}

/// A Harvest account of the token, as Harvest ID lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    /// Empty when the account was not looked up (one configured).
    pub name: String,
    /// A Harvest (not Forecast) account.
    pub harvest: bool,
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}", self.id)
        } else {
            write!(f, "{} ({})", self.id, self.name)
        }
    }
}

/// The second layer of the request path: authentication. Each try is signed with the current
/// access token (refreshed before it expires) and the account's id; after a 401 the token is
/// refreshed once (OAuth), and a 401 no refresh cures is explained, once a run, by asking
/// Harvest ID about the token.
pub struct Authenticator {
    /// The token, shared by the accounts read with it (one refresh serves them all).
    auth: Arc<Auth>,
    account_id: HeaderValue,
    /// Why Harvest refused the credentials, asked of Harvest ID once a run.
    diagnosis: OnceCell<String>,
}

impl Authenticator {
    pub fn new(auth: Arc<Auth>, account_id: HeaderValue) -> Authenticator {
        Authenticator {
            auth,
            account_id,
            diagnosis: OnceCell::new(),
        }
    }

    /// The same token, signing for another account.
    pub fn for_account(&self, account_id: HeaderValue) -> Authenticator {
        Authenticator::new(self.auth.clone(), account_id)
    }

    /// The account it signs for.
    pub fn account(&self) -> &str {
        self.account_id.to_str().unwrap_or("")
    }

    /// Whether a 401 is worth a refresh of the token.
    pub fn can_refresh(&self) -> bool {
        self.auth.is_oauth()
    }

    /// The token the next try is signed with.
    pub async fn token(&self, http: &reqwest::Client) -> std::result::Result<Secret, HttpError> {
        self.auth
            .token(http)
            .await
            .map_err(|e| HttpError::Unauthorized(e.to_string()))
    }

    /// `request` with the credentials: the token and the account's id.
    pub fn sign(
        &self,
        request: reqwest::RequestBuilder,
        token: &Secret,
    ) -> reqwest::RequestBuilder {
        request
            .bearer_auth(token.expose())
            .header("Harvest-Account-Id", self.account_id.clone())
    }

    /// Refreshes the OAuth token after `endpoint` answered 401 to `rejected`.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        endpoint: &str,
        rejected: &Secret,
    ) -> std::result::Result<(), HttpError> {
        crate::log::info(&format!(
            "GET {endpoint}: 401, refreshing the OAuth access token and retrying"
        ));
        self.auth
            .refresh_after_401(http, rejected)
            .await
            .map_err(|e| HttpError::Unauthorized(e.to_string()))
    }

    /// The error for a 401 that no refresh cures, with Harvest ID's word on why.
    pub async fn refused(
        &self,
        http: &reqwest::Client,
        endpoint: &str,
        token: &Secret,
    ) -> HttpError {
        let account = self.account_id.to_str().unwrap_or("");
        let why = self
            .diagnosis
            .get_or_init(|| self.auth.diagnose_401(http, token, account))
            .await;
        HttpError::Unauthorized(format!(
            "GET {endpoint}: Harvest refused the credentials (401): {why}"
        ))
    }
}

/// A Harvest ID response's body, at most [`MAX_ID_BODY`] bytes.
async fn read_bounded(mut resp: reqwest::Response) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ID_BODY {
                    return Err(format!(
                        "the response is larger than {} KB",
                        MAX_ID_BODY >> 10
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(super::describe(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_once_per_lifetime_whatever_it_says() {
        assert_eq!(
            keep_for(Duration::from_secs(3600)),
            Duration::from_secs(3540)
        );
        assert_eq!(keep_for(Duration::from_secs(100)), Duration::from_secs(50));
        assert_eq!(keep_for(Duration::from_secs(30)), Duration::from_secs(15));
        assert_eq!(keep_for(Duration::ZERO), MIN_KEEP);
    }
}
