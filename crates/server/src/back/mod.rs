//! Machine-facing endpoints of the authorization server (SPEC §3.7, §4):
//!
//! | route | module | spec |
//! |---|---|---|
//! | `POST /token` | [`token`], [`refresh`], [`client_auth`] | RFC 6749 §3.2, §4.1.3, §6; RFC 7636; RFC 7523; RFC 8707 |
//! | `POST /revoke` | [`revoke`] | RFC 7009 |
//! | `POST /register` | [`register`] | RFC 7591 |
//! | `GET /.well-known/oauth-authorization-server[/path]`, OpenID aliases | [`metadata`] | RFC 8414, OIDC Discovery |
//! | `GET /jwks.json` | [`metadata`], [`keys`] | RFC 7517 |
//!
//! Access tokens ([`tokens`]) are JWTs signed with keys from [`keys`]; other parts of cimdgate
//! verify them with [`BackState::verify_access_token`].

pub mod client_auth;
pub mod form;
pub mod keys;
pub mod metadata;
pub mod refresh;
pub mod register;
pub mod revoke;
pub mod token;
pub mod tokens;

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::routing::{get, post};

use cimd::assertion::{AssertionConfig, AssertionVerifier};
use cimdgate_store::Store;

use crate::app::StartError;
use crate::state::{AppState, Shared};

pub use keys::KeyRing;
pub use tokens::{AccessClaims, TokenError};

/// Back-channel state: signing keys, the client-assertion verifier, pre-rendered documents.
pub struct BackState {
    /// Access-token signing and verification keys.
    pub keys: KeyRing,
    /// `private_key_jwt` verifier (audiences: token endpoint as advertised, issuer; replay store
    /// shared through the store).
    pub verifier: AssertionVerifier,
    /// Metadata and JWKS documents.
    pub documents: metadata::Documents,
    issuer: String,
    store: Arc<dyn Store>,
}

impl BackState {
    /// Load or create signing keys, build the verifier, render the documents.
    pub async fn new(shared: &Shared) -> Result<Self, StartError> {
        let keys = KeyRing::load(&shared.config.tokens, shared.store.as_ref()).await?;
        let verifier = AssertionVerifier::new(
            AssertionConfig::new([shared.endpoints.token.clone(), shared.issuer.clone()]),
            shared.fetcher.clone(),
            Arc::new(client_auth::StoreReplay(shared.store.clone())),
        );
        let documents = metadata::Documents::new(shared, &keys.jwks());
        Ok(BackState {
            keys,
            verifier,
            documents,
            issuer: shared.issuer.clone(),
            store: shared.store.clone(),
        })
    }

    /// Verify an access token we issued: signature with our keys, `typ`, `iss`, `exp`, and that
    /// its family has not been revoked. The audience is the caller's to check.
    pub async fn verify_access_token(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let claims = tokens::verify_signed(&self.keys, &self.issuer, token)?;
        match self
            .store
            .is_family_revoked(&claims.fid, SystemTime::now())
            .await
        {
            Ok(false) => Ok(claims),
            Ok(true) => Err(TokenError::Revoked),
            Err(e) => Err(TokenError::Store(e.to_string())),
        }
    }
}

/// Routes.
pub fn routes() -> Router<AppState> {
    const AS: &str = "/.well-known/oauth-authorization-server";
    const OIDC: &str = "/.well-known/openid-configuration";
    Router::new()
        .route("/token", post(token::token))
        .route("/revoke", post(revoke::revoke))
        .route("/register", post(register::register))
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
}
