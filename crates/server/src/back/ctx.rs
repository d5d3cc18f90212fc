//! The back channel's context: what its handlers share.

use std::sync::Arc;

use cimd::assertion::{AssertionConfig, AssertionVerifier};

use super::grant_types::{OptionalGrants, supported_names};
use super::metadata::Documents;
use crate::error::StartError;
use crate::grant::id_jag::EnterpriseIdps;
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
    /// `[[enterprise_idps]]`: whose ID-JAGs the jwt-bearer grant accepts (their JWKS cached).
    pub enterprise_idps: EnterpriseIdps,
    /// The optional grants the configuration offers.
    pub offered: OptionalGrants,
}

impl BackCtx {
    /// The context for `services`, `tokens` and `identity`: the assertion verifier, the
    /// documents and the enterprise IdPs (fails only on an unreadable `extra_ca_file`).
    pub fn new(
        services: Arc<Services>,
        tokens: Arc<Tokens>,
        identity: Arc<Identity>,
    ) -> Result<Self, StartError> {
        let verifier = AssertionVerifier::new(
            AssertionConfig::new([services.endpoints.token.clone(), services.issuer.clone()]),
            services.fetcher.clone(),
            Arc::new(StoreReplay(services.store.clone())),
        );
        let enterprise_idps =
            EnterpriseIdps::from_config(&services.config.enterprise_idps, &services.issuer)?;
        let offered = OptionalGrants {
            jwt_bearer: !enterprise_idps.is_empty(),
            client_credentials: services.config.client_credentials.enabled,
        };
        let documents = Arc::new(Documents::new(
            &services,
            &tokens.keys.jwks(),
            &supported_names(offered),
        ));
        Ok(BackCtx {
            services,
            tokens,
            identity,
            verifier,
            documents,
            enterprise_idps,
            offered,
        })
    }
}
