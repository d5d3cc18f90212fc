//! The `github` preset: GitHub OAuth apps are OAuth 2.0 only (no OIDC, no id_token), so the user
//! comes from the REST API (`GET /user`, and `GET /user/emails` when the profile hides the email).
//!
//! Subject: `github:<numeric id>` — the numeric id is stable across renames, the login is not.

use serde::Deserialize;
use url::Url;

use super::net::{self, host_of};
use super::types::IdpError;

/// GitHub's authorization endpoint.
pub(crate) const AUTHORIZE: &str = "https://github.com/login/oauth/authorize";
/// GitHub's token endpoint (answers JSON only with `Accept: application/json`).
pub(crate) const TOKEN: &str = "https://github.com/login/oauth/access_token";
/// GitHub's user endpoint.
pub(crate) const USER: &str = "https://api.github.com/user";
/// Default scopes: read the profile and the (possibly private) email addresses.
pub(crate) const DEFAULT_SCOPES: &[&str] = &["read:user", "user:email"];

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

/// The GitHub user behind `access_token`: `(subject, name, email)`.
pub(crate) async fn user(
    client: &reqwest::Client,
    user_url: &Url,
    access_token: &str,
) -> Result<(String, Option<String>, Option<String>), IdpError> {
    let body = net::send(user_url, api_get(client, user_url, access_token)).await?;
    let bad = |reason: String| IdpError::UserInfo {
        host: host_of(user_url),
        reason,
    };
    if !body.status.is_success() {
        return Err(bad(format!("{user_url} answered HTTP {}", body.status)));
    }
    let u: GithubUser = net::parse_json(&body).map_err(bad)?;
    let email = match u.email.filter(|e| !e.is_empty()) {
        Some(e) => Some(e),
        None => primary_email(client, user_url, access_token).await,
    };
    let name = u.name.filter(|n| !n.is_empty()).or(Some(u.login));
    Ok((format!("github:{}", u.id), name, email))
}

/// Best effort: the primary verified address from `/user/emails` (needs `user:email`).
async fn primary_email(client: &reqwest::Client, user_url: &Url, token: &str) -> Option<String> {
    let url = user_url.join("user/emails").ok()?;
    let body = net::send(&url, api_get(client, &url, token)).await.ok()?;
    if !body.status.is_success() {
        return None;
    }
    let list: Vec<GithubEmail> = net::parse_json(&body).ok()?;
    list.into_iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email)
}

fn api_get(client: &reqwest::Client, url: &Url, token: &str) -> reqwest::RequestBuilder {
    client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .bearer_auth(token)
}
