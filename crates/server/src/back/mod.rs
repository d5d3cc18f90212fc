//! Machine-facing endpoints of the authorization server:
//!
//! | route | module | spec |
//! |---|---|---|
//! | `POST /token` | [`token`], [`refresh`], [`jwt_bearer`], [`client_credentials`], [`client_auth`] | RFC 6749 §3.2, §4.1.3, §4.4, §6; RFC 7636; RFC 7523; RFC 8707; MCP SEP-990, SEP-1046 |
//! | `POST /revoke` | [`revoke`] | RFC 7009 |
//! | `POST /register` | [`register`] | RFC 7591 |
//! | `GET /.well-known/oauth-authorization-server[/path]`, OpenID aliases | [`metadata`] | RFC 8414, OIDC Discovery |
//! | `GET /jwks.json` | [`metadata`] | RFC 7517 |
//!
//! Inside the channel: [`token`] dispatches to [`refresh`], [`jwt_bearer`] and
//! [`client_credentials`]; both use [`client_auth`], [`form`]
//! and [`ctx`]. The channel never imports the front channel.

pub mod client_auth;
pub mod client_credentials;
pub mod ctx;
pub mod form;
pub mod grant_types;
pub mod issue;
pub mod jwt_bearer;
pub mod metadata;
pub mod refresh;
pub mod register;
pub mod revoke;
pub mod token;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use ctx::BackCtx;

/// Routes.
pub fn routes(ctx: Arc<BackCtx>) -> Router {
    const AS: &str = "/.well-known/oauth-authorization-server";
    const OIDC: &str = "/.well-known/openid-configuration";
    let limited = Router::new()
        .route("/token", post(token::token))
        .route("/revoke", post(revoke::revoke))
        .route("/register", post(register::register))
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            form::limit_per_ip,
        ));
    let documents = Router::new()
        .route("/jwks.json", get(metadata::jwks))
        .route(AS, get(metadata::root_metadata))
        .route(OIDC, get(metadata::root_metadata))
        .route(&format!("{AS}/{{*path}}"), get(metadata::inserted_metadata))
        .route(
            &format!("{OIDC}/{{*path}}"),
            get(metadata::inserted_metadata),
        )
        .route(&format!("/{{a}}{OIDC}"), get(metadata::appended_metadata_1))
        .route(
            &format!("/{{a}}/{{b}}{OIDC}"),
            get(metadata::appended_metadata_2),
        )
        .route(&format!("/{{a}}{AS}"), get(metadata::appended_metadata_1))
        .route(
            &format!("/{{a}}/{{b}}{AS}"),
            get(metadata::appended_metadata_2),
        )
        .with_state(ctx.documents.clone());
    limited.with_state(ctx).merge(documents)
}
