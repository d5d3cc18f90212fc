//! `[[enterprise_idps]]` and `[client_credentials]`: the two grants of the MCP 2026-07-28
//! extensions at `/token` (docs/architecture.md, *Enterprise-managed authorization* and *Client
//! credentials*). Neither holds a secret, so `check-config` shows them as they are.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::error::{ConfigError, key_err};

/// `[[enterprise_idps]]`: an enterprise identity provider whose Identity Assertion JWT
/// Authorization Grants (ID-JAG, draft-ietf-oauth-identity-assertion-authz-grant; MCP's
/// enterprise-managed authorization extension, SEP-990) this server exchanges for access
/// tokens at `/token` (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseIdpConfig {
    /// The IdP's issuer identifier: an https URL, compared with the ID-JAG's `iss` exactly.
    pub issuer: String,
    /// The IdP's JWK Set (https). Fetched on first use, cached as its `Cache-Control` says
    /// (30 s to 1 h), refetched for an unknown `kid` at most every 30 s.
    pub jwks_uri: Url,
    /// `aud` values accepted in its ID-JAGs. Default (empty): this server's issuer only.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Client IDs (exact strings) this IdP may issue ID-JAGs for. Default (empty): any client
    /// this server admits.
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    /// PEM file of extra CA certificates for the JWKS host (a private PKI, tests).
    #[serde(default)]
    pub extra_ca_file: Option<PathBuf>,
}

/// `[client_credentials]`: the OAuth client credentials grant for Client ID Metadata Document
/// clients that authenticate with `private_key_jwt` (MCP SEP-1046). No user consents, so only a
/// client the trust policy trusts or an administrator approved may use it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientCredentialsConfig {
    /// Accept `grant_type=client_credentials` (default `false`).
    pub enabled: bool,
}

/// Check `[[enterprise_idps]]`: https issuer and JWKS, no duplicate issuer, no empty list
/// entries, not this server's own issuer.
pub(super) fn check_enterprise_idps(
    idps: &[EnterpriseIdpConfig],
    own_issuer: &str,
) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for (i, idp) in idps.iter().enumerate() {
        let key = |k: &str| format!("enterprise_idps[{i}].{k}");
        let parsed = Url::parse(&idp.issuer).ok();
        if !parsed
            .as_ref()
            .is_some_and(|u| u.scheme() == "https" && u.host_str().is_some())
            || idp.issuer.contains(['?', '#'])
        {
            return Err(key_err(
                &key("issuer"),
                format!(
                    "{:?} must be an https URL without query or fragment",
                    idp.issuer
                ),
            ));
        }
        if idp.issuer == own_issuer {
            return Err(key_err(&key("issuer"), "is this server's own issuer"));
        }
        if !seen.insert(idp.issuer.as_str()) {
            return Err(key_err(
                &key("issuer"),
                format!("{:?} is listed twice", idp.issuer),
            ));
        }
        if idp.jwks_uri.scheme() != "https" || idp.jwks_uri.host_str().is_none() {
            return Err(key_err(
                &key("jwks_uri"),
                format!("{} must be an https URL", idp.jwks_uri),
            ));
        }
        if idp.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(key_err(
                &key("audiences"),
                "must not contain an empty value",
            ));
        }
        if let Some(bad) = idp
            .allowed_clients
            .iter()
            .find(|c| !cimd::client_id::is_url_client_id(c))
        {
            return Err(key_err(
                &key("allowed_clients"),
                format!("{bad:?} is not a client_id URL (https://…)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idp(issuer: &str, jwks: &str) -> EnterpriseIdpConfig {
        EnterpriseIdpConfig {
            issuer: issuer.into(),
            jwks_uri: Url::parse(jwks).unwrap(),
            audiences: Vec::new(),
            allowed_clients: Vec::new(),
            extra_ca_file: None,
        }
    }

    #[test]
    fn enterprise_idps_need_https_issuer_and_jwks_and_name_the_key() {
        let good = idp("https://idp.example", "https://idp.example/jwks");
        let mut empty_aud = good.clone();
        empty_aud.audiences = vec![" ".into()];
        let mut bad_client = good.clone();
        bad_client.allowed_clients = vec!["dcr_x".into()];
        let cases: Vec<(Vec<EnterpriseIdpConfig>, Result<(), &str>)> = vec![
            (vec![good.clone()], Ok(())),
            (
                vec![idp("http://idp.example", "https://idp.example/j")],
                Err("enterprise_idps[0].issuer"),
            ),
            (
                vec![idp("https://idp.example", "http://idp.example/j")],
                Err("enterprise_idps[0].jwks_uri"),
            ),
            (
                vec![good.clone(), good.clone()],
                Err("enterprise_idps[1].issuer"),
            ),
            (
                vec![idp("https://as.example", "https://idp.example/j")],
                Err("enterprise_idps[0].issuer"),
            ),
            (vec![empty_aud], Err("enterprise_idps[0].audiences")),
            (vec![bad_client], Err("enterprise_idps[0].allowed_clients")),
        ];
        for (idps, want) in cases {
            let got = check_enterprise_idps(&idps, "https://as.example");
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(key)) => assert!(e.to_string().contains(key), "{e}"),
                (got, want) => panic!("{idps:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn both_sections_load_from_the_environment_like_the_others() {
        let env = [
            (
                "CIMDGATE_ENTERPRISE_IDPS".to_owned(),
                r#"[{issuer = "https://idp.example", jwks_uri = "https://idp.example/jwks"}]"#
                    .to_owned(),
            ),
            (
                "CIMDGATE_CLIENT_CREDENTIALS__ENABLED".to_owned(),
                "true".to_owned(),
            ),
        ];
        let c = crate::config::Config::load(None, env).unwrap();
        assert_eq!(c.enterprise_idps[0].issuer, "https://idp.example");
        assert!(c.enterprise_idps[0].audiences.is_empty());
        assert!(c.client_credentials.enabled);
        assert!(!crate::config::Config::default().client_credentials.enabled);
    }

    #[test]
    fn local_usernames_cannot_look_like_enterprise_subjects() {
        let toml = r#"
            [[identity.users]]
            username = "https://idp.example#alice"
            password_hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"
            [[enterprise_idps]]
            issuer = "https://idp.example"
            jwks_uri = "https://idp.example/jwks"
        "#;
        let e = crate::config::Config::from_toml(toml)
            .unwrap_err()
            .to_string();
        assert!(e.contains("identity.users[0].username"), "{e}");
    }
}
