//! What the HTTP client is configured with: the credentials, the origins, the rate budgets
//! and the limits on time, retries and size. [`crate::config`] parses it from the config file.

use std::fmt;
use std::time::Duration;

/// A secret string that never shows in logs, errors or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// How the client authenticates: a personal access token, or OAuth with a refresh token.
#[derive(Debug, Clone)]
pub enum Credentials {
    Token {
        access_token: Secret,
    },
    OAuth {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
    },
}

/// A rate budget: at most `requests` in any `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub requests: u32,
    pub window: Duration,
}

/// Which Harvest accounts of the token are read (`account_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounts {
    /// None given (OAuth): the token's first Harvest account.
    First,
    One(String),
    /// A list: each is checked against the token's accounts.
    These(Vec<String>),
    /// `"*"`: every Harvest account of the token (Forecast accounts skipped).
    All,
}

impl Accounts {
    /// The one account configured, when one is.
    pub fn one(&self) -> Option<&str> {
        match self {
            Accounts::One(id) => Some(id),
            Accounts::First | Accounts::These(_) | Accounts::All => None,
        }
    }

    /// Whether the config names several accounts (a list or `"*"`): rows then say their
    /// account, whatever the token turns out to have.
    pub fn several(&self) -> bool {
        match self {
            Accounts::These(_) | Accounts::All => true,
            Accounts::First | Accounts::One(_) => false,
        }
    }
}

/// The client's part of the config.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub auth: Credentials,
    pub accounts: Accounts,
    /// Each account has a rate budget of its own (`budget_per_account`); else the accounts of
    /// the token share one.
    pub budget_per_account: bool,
    pub user_agent: String,
    pub base_url: String,
    pub auth_url: String,
    pub request_timeout: Duration,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub budget: Rate,
    pub reports_budget: Rate,
    /// The most requests in flight at once (the connection pool's idle size follows it).
    pub max_concurrency: usize,
    /// The largest response body read, in bytes.
    pub max_response_bytes: usize,
}
