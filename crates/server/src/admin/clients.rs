//! `/admin/v1/clients` — the client inventory and the administrator's actions (docs/
//! architecture.md, *Governance*). A client_id is one path segment, percent-encoded
//! (`https%3A%2F%2Fapp.example%2Fclient.json`).
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /clients?status=S&host=H` | — | `{"clients": [summary…]}` |
//! | `GET /clients/{id}` | — | detail (history, users, grants) |
//! | `POST /clients/{id}/block` | `{"reason"?}` | detail |
//! | `POST /clients/{id}/unblock` | — | detail |
//! | `POST /clients/{id}/approve` | `{"scopes"?}` | detail |
//! | `POST /clients/{id}/deny` | `{"reason"?}` | detail |
//! | `POST /clients/{id}/revoke` | `{"subject"?}` | `{"grants_revoked": n}` |
//!
//! Errors are JSON `{"error", "error_description"}`: 400 `invalid_request` (malformed id,
//! body or status), 404 `not_found`, 413 (body over [`MAX_ADMIN_BODY`]), 503 when the store
//! fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use cimdgate_store::{ClientStatus, StoreError};

use super::AdminCtx;
use crate::governance::ActionError;
use crate::governance::view::{ClientDetail, ClientSummary};

/// Largest admin request body (a reason, a scope list).
pub const MAX_ADMIN_BODY: usize = 16 * 1024;
/// Longest client_id accepted in a path (the CIMD limit; DCR ids are much shorter).
const MAX_CLIENT_ID: usize = cimd::client_id::MAX_CLIENT_ID_LENGTH;

/// The inventory routes (relative to `/admin/v1`).
pub fn routes(ctx: Arc<AdminCtx>) -> Router {
    Router::new()
        .route("/clients", get(list))
        .route("/clients/{id}", get(show))
        .route("/clients/{id}/{action}", post(act))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_ADMIN_BODY,
        ))
        .with_state(ctx)
}

/// An admin API error.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error": self.1, "error_description": self.2})),
        )
            .into_response()
    }
}

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, "invalid_request", msg.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "admin API: store failure");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the store is not available; try again".into(),
        )
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound(_) => ApiError(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            ActionError::Invalid(m) => ApiError::bad(m),
            ActionError::Store(s) => s.into(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        match e {
            JsonRejection::BytesRejection(_) => ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("the body is larger than {MAX_ADMIN_BODY} bytes or unreadable"),
            ),
            other => ApiError::bad(format!(
                "the body is not the expected JSON: {}",
                other.body_text()
            )),
        }
    }
}

/// Whether a client_id from a path is plausible: non-empty, bounded, no control characters.
pub(super) fn plausible_id(id: &str) -> bool {
    !(id.is_empty() || id.len() > MAX_CLIENT_ID || id.chars().any(char::is_control))
}

/// What [`plausible_id`] refuses, for error messages.
pub(super) fn bad_id_message() -> String {
    format!("not a client_id: empty, longer than {MAX_CLIENT_ID} bytes, or with control characters")
}

/// A client_id from the path, or 400.
fn check_id(id: &str) -> Result<&str, ApiError> {
    if !plausible_id(id) {
        return Err(ApiError::bad(bad_id_message()));
    }
    Ok(id)
}

/// `GET /clients` filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    host: Option<String>,
}

async fn list(
    State(ctx): State<Arc<AdminCtx>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let status = match q.status.as_deref() {
        Some(s) => Some(ClientStatus::parse(s).ok_or_else(|| {
            ApiError::bad(format!(
                "unknown status {s:?} (use active, pending, blocked or denied)"
            ))
        })?),
        None => None,
    };
    let clients = summaries(&ctx, status, q.host.as_deref()).await?;
    Ok(Json(json!({ "clients": clients })))
}

/// The inventory's summaries, filtered by `status` and by `host` (the host or a subdomain of
/// it, case-insensitive). Shared with the console.
pub(super) async fn summaries(
    ctx: &AdminCtx,
    status: Option<ClientStatus>,
    host: Option<&str>,
) -> Result<Vec<ClientSummary>, StoreError> {
    let host = host.map(str::to_ascii_lowercase);
    let policy = ctx.services.policy.load();
    let records = ctx
        .services
        .governance
        .store()
        .list_client_records()
        .await?;
    Ok(records
        .iter()
        .filter(|r| status.is_none_or(|s| r.admin.status == s))
        .filter(|r| {
            host.as_deref().is_none_or(|h| {
                r.host.eq_ignore_ascii_case(h)
                    || r.host.to_ascii_lowercase().ends_with(&format!(".{h}"))
            })
        })
        .map(|r| ClientSummary::of(r, &policy))
        .collect())
}

/// Everything the inventory knows about `id`, with its live grants. Shared with the console.
pub(super) async fn load_detail(ctx: &AdminCtx, id: &str) -> Result<ClientDetail, ActionError> {
    let store = ctx.services.governance.store();
    let Some(rec) = store.get_client_record(id).await? else {
        return Err(ActionError::NotFound(id.to_owned()));
    };
    let now = SystemTime::now();
    let mut live = Vec::new();
    for g in store.list_grants(id, now).await? {
        if !store.is_family_revoked(&g.grant.family_id, now).await? {
            live.push(g);
        }
    }
    Ok(ClientDetail::of(&rec, &ctx.services.policy.load(), &live))
}

async fn detail(ctx: &AdminCtx, id: &str) -> Result<ClientDetail, ApiError> {
    Ok(load_detail(ctx, id).await?)
}

async fn show(
    State(ctx): State<Arc<AdminCtx>>,
    Path(id): Path<String>,
) -> Result<Json<ClientDetail>, ApiError> {
    let id = check_id(&id)?;
    Ok(Json(detail(&ctx, id).await?))
}

/// Body of the actions: each reads the fields it needs (`reason` for block and deny, `scopes`
/// for approve, `subject` for revoke); an unknown field is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    reason: Option<String>,
    scopes: Option<String>,
    subject: Option<String>,
}

/// An optional JSON body: absent (no bytes) means the defaults.
fn body_or_default<T: Default>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(b)) => Ok(b),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(e.into()),
    }
}

/// `POST /clients/{id}/{action}`: block, unblock, approve, deny (→ the client's detail) or
/// revoke (→ `{"grants_revoked": n}`).
async fn act(
    State(ctx): State<Arc<AdminCtx>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, action)): Path<(String, String)>,
    body: Result<Json<ActionBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = check_id(&id)?;
    let b = body_or_default(body)?;
    let ip = peer.ip().to_string();
    let gov = &ctx.services.governance;
    match action.as_str() {
        "block" => gov.block(id, b.reason.as_deref(), &ip).await?,
        "unblock" => gov.unblock(id, &ip).await?,
        "approve" => gov.approve(id, b.scopes.as_deref(), &ip).await?,
        "deny" => gov.deny(id, b.reason.as_deref(), &ip).await?,
        "revoke" => {
            let outcome = gov.revoke(id, b.subject.as_deref(), &ip).await?;
            return Ok(Json(outcome).into_response());
        }
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no action {other:?} (use block, unblock, approve, deny or revoke)"),
            ));
        }
    };
    Ok(Json(detail(&ctx, id).await?).into_response())
}
