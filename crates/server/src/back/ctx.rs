//! The back channel's context: what its handlers share.

use std::sync::Arc;

use cimd::assertion::{AssertionConfig, AssertionVerifier};

use super::metadata::Documents;
use crate::identity::Identity;
use crate::services::Services;
use crate::store_adapters::StoreReplay;
use crate::tokens::Tokens;

/// Back-channel context.
pub struct BackCtx {
    /// Shared services.
    pub services: Arc<Services>,
    /// Token signing, issuing and verification.
    pub tokens: Arc<Tokens>,
    /// Who may sign in (a refresh checks the user still may).
    pub identity: Arc<Identity>,
    /// `private_key_jwt` verifier (audiences: the token endpoint as advertised and the issuer;
    /// `jti` replay records shared through the store).
    pub verifier: AssertionVerifier,
    /// Pre-rendered metadata and JWKS documents.
    pub documents: Arc<Documents>,
}

impl BackCtx {
    /// The context for `services`, `tokens` and `identity`: the assertion verifier and the
    /// documents.
    pub fn new(services: Arc<Services>, tokens: Arc<Tokens>, identity: Arc<Identity>) -> Self {
        let verifier = AssertionVerifier::new(
            AssertionConfig::new([services.endpoints.token.clone(), services.issuer.clone()]),
            services.fetcher.clone(),
            Arc::new(StoreReplay(services.store.clone())),
        );
        let documents = Arc::new(Documents::new(&services, &tokens.keys.jwks()));
        BackCtx {
            services,
            tokens,
            identity,
            verifier,
            documents,
        }
    }
}
