//! Who the user is: local users with argon2id hashes ([`local`]) or an identity provider
//! ([`idp`]: OIDC, GitHub, plain OAuth 2.0 — the "OAuth proxy" mode). Exactly one is active per
//! installation (`identity.mode`); the front channel asks [`Identity`] which one.

pub mod idp;
pub mod local;

use crate::config::{Config, IdentityMode};
use crate::error::StartError;

/// The configured identity source.
pub enum Identity {
    /// `identity.mode = "local"`: a login form checked against `[[identity.users]]`.
    Local(local::LocalUsers),
    /// `identity.mode = "upstream"`: the browser is sent to the IdP; `/upstream/callback`
    /// completes the sign-in.
    Idp(Box<idp::Idp>),
}

impl Identity {
    /// Build from the configuration. `issuer` is this server's issuer (for the callback URL).
    /// No network I/O.
    pub fn from_config(config: &Config, issuer: &str) -> Result<Self, StartError> {
        match config.identity.mode {
            IdentityMode::Local => local::LocalUsers::new(&config.identity.users)
                .map(Identity::Local)
                .map_err(|e| StartError::Init {
                    component: "identity.users",
                    reason: e.to_string(),
                }),
            IdentityMode::Upstream => {
                let cfg = config
                    .identity
                    .upstream
                    .as_ref()
                    .ok_or_else(|| StartError::Init {
                        component: "identity.upstream",
                        reason: "required when identity.mode = \"upstream\"".into(),
                    })?;
                let callback = format!("{}{}", issuer.trim_end_matches('/'), CALLBACK_PATH);
                idp::Idp::new(cfg, callback).map(|idp| Identity::Idp(Box::new(idp)))
            }
        }
    }
}

/// Path of the upstream IdP's redirect back to cimdgate.
pub const CALLBACK_PATH: &str = "/upstream/callback";
