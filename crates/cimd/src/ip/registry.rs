//! The special-purpose address tables.
//!
//! Sources: IANA "IPv4 Special-Purpose Address Registry" and "IPv6 Special-Purpose Address
//! Registry" (RFC 6890 as updated), the IANA multicast registries, and the IANA "IPv6 Address
//! Space" registry (everything outside `2000::/3` except the listed transition prefixes is
//! "Reserved by IETF"). Each entry carries its CIDR text and a short name for error messages;
//! a unit test checks that the text and the numeric prefix agree.
//!
//! Order matters only for naming: the first matching entry is reported, so more specific
//! entries come before the blocks that contain them.

/// One IPv4 special-purpose block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V4Range {
    /// Network address as a big-endian `u32`.
    pub net: u32,
    /// Prefix length.
    pub len: u8,
    /// CIDR text, e.g. `"10.0.0.0/8"`.
    pub range: &'static str,
    /// Short registry name, e.g. `"private-use"`.
    pub name: &'static str,
}

/// One IPv6 special-purpose block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V6Range {
    /// Network address as a big-endian `u128`.
    pub net: u128,
    /// Prefix length.
    pub len: u8,
    /// CIDR text, e.g. `"fc00::/7"`.
    pub range: &'static str,
    /// Short registry name.
    pub name: &'static str,
}

const fn v4(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    len: u8,
    range: &'static str,
    name: &'static str,
) -> V4Range {
    V4Range {
        net: u32::from_be_bytes([a, b, c, d]),
        len,
        range,
        name,
    }
}

const fn v6(net: u128, len: u8, range: &'static str, name: &'static str) -> V6Range {
    V6Range {
        net,
        len,
        range,
        name,
    }
}

impl V4Range {
    pub(crate) fn contains(&self, ip: u32) -> bool {
        prefix_match_u32(self.net, ip, self.len)
    }
}

impl V6Range {
    pub(crate) fn contains(&self, ip: u128) -> bool {
        prefix_match_u128(self.net, ip, self.len)
    }
}

fn prefix_match_u32(net: u32, ip: u32, len: u8) -> bool {
    if len == 0 {
        return true;
    }
    let shift = 32 - u32::from(len.min(32));
    (net >> shift) == (ip >> shift)
}

fn prefix_match_u128(net: u128, ip: u128, len: u8) -> bool {
    if len == 0 {
        return true;
    }
    let shift = 128 - u32::from(len.min(128));
    (net >> shift) == (ip >> shift)
}

/// `127.0.0.0/8`, the only IPv4 block the dev loopback hook lets through (draft -02 §8.6).
pub(crate) const V4_LOOPBACK: V4Range = v4(127, 0, 0, 0, 8, "127.0.0.0/8", "loopback");

/// The IPv4 special-purpose registry (complete as of 2025) plus multicast.
///
/// `192.0.0.0/24` is blocked as a whole, including `192.0.0.9/32` (PCP anycast) and
/// `192.0.0.10/32` (TURN anycast), which the registry marks globally reachable: neither hosts a
/// metadata document.
pub(crate) const V4_BLOCKED: &[V4Range] = &[
    v4(0, 0, 0, 0, 8, "0.0.0.0/8", "this network (RFC 791)"),
    v4(10, 0, 0, 0, 8, "10.0.0.0/8", "private-use (RFC 1918)"),
    v4(
        100,
        64,
        0,
        0,
        10,
        "100.64.0.0/10",
        "shared address space / CGNAT (RFC 6598)",
    ),
    V4_LOOPBACK,
    v4(
        169,
        254,
        0,
        0,
        16,
        "169.254.0.0/16",
        "link-local (RFC 3927)",
    ),
    v4(172, 16, 0, 0, 12, "172.16.0.0/12", "private-use (RFC 1918)"),
    v4(
        192,
        0,
        0,
        0,
        24,
        "192.0.0.0/24",
        "IETF protocol assignments (RFC 6890)",
    ),
    v4(
        192,
        0,
        2,
        0,
        24,
        "192.0.2.0/24",
        "documentation TEST-NET-1 (RFC 5737)",
    ),
    v4(
        192,
        31,
        196,
        0,
        24,
        "192.31.196.0/24",
        "AS112-v4 (RFC 7535)",
    ),
    v4(192, 52, 193, 0, 24, "192.52.193.0/24", "AMT (RFC 7450)"),
    v4(
        192,
        88,
        99,
        0,
        24,
        "192.88.99.0/24",
        "deprecated 6to4 relay anycast (RFC 7526)",
    ),
    v4(
        192,
        168,
        0,
        0,
        16,
        "192.168.0.0/16",
        "private-use (RFC 1918)",
    ),
    v4(
        192,
        175,
        48,
        0,
        24,
        "192.175.48.0/24",
        "AS112 direct delegation (RFC 7534)",
    ),
    v4(
        198,
        18,
        0,
        0,
        15,
        "198.18.0.0/15",
        "benchmarking (RFC 2544)",
    ),
    v4(
        198,
        51,
        100,
        0,
        24,
        "198.51.100.0/24",
        "documentation TEST-NET-2 (RFC 5737)",
    ),
    v4(
        203,
        0,
        113,
        0,
        24,
        "203.0.113.0/24",
        "documentation TEST-NET-3 (RFC 5737)",
    ),
    v4(224, 0, 0, 0, 4, "224.0.0.0/4", "multicast (RFC 5771)"),
    v4(
        255,
        255,
        255,
        255,
        32,
        "255.255.255.255/32",
        "limited broadcast (RFC 919)",
    ),
    v4(240, 0, 0, 0, 4, "240.0.0.0/4", "reserved (RFC 1112)"),
];

/// `::1/128`, the only IPv6 address the dev loopback hook lets through.
pub(crate) const V6_LOOPBACK: V6Range = v6(1, 128, "::1/128", "loopback (RFC 4291)");
/// `::/128`.
pub(crate) const V6_UNSPECIFIED: V6Range = v6(0, 128, "::/128", "unspecified (RFC 4291)");
/// `::ffff:0:0/96`: IPv4-mapped, judged by the embedded IPv4 (RFC 4291 §2.5.5.2).
pub(crate) const V6_MAPPED: V6Range = v6(0xffff_0000_0000, 96, "::ffff:0:0/96", "IPv4-mapped");
/// `::ffff:0:0:0/96`: IPv4-translated (RFC 2765 §2.1), judged by the embedded IPv4.
pub(crate) const V6_TRANSLATED: V6Range = v6(
    0xffff_0000_0000_0000,
    96,
    "::ffff:0:0:0/96",
    "IPv4-translated (RFC 2765)",
);
/// `::/96`: deprecated IPv4-compatible (RFC 4291 §2.5.5.1), judged by the embedded IPv4.
pub(crate) const V6_COMPATIBLE: V6Range = v6(0, 96, "::/96", "IPv4-compatible (RFC 4291)");
/// `64:ff9b::/96`: the NAT64 well-known prefix (RFC 6052), judged by the embedded IPv4.
pub(crate) const V6_NAT64: V6Range = v6(
    0x0064_ff9b << 96,
    96,
    "64:ff9b::/96",
    "NAT64 well-known prefix (RFC 6052)",
);
/// `2002::/16`: 6to4 (RFC 3056), judged by the IPv4 in bits 16..48.
pub(crate) const V6_6TO4: V6Range = v6(0x2002 << 112, 16, "2002::/16", "6to4 (RFC 3056)");
/// `2000::/3`: IANA global unicast; everything outside it (bar the transition prefixes above)
/// is "Reserved by IETF" or one of the local/multicast blocks.
pub(crate) const V6_GLOBAL_UNICAST: V6Range = v6(0x2 << 124, 3, "2000::/3", "global unicast");

/// IPv6 blocks rejected outright, whatever they embed.
pub(crate) const V6_BLOCKED: &[V6Range] = &[
    v6(
        0x0064_ff9b_0001 << 80,
        48,
        "64:ff9b:1::/48",
        "local-use IPv4/IPv6 translation (RFC 8215)",
    ),
    v6(0x0100 << 112, 64, "100::/64", "discard-only (RFC 6666)"),
    v6(
        0x0100_0000_0000_0001 << 64,
        64,
        "100:0:0:1::/64",
        "dummy IPv6 prefix (RFC 9780)",
    ),
    v6(0x2001 << 112, 32, "2001::/32", "Teredo (RFC 4380)"),
    v6(
        0x2001_0002 << 96,
        48,
        "2001:2::/48",
        "benchmarking (RFC 5180)",
    ),
    v6(
        0x2001 << 112,
        23,
        "2001::/23",
        "IETF protocol assignments (RFC 2928)",
    ),
    v6(
        0x2001_0db8 << 96,
        32,
        "2001:db8::/32",
        "documentation (RFC 3849)",
    ),
    v6(
        0x2620_004f_8000 << 80,
        48,
        "2620:4f:8000::/48",
        "AS112 direct delegation (RFC 7534)",
    ),
    v6(0x3fff << 112, 20, "3fff::/20", "documentation (RFC 9637)"),
    v6(
        0x5f00 << 112,
        16,
        "5f00::/16",
        "segment routing SIDs (RFC 9602)",
    ),
    v6(0xfc00 << 112, 7, "fc00::/7", "unique local (RFC 4193)"),
    v6(0xfe80 << 112, 10, "fe80::/10", "link-local (RFC 4291)"),
    v6(
        0xfec0 << 112,
        10,
        "fec0::/10",
        "deprecated site-local (RFC 3879)",
    ),
    v6(0xff00 << 112, 8, "ff00::/8", "multicast (RFC 4291)"),
];

/// The catch-all for IPv6 outside `2000::/3` that is not one of the transition forms.
pub(crate) const V6_RESERVED_NAME: &str = "reserved by IETF (outside global unicast 2000::/3)";
/// Range text reported for [`V6_RESERVED_NAME`].
pub(crate) const V6_RESERVED_RANGE: &str = "::/0 minus 2000::/3";

/// ISATAP interface identifiers (RFC 5214 §6.1): bits 64..96 are `0000:5efe` or `0200:5efe`.
pub(crate) const ISATAP_IIDS: [u32; 2] = [0x0000_5efe, 0x0200_5efe];

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn range_text_matches_numeric_prefix() {
        for r in V4_BLOCKED {
            let net: ipnet::Ipv4Net = r.range.parse().expect(r.range);
            assert_eq!(net.network(), Ipv4Addr::from(r.net), "{}", r.range);
            assert_eq!(net.prefix_len(), r.len, "{}", r.range);
        }
        let v6s = V6_BLOCKED.iter().chain([
            &V6_LOOPBACK,
            &V6_UNSPECIFIED,
            &V6_MAPPED,
            &V6_TRANSLATED,
            &V6_COMPATIBLE,
            &V6_NAT64,
            &V6_6TO4,
            &V6_GLOBAL_UNICAST,
        ]);
        for r in v6s {
            let net: ipnet::Ipv6Net = r.range.parse().expect(r.range);
            assert_eq!(net.network(), Ipv6Addr::from(r.net), "{}", r.range);
            assert_eq!(net.prefix_len(), r.len, "{}", r.range);
        }
    }
}
