//! Checks on the URL before any connection (draft §8.6; docs/architecture.md, *Fetching
//! (SSRF-safe)*).
//!
//! reqwest never calls the resolver for IP-literal hosts (hyper-util parses them and dials
//! directly), so an IP-literal URL must be judged here. URL parsers also normalise IPv4 hosts
//! (`https://127.1/` → `127.0.0.1`, `https://2130706433/` → `127.0.0.1`), so both the parsed
//! host **and** the host as written in the raw string are classified.

use url::{Host, Url};

use super::FetchError;
use crate::ip::{IpPolicy, ends_in_number, parse_host_ip};

/// A URL that passed the pre-connect checks.
#[derive(Debug)]
pub(crate) struct Target {
    /// The parsed URL (what reqwest will request).
    pub url: Url,
    /// The host as reqwest sees it (lower case; IPv6 without brackets).
    pub host: String,
}

/// The host exactly as written between `https://` (after any userinfo) and the port/path.
fn raw_host(raw: &str) -> Option<&str> {
    let scheme_end = raw.find("://")?;
    let rest = &raw[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        let end = host_port.find(']')?;
        return Some(&host_port[..=end]);
    }
    Some(host_port.split(':').next().unwrap_or(host_port))
}

fn invalid(url: &str, reason: impl Into<String>) -> FetchError {
    FetchError::InvalidUrl {
        url: url.to_string(),
        reason: reason.into(),
    }
}

/// Parses `raw` and applies every check that needs no network:
/// `https` only, no userinfo, a host, and for IP-literal hosts the [`IpPolicy`]; a numeric host
/// written in a non-canonical IPv4 spelling is refused even when the address is public.
pub(crate) fn check_target(raw: &str, policy: IpPolicy) -> Result<Target, FetchError> {
    let url = Url::parse(raw).map_err(|e| invalid(raw, e.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid(
            raw,
            format!("scheme must be https, got {:?}", url.scheme()),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            raw,
            "credentials (userinfo) are not allowed in a fetched URL",
        ));
    }
    let parsed_ip = match url.host() {
        None => return Err(invalid(raw, "URL has no host")),
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(v4)) => Some(std::net::IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
    };
    let host = match url.host() {
        Some(Host::Ipv6(v6)) => v6.to_string(),
        _ => url.host_str().unwrap_or_default().to_string(),
    };
    let written = raw_host(raw).unwrap_or_default();
    if written.is_empty() {
        // WHATWG reads `https:///x` as host `x`; an empty authority as written has no host.
        return Err(invalid(raw, "URL has no host"));
    }
    let written_ip = parse_host_ip(written);
    for ip in [parsed_ip, written_ip].into_iter().flatten() {
        policy
            .check(ip)
            .map_err(|blocked| FetchError::BlockedAddress {
                host: host.clone(),
                blocked,
            })?;
    }
    if let (Some(std::net::IpAddr::V4(v4)), Some(Host::Ipv4(_))) = (written_ip, url.host()) {
        let canonical = v4.to_string();
        if !written.eq_ignore_ascii_case(&canonical) {
            return Err(invalid(
                raw,
                format!("non-canonical IPv4 host {written:?}; write it as {canonical}"),
            ));
        }
    }
    if parsed_ip.is_none() && ends_in_number(&host) {
        return Err(invalid(
            raw,
            format!("host {host:?} ends in a number but is not an IPv4 address"),
        ));
    }
    Ok(Target { url, host })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literal_hosts_are_checked_before_connecting() {
        for raw in [
            "https://127.0.0.1/x",
            "https://127.1/x",
            "https://2130706433/x",
            "https://0x7f.0.0.1/x",
            "https://0177.0.0.1/x",
            "https://0x7f000001/x",
            "https://127.0.0.1./x",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::ffff:7f00:1]/x",
            "https://0/x",
            "https://0.0.0.0:8443/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[fe80::1]/x",
            "https://10.0.0.1/x",
            "https://127%2E0%2E0%2E1/x",
            "https://%31%32%37.0.0.1/x",
        ] {
            match check_target(raw, IpPolicy::STRICT) {
                Err(FetchError::BlockedAddress { .. }) => {}
                other => panic!("{raw}: expected BlockedAddress, got {other:?}"),
            }
        }
    }

    #[test]
    fn non_canonical_public_ipv4_host_is_rejected() {
        for raw in [
            "https://134744072/x",
            "https://8.8.2056/x",
            "https://0x8.8.8.8/x",
        ] {
            assert!(
                matches!(
                    check_target(raw, IpPolicy::STRICT),
                    Err(FetchError::InvalidUrl { .. })
                ),
                "{raw}"
            );
        }
        assert!(check_target("https://8.8.8.8/x", IpPolicy::STRICT).is_ok());
    }

    #[test]
    fn only_https_without_userinfo_is_fetched() {
        for raw in [
            "http://cimd.test/x",
            "ftp://cimd.test/x",
            "https://user:pw@cimd.test/x",
            "https://user@cimd.test/x",
            "not a url",
            "https:///x",
            "https://a.1.2.3.4.5/x",
        ] {
            assert!(
                matches!(
                    check_target(raw, IpPolicy::STRICT),
                    Err(FetchError::InvalidUrl { .. })
                ),
                "{raw}: {:?}",
                check_target(raw, IpPolicy::STRICT)
            );
        }
    }

    #[test]
    fn domain_hosts_pass_to_the_resolver() {
        let t = check_target("https://CIMD.Test:8443/client.json", IpPolicy::STRICT).unwrap();
        assert_eq!(t.host, "cimd.test");
        let t = check_target("https://[2606:4700:4700::1111]/x", IpPolicy::STRICT).unwrap();
        assert_eq!(t.host, "2606:4700:4700::1111");
    }

    #[test]
    fn raw_host_extraction() {
        for (raw, want) in [
            ("https://a.b/x", Some("a.b")),
            ("https://a.b:8443/x", Some("a.b")),
            ("https://u:p@127.1:1/x", Some("127.1")),
            ("https://[::1]:443/x", Some("[::1]")),
            ("https://a.b?q", Some("a.b")),
            ("https://a.b\\x", Some("a.b")),
            ("nope", None),
        ] {
            assert_eq!(raw_host(raw), want, "{raw}");
        }
    }
}
