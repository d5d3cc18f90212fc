//! Resolving a `client_id` into a client the endpoints can trust (draft-ietf-oauth-client-id-
//! metadata-document §3–§4; docs/architecture.md, *Trust policy* and *Caching*).
//!
//! Order of checks, each named:
//! 1. `classify` — a CIMD URL (`https://…`, draft §3) or a locally registered id (draft §7.1:
//!    an explicit discriminator; DCR ids never start with `https://`);
//! 2. `check_policy` — the trust policy, **before any fetch** (blocked hosts are never fetched);
//! 3. `resolve` — a fresh cached document is used as is; otherwise the request can trigger a
//!    fetch, so it is rate-limited per client host (the per-IP limit is the endpoint's job)
//!    and resolved through the core cache: fresh for `/authorize`, stale-if-error allowed for
//!    `/token`, refresh and `/revoke` (a CIMD client never gets `invalid_client` just because
//!    the request reached `/token`);
//! 4. `check_admission` — the administrator's decision ([`crate::governance`]): blocked and
//!    denied clients are refused before any fetch; after the document is resolved the
//!    inventory records it (first sight, changed document) and approval mode refuses clients
//!    no administrator approved yet.

use std::sync::Arc;

use http::StatusCode;

use cimd::ClientIdUrl;
use cimd::cache::{ResolveError, ResolvedClient};
use cimd::client_id::{ClientIdError, is_url_client_id};
use cimd::document::AuthMethod;
use cimd::policy::{DenyReason, TrustDecision};
use cimd::redirect::{RedirectAllowList, RedirectMismatch, RedirectUri, select_redirect_uri};
use cimdgate_store::{
    AdminDecision, ClientKind, DocumentBinding, RegisteredClient, Scopes, StoreError,
};

use crate::audit;
use crate::error::{ErrorCode, OAuthError};
use crate::governance::{Admission, admission};
use crate::services::Services;

/// Why a client is being resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `/authorize`: the document must be fresh or revalidated.
    Authorize,
    /// `/token`, refresh, `/revoke`: a stale document may serve within the stale-if-error window.
    Token,
}

/// A CIMD client with its validated document.
#[derive(Debug, Clone)]
pub struct CimdClient {
    /// The client_id URL.
    pub id: ClientIdUrl,
    /// The validated document and its cache metadata.
    pub resolved: Arc<ResolvedClient>,
    /// Whether the trust policy marks it trusted, and whether consent may be skipped.
    pub trusted: bool,
    /// `auto_approve_trusted` applies.
    pub auto_approve: bool,
}

/// A resolved client of either kind.
#[derive(Debug, Clone)]
pub enum Client {
    /// Client ID Metadata Document client.
    Cimd(CimdClient),
    /// Dynamically registered client.
    Dcr(RegisteredClient),
}

impl Client {
    /// The exact client_id string.
    pub fn client_id(&self) -> &str {
        match self {
            Client::Cimd(c) => c.id.as_str(),
            Client::Dcr(c) => &c.client_id,
        }
    }

    /// CIMD or DCR.
    pub fn kind(&self) -> ClientKind {
        match self {
            Client::Cimd(_) => ClientKind::Cimd,
            Client::Dcr(_) => ClientKind::Dcr,
        }
    }

    /// Display name (self-declared; show the hostname first for CIMD clients).
    pub fn name(&self) -> Option<&str> {
        match self {
            Client::Cimd(c) => c.resolved.document.client_name.as_deref(),
            Client::Dcr(c) => c.client_name.as_deref(),
        }
    }

    /// The token-endpoint authentication method the client must use.
    pub fn auth_method(&self) -> &str {
        match self {
            Client::Cimd(c) => match c.resolved.document.token_endpoint_auth_method {
                AuthMethod::None => "none",
                AuthMethod::PrivateKeyJwt => "private_key_jwt",
            },
            Client::Dcr(c) => &c.token_endpoint_auth_method,
        }
    }

    /// What a grant binds of the client's document (its digest, computed once when the
    /// document was validated, and its auth method); `None` for DCR clients.
    pub fn document_binding(&self) -> Option<DocumentBinding> {
        match self {
            Client::Cimd(c) => Some(DocumentBinding {
                digest: c.resolved.digest.clone(),
                auth_method: self.auth_method().to_owned(),
            }),
            Client::Dcr(_) => None,
        }
    }

    /// The scopes the client's registration declares (`scope` in the document or DCR
    /// record), if it declares any.
    pub fn declared_scopes(&self) -> Option<Scopes> {
        match self {
            Client::Cimd(c) => c.resolved.document.scope.as_deref(),
            Client::Dcr(c) => c.scope.as_deref(),
        }
        .map(Scopes::parse)
    }

    /// Whether a grant with `scope` gets (and may use) refresh tokens: when the scope has
    /// `offline_access` (MCP 2026-07-28, "Refresh Tokens": a client MAY ask for it), and
    /// otherwise for every CIMD client of the authorization-code flow (draft §4.1 with OAuth
    /// 2.1 §4.3; FastMCP's refusal without `refresh_token` in `grant_types` is a known bug)
    /// and for DCR clients that registered `refresh_token`.
    pub fn may_refresh(&self, scope: &Scopes) -> bool {
        scope.contains(crate::config::OFFLINE_ACCESS)
            || match self {
                Client::Cimd(c) => c.resolved.document.allows_refresh(),
                Client::Dcr(c) => c.grant_types.iter().any(|g| g == "refresh_token"),
            }
    }

    /// Pick the redirect URI for this request (draft §4.3, OAuth 2.1 §2.3.1; RFC 8252 §7.3 for
    /// the loopback port): exact match (or the loopback port
    /// exception) against the registered URIs AND the operator allow-list.
    pub fn redirect_uri(
        &self,
        requested: Option<&str>,
        allow_list: Option<&RedirectAllowList>,
    ) -> Result<RedirectUri, RedirectMismatch> {
        match self {
            Client::Cimd(c) => {
                select_redirect_uri(&c.resolved.document.redirect_uris, allow_list, requested)
            }
            Client::Dcr(c) => {
                let registered: Vec<RedirectUri> = c
                    .redirect_uris
                    .iter()
                    .filter_map(|u| RedirectUri::parse(u).ok())
                    .collect();
                select_redirect_uri(&registered, allow_list, requested)
            }
        }
    }
}

/// Why a client_id cannot be used. Every message says what is wrong (FastMCP answers every
/// CIMD failure with an opaque "client not found").
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Looks like a URL but breaks the client_id rules.
    #[error("client_id {client_id:?} is not a valid Client ID Metadata Document URL: {reason}")]
    InvalidClientId {
        /// As sent.
        client_id: String,
        /// The rule broken.
        reason: ClientIdError,
    },
    /// CIMD is disabled on this server.
    #[error("this server does not accept Client ID Metadata Document clients")]
    CimdDisabled,
    /// Not a CIMD URL, and dynamically registered clients are not accepted (`[dcr] enabled`
    /// is off: the default, MCP 2026-07-28 deprecates registration).
    #[error(
        "unknown client_id {0:?}: it is not an https:// Client ID Metadata Document URL, and this \
         server does not accept dynamically registered clients"
    )]
    DcrDisabled(String),
    /// Refused by the trust policy (never fetched).
    #[error("client {client_id} is not allowed here: {reason}")]
    Blocked {
        /// The client.
        client_id: String,
        /// Which rule refused it.
        reason: DenyReason,
    },
    /// The document could not be fetched or is invalid.
    #[error("the client metadata document at {client_id} cannot be used: {reason}")]
    Document {
        /// The client.
        client_id: String,
        /// Fetch failure or validation report.
        reason: ResolveError,
    },
    /// Blocked or denied by an administrator, or (approval mode) not approved yet.
    #[error("{}", refusal_text(client_id, admission))]
    Refused {
        /// The client.
        client_id: String,
        /// Why (never [`Admission::Admitted`]).
        admission: Admission,
    },
    /// Not a URL and not a registered client.
    #[error("unknown client_id {0:?} (not a registered client and not an https:// CIMD URL)")]
    Unknown(String),
    /// Rate limited.
    #[error("{0}")]
    RateLimited(OAuthError),
    /// The store failed.
    #[error("store failure: {0}")]
    Store(StoreError),
}

impl ClientError {
    /// The OAuth error for this failure, the one mapping for every channel. Server-side
    /// failures are 429/503 everywhere. At the token and revocation endpoints every client
    /// problem is 401 `invalid_client` (RFC 6749 §5.2); at `/authorize` (shown as a page, never
    /// redirected) a client refused by policy is 403 `unauthorized_client` and any other client
    /// problem 400 `invalid_client`.
    pub fn to_oauth(&self, purpose: Purpose) -> OAuthError {
        match (self, purpose) {
            (ClientError::RateLimited(e), _) => e.clone(),
            (ClientError::Store(e), _) => OAuthError::from(e.clone()),
            (
                ClientError::Blocked { .. }
                | ClientError::Refused { .. }
                | ClientError::CimdDisabled,
                Purpose::Authorize,
            ) => OAuthError::new(ErrorCode::UnauthorizedClient, self.to_string()),
            (_, Purpose::Authorize) => {
                OAuthError::invalid_client(self.to_string()).with_status(StatusCode::BAD_REQUEST)
            }
            (_, Purpose::Token) => OAuthError::invalid_client(self.to_string()),
        }
    }
}

/// Resolve `raw` for `purpose`, applying every check in the module doc.
pub async fn resolve_client(
    services: &Services,
    raw: &str,
    purpose: Purpose,
) -> Result<Client, ClientError> {
    if !is_url_client_id(raw) {
        if !services.config.dcr_enabled() {
            return Err(ClientError::DcrDisabled(raw.to_owned()));
        }
        let client = match services.store.get_client(raw).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(ClientError::Unknown(raw.to_owned())),
            Err(e) => return Err(ClientError::Store(e)),
        };
        if let Err(reason) =
            check_registered_redirects(&services.policy.load(), &client.redirect_uris)
        {
            audit!(event = "client_blocked", client_id = %raw, reason = %reason);
            return Err(ClientError::Blocked {
                client_id: raw.to_owned(),
                reason,
            });
        }
        // A registered client has no host to trust: approval mode always asks an administrator.
        let requires_approval = services.policy.load().requires_approval(false);
        let decision = services
            .governance
            .observe_dcr(&client, requires_approval)
            .await
            .map_err(ClientError::Store)?;
        check_admission(raw, decision.as_ref(), requires_approval)?;
        return Ok(Client::Dcr(client));
    }
    if !services.config.cimd.enabled {
        return Err(ClientError::CimdDisabled);
    }
    let id = ClientIdUrl::parse(raw).map_err(|reason| ClientError::InvalidClientId {
        client_id: raw.to_owned(),
        reason,
    })?;
    let (trusted, auto_approve) = match services.policy.load().evaluate(&id) {
        TrustDecision::Denied(reason) => {
            audit!(event = "client_blocked", client_id = %id, reason = %reason);
            return Err(ClientError::Blocked {
                client_id: id.to_string(),
                reason,
            });
        }
        TrustDecision::Allowed {
            trusted,
            auto_approve,
        } => (trusted, auto_approve),
    };
    let requires_approval = services.policy.load().requires_approval(trusted);
    // Blocked and denied clients are refused before anything is fetched for them.
    let known = services
        .governance
        .decision(id.as_str())
        .await
        .map_err(ClientError::Store)?;
    if let Some(d) = known.as_ref().filter(|d| !d.status.admits()) {
        check_admission(id.as_str(), Some(d), false)?;
    }
    let resolved = match services.resolver.peek_fresh(&id).await {
        Some(fresh) => fresh,
        None => match fetch_document(services, &id, purpose).await {
            Ok(r) => r,
            Err(e) => {
                if let ClientError::Document { reason, .. } = &e {
                    services
                        .governance
                        .fetch_failed(id.as_str(), &reason.to_string())
                        .await;
                }
                return Err(e);
            }
        },
    };
    if let Some(host) = resolved
        .document
        .jwks_uri
        .as_ref()
        .and_then(|u| u.host_str())
        && let Err(reason) = services.policy.load().check_key_host(host)
    {
        audit!(event = "client_blocked", client_id = %id, reason = %reason);
        return Err(ClientError::Blocked {
            client_id: id.to_string(),
            reason,
        });
    }
    let decision = services
        .governance
        .observe_cimd(id.as_str(), id.host(), &resolved, requires_approval)
        .await
        .map_err(ClientError::Store)?;
    check_admission(id.as_str(), decision.as_ref(), requires_approval)?;
    Ok(Client::Cimd(CimdClient {
        id,
        resolved,
        trusted,
        auto_approve,
    }))
}

/// A request that can trigger a fetch: rate-limited per client host, then resolved.
async fn fetch_document(
    services: &Services,
    id: &ClientIdUrl,
    purpose: Purpose,
) -> Result<Arc<ResolvedClient>, ClientError> {
    services
        .limits
        .check_client_host(id.host(), services.resolver.holds(id).await)
        .await
        .map_err(ClientError::RateLimited)?;
    let resolved = match purpose {
        Purpose::Authorize => services.resolver.resolve(id).await,
        Purpose::Token => services.resolver.resolve_allow_stale(id).await,
    };
    resolved.map_err(|reason| {
        audit!(event = "client_fetch_failed", client_id = %id, reason = %reason, detail = ?reason);
        ClientError::Document {
            client_id: id.to_string(),
            reason,
        }
    })
}

/// A dynamically registered client's redirect URIs must not point at a blocked domain (review
/// finding H2: a blocked host cannot come back through registration). Checked at registration
/// and on every use, so a domain blocked later stops its registered clients too.
pub fn check_registered_redirects(
    policy: &cimd::policy::TrustPolicy,
    redirect_uris: &[String],
) -> Result<(), DenyReason> {
    for uri in redirect_uris {
        if let Some(host) = url::Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
        {
            policy.check_redirect_host(&host)?;
        }
    }
    Ok(())
}

/// Refuse a client the administrator's decision does not admit (module doc, step 4).
fn check_admission(
    client_id: &str,
    decision: Option<&AdminDecision>,
    requires_approval: bool,
) -> Result<(), ClientError> {
    match admission(decision, requires_approval) {
        Admission::Admitted => Ok(()),
        refused => {
            audit!(event = "client_refused", client_id, admission = ?refused);
            Err(ClientError::Refused {
                client_id: client_id.to_owned(),
                admission: refused,
            })
        }
    }
}

/// The message of [`ClientError::Refused`], shown to the user and the client.
fn refusal_text(client_id: &str, admission: &Admission) -> String {
    let with_reason = |what: &str, reason: &Option<String>| match reason {
        Some(r) if !r.is_empty() => format!("{what} ({r})"),
        _ => what.to_owned(),
    };
    match admission {
        Admission::Pending => format!(
            "client {client_id} is awaiting approval by an administrator of this server; try \
             again once it has been approved"
        ),
        Admission::Blocked { reason } => with_reason(
            &format!("client {client_id} has been blocked by an administrator of this server"),
            reason,
        ),
        Admission::Denied { reason } => with_reason(
            &format!("client {client_id} was not approved by an administrator of this server"),
            reason,
        ),
        Admission::Admitted => format!("client {client_id} is admitted"),
    }
}
