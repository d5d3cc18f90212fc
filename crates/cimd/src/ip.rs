//! Special-purpose address policy: which IP addresses the fetcher may connect to.
//!
//! draft-ietf-oauth-client-id-metadata-document-02 §8.6: the authorization server MUST NOT fetch
//! the client_id URL, or any URL inside the document, if it resolves to a special-use address
//! (RFC 6890). The loopback exception is for development only. This module implements the
//! **complete** IANA IPv4 and IPv6 special-purpose registries, the multicast blocks, and the IPv6
//! transition forms that embed an IPv4 address.
//!
//! # The rule
//!
//! An address is blocked if it lies in a special-purpose range **or** any IPv4 address embedded
//! in it is blocked. [`IpPolicy::check`] returns a [`BlockedAddress`] naming the range and, for
//! embeddings, the embedded IPv4 that was refused.
//!
//! # Decisions (product rules; docs/architecture.md, *Fetching (SSRF-safe)*)
//!
//! | form | treatment |
//! |---|---|
//! | `::ffff:a.b.c.d` IPv4-mapped | judged by `a.b.c.d` (the dev loopback hook applies: `::ffff:127.0.0.1` passes only with it) |
//! | `::ffff:0:a.b.c.d` IPv4-translated (RFC 2765) | judged by `a.b.c.d` |
//! | `::a.b.c.d` IPv4-compatible (deprecated) | judged by `a.b.c.d` (`::` and `::1` are unspecified/loopback) |
//! | `64:ff9b::a.b.c.d` NAT64 well-known prefix | judged by `a.b.c.d`: a public IPv4 behind NAT64 is a public host |
//! | `64:ff9b:1::/48` local-use NAT64 | **blocked outright**: the embedding position depends on a prefix length only the local operator knows (RFC 6052 §2.2), and the range is for local use |
//! | `2002::/16` 6to4 | judged by the IPv4 in bits 16..48 (RFC 3056 §2); relays are deprecated (RFC 7526), so such addresses are rare |
//! | `2001::/32` Teredo | **blocked outright** as part of `2001::/23`: no document host sits behind a Teredo tunnel, and both the server and the obfuscated client IPv4 would need checks |
//! | ISATAP IID (`…:0:5efe:a.b.c.d`, `…:200:5efe:a.b.c.d`) | judged by `a.b.c.d` on top of the prefix's own check |
//! | IPv6 outside `2000::/3` (other than the forms above) | **blocked**: "Reserved by IETF" in the IANA IPv6 address space registry |
//! | `192.0.0.0/24` | blocked as a whole, including the globally reachable `.9` and `.10` anycast addresses |
//!
//! Embedded IPv4 addresses (other than IPv4-mapped) are judged **without** the dev loopback
//! exception: `64:ff9b::127.0.0.1` would reach the NAT64 gateway's loopback, not ours.

mod parse;
mod registry;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) use parse::ends_in_number;
pub use parse::parse_host_ip;
use registry::*;

/// Which addresses the fetcher may connect to.
///
/// The default blocks every special-purpose address. `allow_loopback` is the dev hook
/// `fetch.dev_allow_loopback`: it lets `127.0.0.0/8`, `::1` and `::ffff:127.0.0.0/104` through and
/// **nothing else** (not `10/8`, not `169.254/16`, not `::`). It MUST NOT be on in production
/// (draft-02 §8.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpPolicy {
    /// Dev/test only: permit loopback (`127.0.0.0/8`, `::1`).
    pub allow_loopback: bool,
}

/// Why an address was refused: the range it (or its embedded IPv4) falls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedAddress {
    /// The address that was checked.
    pub ip: IpAddr,
    /// The special-purpose range, as CIDR text (e.g. `"10.0.0.0/8"`).
    pub range: &'static str,
    /// The registry name of the range (e.g. `"private-use (RFC 1918)"`).
    pub name: &'static str,
    /// For IPv6 transition forms: the embedded IPv4 address that was blocked (`range`/`name`
    /// then describe the IPv4 range).
    pub embedded: Option<Ipv4Addr>,
}

impl fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some(v4) => write!(
                f,
                "{} embeds IPv4 {} which is in {} ({})",
                self.ip, v4, self.range, self.name
            ),
            None => write!(f, "{} is in {} ({})", self.ip, self.range, self.name),
        }
    }
}

impl std::error::Error for BlockedAddress {}

impl IpPolicy {
    /// The production policy: every special-purpose address blocked.
    pub const STRICT: IpPolicy = IpPolicy {
        allow_loopback: false,
    };

    /// `Ok(())` if the fetcher may connect to `ip`; otherwise the range that forbids it.
    pub fn check(&self, ip: IpAddr) -> Result<(), BlockedAddress> {
        match ip {
            IpAddr::V4(v4) => self.check_v4(v4).map_err(|(range, name)| BlockedAddress {
                ip,
                range,
                name,
                embedded: None,
            }),
            IpAddr::V6(v6) => self.check_v6(v6),
        }
    }

    /// Convenience: `check(ip).is_ok()`.
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        self.check(ip).is_ok()
    }

    fn check_v4(&self, ip: Ipv4Addr) -> Result<(), (&'static str, &'static str)> {
        let n = u32::from(ip);
        if self.allow_loopback && V4_LOOPBACK.contains(n) {
            return Ok(());
        }
        match V4_BLOCKED.iter().find(|r| r.contains(n)) {
            Some(r) => Err((r.range, r.name)),
            None => Ok(()),
        }
    }

    fn check_v6(&self, ip: Ipv6Addr) -> Result<(), BlockedAddress> {
        let n = u128::from(ip);
        let whole = |r: &V6Range| BlockedAddress {
            ip: IpAddr::V6(ip),
            range: r.range,
            name: r.name,
            embedded: None,
        };
        // Judges an embedded IPv4 with `policy`; a refusal names the IPv4 range.
        let embedded = |policy: IpPolicy, v4: Ipv4Addr| {
            policy.check_v4(v4).map_err(|(range, name)| BlockedAddress {
                ip: IpAddr::V6(ip),
                range,
                name,
                embedded: Some(v4),
            })
        };
        let low32 = Ipv4Addr::from(n as u32);

        if V6_LOOPBACK.contains(n) {
            return if self.allow_loopback {
                Ok(())
            } else {
                Err(whole(&V6_LOOPBACK))
            };
        }
        if V6_UNSPECIFIED.contains(n) {
            return Err(whole(&V6_UNSPECIFIED));
        }
        if V6_MAPPED.contains(n) {
            // The only embedding the dev loopback hook applies to: it is the same socket address.
            return embedded(*self, low32);
        }
        if V6_TRANSLATED.contains(n) || V6_COMPATIBLE.contains(n) || V6_NAT64.contains(n) {
            return embedded(IpPolicy::STRICT, low32);
        }
        if let Some(r) = V6_BLOCKED.iter().find(|r| r.contains(n)) {
            return Err(whole(r));
        }
        if !V6_GLOBAL_UNICAST.contains(n) {
            return Err(BlockedAddress {
                ip: IpAddr::V6(ip),
                range: V6_RESERVED_RANGE,
                name: V6_RESERVED_NAME,
                embedded: None,
            });
        }
        if V6_6TO4.contains(n) {
            embedded(IpPolicy::STRICT, Ipv4Addr::from((n >> 80) as u32))?;
        }
        if ISATAP_IIDS.contains(&((n >> 32) as u32)) {
            embedded(IpPolicy::STRICT, low32)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
