//! What a user approves, and the rules that bind every token issued from it.
//!
//! An authorization request that passed every check of `/authorize` is a [`PendingAuth`]
//! (typed: redirect URI, PKCE challenge, scopes); after login and consent it becomes a
//! [`Grant`] — client, user, scopes, resource, token family, the approved document's binding —
//! stored once with the authorization code ([`issue_code`]) and carried unchanged by every
//! refresh token of the family. The rules, one module each:
//!
//! | module | rule |
//! |---|---|
//! | [`pkce`] | RFC 7636 S256 (challenge at /authorize, verifier at /token) |
//! | [`scopes`] | RFC 6749 §3.3 scopes granted, §6 narrowing at refresh |
//! | [`resource`] | RFC 8707 resource selection and binding |
//! | [`binding`] | the approved CIMD document against the current one |
//! | [`id_jag`] | the ID-JAG grant of enterprise-managed authorization (SEP-990) |

pub mod binding;
pub mod id_jag;
pub mod pkce;
pub mod resource;
pub mod scopes;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use cimd::redirect::RedirectUri;
use cimdgate_store::{CodeRecord, StoreError, TokenHash};
pub use cimdgate_store::{DocumentBinding, Grant, Scopes};

use crate::clients::Client;
use crate::services::Services;
use pkce::CodeChallenge;

/// How long a pending authorization request (login/consent form) stays valid.
pub const PENDING_TTL_SECS: u64 = 600;

/// An authorization request that passed every check; sealed into the login and consent forms
/// (no server state before the user signs in).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuth {
    /// Random id (binds CSRF tokens).
    pub id: String,
    /// Exact client_id.
    pub client_id: String,
    /// The verified redirect URI: as sent, or the single registered one.
    pub redirect_uri: RedirectUri,
    /// Client `state`, echoed back.
    pub state: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: CodeChallenge,
    /// Resource identifier (RFC 8707).
    pub resource: String,
    /// Scopes to grant.
    pub scope: Scopes,
    /// Scopes this client may hold now (the resource's, narrowed to the client's declared
    /// scopes and an administrator's ceiling): what a re-authorization may keep from the
    /// user's earlier grants (SEP-2350, [`scopes::accumulate`]).
    #[serde(default)]
    pub may_keep: Scopes,
    /// The browser-binding cookie value this request belongs to.
    pub browser: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// The user who approves a grant.
#[derive(Debug, Clone, Copy)]
pub struct Approver<'a> {
    /// The user's subject.
    pub subject: &'a str,
    /// When the user authenticated (Unix seconds).
    pub auth_time: u64,
    /// The user's sealed IdP tokens' reference, after an IdP sign-in.
    pub idp_ref: Option<&'a str>,
}

/// The grant a consent creates: a new token family, bound to the document the user saw.
pub fn new_grant(client: &Client, pending: &PendingAuth, approver: &Approver<'_>) -> Grant {
    Grant {
        client_id: pending.client_id.clone(),
        client_kind: client.kind(),
        subject: approver.subject.to_owned(),
        scope: pending.scope.clone(),
        resource: pending.resource.clone(),
        family_id: crate::rand::token(16),
        document: client.document_binding(),
        idp_ref: approver.idp_ref.map(str::to_owned),
        created_at: Some(SystemTime::now()),
    }
}

/// Issue an authorization code for an approved request (RFC 6749 §4.1.2): a new ordered token,
/// stored by its hash with the grant, the redirect URI and the PKCE challenge; single-use, valid
/// `tokens.code_ttl_secs`.
pub async fn issue_code(
    services: &Services,
    client: &Client,
    pending: &PendingAuth,
    approver: &Approver<'_>,
) -> Result<String, StoreError> {
    let code = crate::rand::ordered_token();
    let record = CodeRecord {
        grant: new_grant(client, pending, approver),
        redirect_uri: pending.redirect_uri.as_str().to_owned(),
        code_challenge: pending.code_challenge.as_str().to_owned(),
        auth_time: crate::time::from_unix(approver.auth_time),
        expires_at: crate::time::after(SystemTime::now(), services.config.tokens.code_ttl_secs),
    };
    services
        .store
        .put_code(&TokenHash::of(&code), &record)
        .await?;
    Ok(code)
}
