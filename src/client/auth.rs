//! Credentials: a personal access token, or OAuth (refresh-token grant) with access tokens
//! refreshed before they expire and once more on a 401. Secrets never leave this module except
//! in request headers.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::{Auth as AuthConfig, Config, Secret};

struct Token {
    value: Secret,
    expires: Option<Instant>,
}

pub struct Auth {
    mode: AuthConfig,
    token: Mutex<Option<Token>>,
    auth_url: String,
    user_agent: String,
}

/// How long before expiry a token is refreshed.
const MARGIN: Duration = Duration::from_secs(60);

impl Auth {
    pub fn new(config: &Config) -> Auth {
        let token = match &config.auth {
            AuthConfig::Token { access_token } => Some(Token {
                value: access_token.clone(),
                expires: None,
            }),
            AuthConfig::OAuth { .. } => None,
        };
        Auth {
            mode: config.auth.clone(),
            token: Mutex::new(token),
            auth_url: config.auth_url.clone(),
            user_agent: config.user_agent.clone(),
        }
    }

    pub fn is_oauth(&self) -> bool {
        matches!(self.mode, AuthConfig::OAuth { .. })
    }

    /// The current access token, refreshed first when missing or about to expire.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Secret> {
        let mut guard = self.token.lock().await;
        let fresh = guard
            .as_ref()
            .is_some_and(|t| t.expires.is_none_or(|e| e > Instant::now() + MARGIN));
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

    async fn refresh(&self, http: &reqwest::Client) -> Result<Token> {
        let AuthConfig::OAuth {
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
        let resp = http
            .post(&url)
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "OAuth token request to {url} failed: {}",
                    super::describe(&e)
                )
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error = body["error"].as_str().unwrap_or("unknown error");
            let description = body["error_description"].as_str().unwrap_or("");
            bail!("OAuth token refresh failed ({status}): {error} {description}; check client_id, client_secret and refresh_token");
        }
        let Some(access) = body["access_token"].as_str() else {
            bail!("OAuth token response from {url} has no access_token");
        };
        let ttl = body["expires_in"].as_u64().unwrap_or(17 * 3600);
        crate::log::info(&format!(
            "OAuth access token refreshed; it expires in {ttl} s"
        ));
        Ok(Token {
            value: Secret::from(access),
            expires: Some(Instant::now() + Duration::from_secs(ttl)),
        })
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
        let token = self.token(http).await?;
        let url = format!("{}/accounts", self.auth_url);
        let resp = http
            .get(&url)
            .bearer_auth(token.expose())
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| anyhow!("accounts request to {url} failed: {}", super::describe(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("listing the token's accounts at {url} failed with {status}");
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|_| anyhow!("accounts response from {url} is not JSON"))?;
        let account = body["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["product"].as_str() == Some("harvest"))
            .ok_or_else(|| {
                anyhow!("the token has no Harvest account (only Forecast or none); set account_id")
            })?;
        let id = match &account["id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => bail!("the accounts list has an account without an id"),
        };
        crate::log::info(&format!(
            "using Harvest account {id} ({})",
            account["name"].as_str().unwrap_or("unnamed")
        ));
        Ok(id)
    }
}
