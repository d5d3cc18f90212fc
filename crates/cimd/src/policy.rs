//! The operator's trust policy for CIMD clients (docs/architecture.md, *Trust policy*; draft -02
//! §8.9 "domain trust": allowlists of trusted patterns such as `*.example.com` with reduced
//! friction; oauth-wg #90: a restrictive AS may still advertise CIMD support).
//!
//! [`TrustPolicy::evaluate`] works on the validated [`ClientIdUrl`] alone, so it runs **before
//! any fetch**. Order of evaluation:
//! 1. `denied_client_ids` (exact string) → denied;
//! 2. `blocked_domains` → denied (blocked always wins);
//! 3. trusted = host matches `trusted_domains` **or** the id is in `allowed_client_ids`;
//! 4. [`TrustMode::Allowlist`] admits only trusted clients; [`TrustMode::Open`] admits all;
//!    [`TrustMode::Approval`] admits all, untrusted ones only once an administrator approved
//!    them ([`TrustPolicy::requires_approval`]; the approvals are the server's);
//! 5. `auto_approve` = trusted && `auto_approve_trusted` (the user still logs in).
//!
//! [`DomainPattern`] is an exact host or `*.example.com` (any subdomain depth, never the apex),
//! compared case-insensitively, ignoring one trailing dot on either side.

use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use crate::client_id::{ClientIdError, ClientIdUrl};

/// Which clients are admitted at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustMode {
    /// Any valid https client_id (that is not blocked).
    #[default]
    Open,
    /// Only trusted domains and explicitly allowed client ids.
    Allowlist,
    /// Trusted clients, and the others once an administrator approved them: the policy admits
    /// every client that is not blocked, and [`TrustPolicy::requires_approval`] tells the
    /// server which ones must wait for an administrator (the approvals live in its inventory).
    Approval,
}

/// Why a pattern or id in the configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A domain pattern is malformed.
    #[error(
        "{list}: `{pattern}` is not a valid domain pattern: {reason} (use `example.com` or `*.example.com`)"
    )]
    InvalidPattern {
        /// Which list (`trusted_domains` / `blocked_domains`).
        list: &'static str,
        /// The pattern as written.
        pattern: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A client id in `allowed_client_ids` / `denied_client_ids` is not a valid client_id URL.
    #[error("{list}: `{id}` is not a valid client_id URL: {error}")]
    InvalidClientId {
        /// Which list.
        list: &'static str,
        /// The id as written.
        id: String,
        /// Why.
        error: ClientIdError,
    },
}

/// An exact host or a `*.suffix` wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainPattern {
    /// Lower-cased host (or suffix after `*.`), no trailing dot, IPv6 without brackets.
    host: String,
    wildcard: bool,
}

impl DomainPattern {
    /// Parse `example.com`, `*.example.com`, an IP address, or `[v6]`.
    pub fn parse(s: &str) -> Result<Self, PolicyError> {
        Self::parse_in("domain pattern", s)
    }

    fn parse_in(list: &'static str, s: &str) -> Result<Self, PolicyError> {
        let bad = |reason| PolicyError::InvalidPattern {
            list,
            pattern: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.contains("://") {
            return Err(bad("write the host only, without a scheme"));
        }
        if s.contains(['/', '?', '#', '@']) {
            return Err(bad("write the host only, without path, query or userinfo"));
        }
        let v6 = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = v6.parse::<Ipv6Addr>() {
            return Ok(Self {
                host: ip.to_string(),
                wildcard: false,
            });
        }
        if s.contains(':') {
            return Err(bad("ports are not part of a domain pattern"));
        }
        let lower = s.to_ascii_lowercase();
        let (wildcard, rest) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let rest = rest.strip_suffix('.').unwrap_or(rest);
        if rest.contains('*') {
            return Err(bad("`*` is only allowed as a leading `*.` label"));
        }
        if rest.is_empty() {
            return Err(bad("it names no domain"));
        }
        for label in rest.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(bad("a label is empty or longer than 63 characters"));
            }
            if !label
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            {
                return Err(bad("only letters, digits, `-` and `_` are allowed"));
            }
        }
        if wildcard && !rest.contains('.') {
            return Err(bad(
                "a wildcard must be below a registrable domain (`*.example.com`, not `*.com`)",
            ));
        }
        Ok(Self {
            host: rest.to_owned(),
            wildcard,
        })
    }

    /// A wildcard whose suffix is itself a public suffix (`*.co.uk`, `*.github.io`): anyone can
    /// register a name under it, so it cannot express trust. (`blocked_domains` may use one.)
    pub fn is_public_suffix_wildcard(&self) -> bool {
        self.wildcard
            && psl::suffix(self.host.as_bytes())
                .is_some_and(|s| s.typ().is_some() && s.as_bytes() == self.host.as_bytes())
    }

    /// Does `host` (as from [`ClientIdUrl::host`]) match? Case-insensitive; one trailing dot
    /// ignored; a wildcard matches subdomains at any depth but not the apex.
    pub fn matches(&self, host: &str) -> bool {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let host = host.parse::<Ipv6Addr>().map_or(host, |ip| ip.to_string());
        if !self.wildcard {
            return host == self.host;
        }
        host.strip_suffix(self.host.as_str())
            .and_then(|prefix| prefix.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty())
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)
    }
}

/// The trust policy as configured (TOML/JSON). Unknown keys are an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustPolicyConfig {
    /// `open` (default) or `allowlist`.
    pub mode: TrustMode,
    /// Hosts whose clients are trusted (exact or `*.example.com`).
    pub trusted_domains: Vec<String>,
    /// Hosts whose clients are always denied, before any fetch.
    pub blocked_domains: Vec<String>,
    /// Skip the consent screen for trusted clients (the user still logs in).
    pub auto_approve_trusted: bool,
    /// Client ids admitted (and trusted) by exact string.
    pub allowed_client_ids: Vec<String>,
    /// Client ids always denied, by exact string.
    pub denied_client_ids: Vec<String>,
}

/// Why a client is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DenyReason {
    /// Listed in `denied_client_ids`.
    #[error("this client_id is denied by the server's policy")]
    DeniedClientId,
    /// Host matches `blocked_domains`.
    #[error("clients hosted on `{host}` are blocked by the server's policy (pattern `{pattern}`)")]
    BlockedDomain {
        /// The client's host.
        host: String,
        /// The matching pattern.
        pattern: String,
    },
    /// The document's `jwks_uri` is on a host matching `blocked_domains`: the client's keys
    /// would come from a blocked host.
    #[error(
        "this client's jwks_uri is on `{host}`, which the server's policy blocks (pattern `{pattern}`)"
    )]
    BlockedKeyHost {
        /// The `jwks_uri` host.
        host: String,
        /// The matching pattern.
        pattern: String,
    },
    /// A dynamically registered client's redirect URI is on a host matching `blocked_domains`.
    #[error(
        "this client's redirect URI is on `{host}`, which the server's policy blocks (pattern `{pattern}`)"
    )]
    BlockedRedirectHost {
        /// The redirect URI's host.
        host: String,
        /// The matching pattern.
        pattern: String,
    },
    /// Allowlist mode and neither a trusted domain nor an allowed id.
    #[error(
        "this server only accepts clients from trusted domains or allowed client ids; `{host}` is not one of them"
    )]
    NotAllowlisted {
        /// The client's host.
        host: String,
    },
}

/// The outcome of [`TrustPolicy::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustDecision {
    /// Refused before any fetch.
    Denied(DenyReason),
    /// Admitted.
    Allowed {
        /// Matched `trusted_domains` or `allowed_client_ids`.
        trusted: bool,
        /// Consent may be skipped.
        auto_approve: bool,
    },
}

/// A compiled [`TrustPolicyConfig`].
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    mode: TrustMode,
    trusted: Vec<DomainPattern>,
    blocked: Vec<DomainPattern>,
    auto_approve_trusted: bool,
    allowed_ids: Vec<String>,
    denied_ids: Vec<String>,
}

impl TrustPolicy {
    /// Compile and check a configuration; every pattern and id must be valid.
    pub fn from_config(cfg: &TrustPolicyConfig) -> Result<Self, PolicyError> {
        let patterns = |list: &'static str, v: &[String]| {
            v.iter()
                .map(|s| DomainPattern::parse_in(list, s))
                .collect::<Result<Vec<_>, _>>()
        };
        let ids = |list: &'static str, v: &[String]| {
            v.iter()
                .map(|s| {
                    ClientIdUrl::parse(s)
                        .map(|id| id.as_str().to_owned())
                        .map_err(|error| PolicyError::InvalidClientId {
                            list,
                            id: s.clone(),
                            error,
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let trusted = patterns("trusted_domains", &cfg.trusted_domains)?;
        if let Some((_, written)) = trusted
            .iter()
            .zip(&cfg.trusted_domains)
            .find(|(p, _)| p.is_public_suffix_wildcard())
        {
            return Err(PolicyError::InvalidPattern {
                list: "trusted_domains",
                pattern: written.clone(),
                reason: "it would trust every site registered under a public suffix \
                         (Public Suffix List); trust the registrable domain instead",
            });
        }
        Ok(Self {
            mode: cfg.mode,
            trusted,
            blocked: patterns("blocked_domains", &cfg.blocked_domains)?,
            auto_approve_trusted: cfg.auto_approve_trusted,
            allowed_ids: ids("allowed_client_ids", &cfg.allowed_client_ids)?,
            denied_ids: ids("denied_client_ids", &cfg.denied_client_ids)?,
        })
    }

    /// Check the host of a document's `jwks_uri` against `blocked_domains` (after the document
    /// is fetched, on every use: a client on a good host cannot source its keys from a blocked
    /// one).
    pub fn check_key_host(&self, host: &str) -> Result<(), DenyReason> {
        match self.blocked.iter().find(|p| p.matches(host)) {
            Some(p) => Err(DenyReason::BlockedKeyHost {
                host: host.to_owned(),
                pattern: p.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Check the host of a dynamically registered client's redirect URI against
    /// `blocked_domains` (at registration and on every use: a blocked host cannot come back
    /// through registration, review finding H2).
    pub fn check_redirect_host(&self, host: &str) -> Result<(), DenyReason> {
        match self.blocked.iter().find(|p| p.matches(host)) {
            Some(p) => Err(DenyReason::BlockedRedirectHost {
                host: host.to_owned(),
                pattern: p.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Whether an admitted client must also be approved by an administrator: approval mode,
    /// and not trusted by the policy.
    pub fn requires_approval(&self, trusted: bool) -> bool {
        self.mode == TrustMode::Approval && !trusted
    }

    /// Decide for a client id (before fetching its document).
    pub fn evaluate(&self, id: &ClientIdUrl) -> TrustDecision {
        let host = id.host();
        if self.denied_ids.iter().any(|d| d == id.as_str()) {
            return TrustDecision::Denied(DenyReason::DeniedClientId);
        }
        if let Some(p) = self.blocked.iter().find(|p| p.matches(host)) {
            return TrustDecision::Denied(DenyReason::BlockedDomain {
                host: host.to_owned(),
                pattern: p.to_string(),
            });
        }
        let trusted = self.trusted.iter().any(|p| p.matches(host))
            || self.allowed_ids.iter().any(|a| a == id.as_str());
        if self.mode == TrustMode::Allowlist && !trusted {
            return TrustDecision::Denied(DenyReason::NotAllowlisted {
                host: host.to_owned(),
            });
        }
        TrustDecision::Allowed {
            trusted,
            auto_approve: trusted && self.auto_approve_trusted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClientIdUrl {
        ClientIdUrl::parse(s).unwrap()
    }

    #[test]
    fn domain_pattern_matches_exact_and_wildcard() {
        let cases = [
            ("example.com", "example.com", true),
            ("example.com", "EXAMPLE.com", true),
            ("example.com", "example.com.", true),
            ("example.com.", "example.com", true),
            ("Example.COM", "example.com", true),
            ("example.com", "a.example.com", false),
            ("example.com", "example.com.evil.com", false),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("*.example.com", "A.Example.Com.", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "evilexample.com", false),
            ("*.example.com", "example.com.evil.com", false),
            ("*.example.com", ".example.com", false),
            ("93.184.216.34", "93.184.216.34", true),
            ("[2001:db8::1]", "2001:db8::1", true),
            ("2001:DB8::1", "2001:db8:0::1", true),
        ];
        for (pat, host, want) in cases {
            let p = DomainPattern::parse(pat).unwrap_or_else(|e| panic!("{pat}: {e}"));
            assert_eq!(p.matches(host), want, "{pat} vs {host}");
        }
    }

    #[test]
    fn domain_pattern_rejects_garbage() {
        for pat in [
            "",
            "*",
            "*.",
            "*.com",
            "a.*.com",
            "*a.com",
            "**.a.com",
            "a.com*",
            "https://a.com",
            "a.com:443",
            "a.com/x",
            "u@a.com",
            "a..com",
            "a com",
            "ä.com",
            ".",
        ] {
            assert!(
                matches!(
                    DomainPattern::parse(pat),
                    Err(PolicyError::InvalidPattern { .. })
                ),
                "{pat:?} accepted"
            );
        }
    }

    /// `trusted_domains` refuses wildcards over public suffixes — ICANN (`*.co.uk`) and private
    /// (`*.github.io`, where anyone can publish) — but accepts them under a registrable domain;
    /// `blocked_domains` may block a whole public suffix.
    #[test]
    fn trusted_wildcards_over_a_public_suffix_are_refused() {
        let cases = [
            ("*.co.uk", false),
            ("*.github.io", false),
            ("*.GitHub.IO", false),
            ("*.vercel.app", false),
            ("*.com.au", false),
            ("*.example.co.uk", true),
            ("*.alice.github.io", true),
            ("*.example.com", true),
            ("*.corp.internal", true),
            ("github.io", true),
        ];
        for (pattern, ok) in cases {
            let trusted = TrustPolicy::from_config(&TrustPolicyConfig {
                trusted_domains: vec![pattern.into()],
                ..TrustPolicyConfig::default()
            });
            assert_eq!(trusted.is_ok(), ok, "trusted {pattern}: {trusted:?}");
            if let Err(e) = trusted {
                assert!(e.to_string().contains("public suffix"), "{e}");
            }
            let blocked = TrustPolicy::from_config(&TrustPolicyConfig {
                blocked_domains: vec![pattern.into()],
                ..TrustPolicyConfig::default()
            });
            assert!(blocked.is_ok(), "blocked {pattern}: {blocked:?}");
        }
    }

    #[test]
    fn a_jwks_uri_on_a_blocked_host_is_refused() {
        let policy = TrustPolicy::from_config(&TrustPolicyConfig {
            blocked_domains: vec!["*.evil.test".into(), "keys.bad.test".into()],
            ..TrustPolicyConfig::default()
        })
        .unwrap();
        for (host, blocked) in [
            ("a.evil.test", true),
            ("KEYS.bad.test", true),
            ("evil.test", false),
            ("keys.good.test", false),
        ] {
            let got = policy.check_key_host(host);
            assert_eq!(got.is_err(), blocked, "{host}: {got:?}");
        }
    }

    #[test]
    fn blocked_wins_over_trusted_and_allowed() {
        let cfg = TrustPolicyConfig {
            mode: TrustMode::Allowlist,
            trusted_domains: vec!["*.example.com".into()],
            blocked_domains: vec!["bad.example.com".into()],
            allowed_client_ids: vec!["https://bad.example.com/c".into()],
            auto_approve_trusted: true,
            ..Default::default()
        };
        let p = TrustPolicy::from_config(&cfg).unwrap();
        assert!(matches!(
            p.evaluate(&id("https://bad.example.com/c")),
            TrustDecision::Denied(DenyReason::BlockedDomain { .. })
        ));
        assert_eq!(
            p.evaluate(&id("https://good.example.com/c")),
            TrustDecision::Allowed {
                trusted: true,
                auto_approve: true
            }
        );
    }

    #[test]
    fn denied_client_ids_win_by_exact_string() {
        let cfg = TrustPolicyConfig {
            trusted_domains: vec!["a.com".into()],
            denied_client_ids: vec!["https://a.com/x".into()],
            ..Default::default()
        };
        let p = TrustPolicy::from_config(&cfg).unwrap();
        assert_eq!(
            p.evaluate(&id("https://a.com/x")),
            TrustDecision::Denied(DenyReason::DeniedClientId)
        );
        // Exact string: a different spelling is a different client (and trusted by domain).
        assert_eq!(
            p.evaluate(&id("https://a.com:443/x")),
            TrustDecision::Allowed {
                trusted: true,
                auto_approve: false
            }
        );
    }

    #[test]
    fn allowlist_mode_admits_only_trusted() {
        let cfg = TrustPolicyConfig {
            mode: TrustMode::Allowlist,
            trusted_domains: vec!["claude.ai".into()],
            allowed_client_ids: vec!["https://chatgpt.com/oauth/client.json".into()],
            ..Default::default()
        };
        let p = TrustPolicy::from_config(&cfg).unwrap();
        let cases = [
            ("https://claude.ai/oauth/x", true),
            ("https://chatgpt.com/oauth/client.json", true),
            ("https://chatgpt.com/oauth/other.json", false),
            ("https://evil.claude.ai.example/x", false),
            ("https://sub.claude.ai/x", false),
        ];
        for (s, admitted) in cases {
            let d = p.evaluate(&id(s));
            assert_eq!(
                matches!(d, TrustDecision::Allowed { trusted: true, .. }),
                admitted,
                "{s}: {d:?}"
            );
            if !admitted {
                assert!(
                    matches!(d, TrustDecision::Denied(DenyReason::NotAllowlisted { .. })),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn approval_mode_admits_untrusted_clients_pending_approval_and_trusted_ones_outright() {
        let p = TrustPolicy::from_config(&TrustPolicyConfig {
            mode: TrustMode::Approval,
            trusted_domains: vec!["t.com".into()],
            blocked_domains: vec!["bad.com".into()],
            ..Default::default()
        })
        .unwrap();
        let untrusted = p.evaluate(&id("https://anything.example/x"));
        assert_eq!(
            untrusted,
            TrustDecision::Allowed {
                trusted: false,
                auto_approve: false
            }
        );
        assert!(p.requires_approval(false));
        assert!(!p.requires_approval(true));
        assert!(matches!(
            p.evaluate(&id("https://bad.com/x")),
            TrustDecision::Denied(_)
        ));
        let open = TrustPolicy::from_config(&TrustPolicyConfig::default()).unwrap();
        assert!(!open.requires_approval(false));
    }

    #[test]
    fn open_mode_admits_any_untrusted() {
        let p = TrustPolicy::from_config(&TrustPolicyConfig::default()).unwrap();
        assert_eq!(
            p.evaluate(&id("https://anything.example/x")),
            TrustDecision::Allowed {
                trusted: false,
                auto_approve: false
            }
        );
    }

    #[test]
    fn auto_approve_only_when_trusted_and_enabled() {
        let mk = |auto| TrustPolicyConfig {
            trusted_domains: vec!["t.com".into()],
            auto_approve_trusted: auto,
            ..Default::default()
        };
        let on = TrustPolicy::from_config(&mk(true)).unwrap();
        let off = TrustPolicy::from_config(&mk(false)).unwrap();
        assert_eq!(
            on.evaluate(&id("https://t.com/c")),
            TrustDecision::Allowed {
                trusted: true,
                auto_approve: true
            }
        );
        assert_eq!(
            on.evaluate(&id("https://u.com/c")),
            TrustDecision::Allowed {
                trusted: false,
                auto_approve: false
            }
        );
        assert_eq!(
            off.evaluate(&id("https://t.com/c")),
            TrustDecision::Allowed {
                trusted: true,
                auto_approve: false
            }
        );
    }

    #[test]
    fn config_rejects_bad_entries_naming_the_list() {
        let cfg = TrustPolicyConfig {
            blocked_domains: vec!["https://x.com".into()],
            ..Default::default()
        };
        let e = TrustPolicy::from_config(&cfg).unwrap_err();
        assert!(e.to_string().starts_with("blocked_domains:"), "{e}");
        let cfg = TrustPolicyConfig {
            allowed_client_ids: vec!["http://x.com/c".into()],
            ..Default::default()
        };
        assert!(matches!(
            TrustPolicy::from_config(&cfg),
            Err(PolicyError::InvalidClientId {
                list: "allowed_client_ids",
                ..
            })
        ));
    }

    #[test]
    fn config_defaults_and_denies_unknown_fields() {
        let cfg: TrustPolicyConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, TrustPolicyConfig::default());
        assert_eq!(cfg.mode, TrustMode::Open);
        let cfg: TrustPolicyConfig =
            serde_json::from_str(r#"{"mode":"allowlist","trusted_domains":["*.a.com"]}"#).unwrap();
        assert_eq!(cfg.mode, TrustMode::Allowlist);
        assert!(
            serde_json::from_str::<TrustPolicyConfig>(r#"{"trusted_domain":["a.com"]}"#).is_err()
        );
        assert!(serde_json::from_str::<TrustPolicyConfig>(r#"{"mode":"Closed"}"#).is_err());
    }
}
