//! The front channel's context: what its handlers share.

use std::sync::Arc;

use super::session::Cookies;
use crate::identity::Identity;
use crate::services::Services;

/// Front-channel context.
pub struct FrontCtx {
    /// Shared services (store, resolver, policy, sealer, …).
    pub services: Arc<Services>,
    /// Local users or the identity provider.
    pub identity: Arc<Identity>,
    /// Cookie names and attributes.
    pub cookies: Cookies,
    /// This server's origin (`Origin` header check on POSTs).
    pub origin: String,
}

impl FrontCtx {
    /// The context for `services` and `identity`.
    pub fn new(services: Arc<Services>, identity: Arc<Identity>) -> Self {
        let public = &services.config.server.public_url;
        FrontCtx {
            cookies: Cookies::new(public.scheme() == "https"),
            origin: public.origin().ascii_serialization(),
            services,
            identity,
        }
    }
}
