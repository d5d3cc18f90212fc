//! Table-driven tests for [`IpPolicy`]: every registry range, edges just outside, public
//! addresses, every IPv6 transition form, the dev loopback hook, and FastMCP's SSRF test
//! catalogue.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test address {s}: {e}"))
}

const STRICT: IpPolicy = IpPolicy::STRICT;
const DEV: IpPolicy = IpPolicy {
    allow_loopback: true,
};

/// (address inside, range expected in the error)
const BLOCKED_V4: &[(&str, &str)] = &[
    ("0.0.0.0", "0.0.0.0/8"),
    ("0.255.255.255", "0.0.0.0/8"),
    ("10.0.0.1", "10.0.0.0/8"),
    ("10.255.255.255", "10.0.0.0/8"),
    ("100.64.0.1", "100.64.0.0/10"),
    ("100.100.100.100", "100.64.0.0/10"),
    ("100.127.255.255", "100.64.0.0/10"),
    ("127.0.0.1", "127.0.0.0/8"),
    ("127.255.255.254", "127.0.0.0/8"),
    ("169.254.169.254", "169.254.0.0/16"),
    ("172.16.0.1", "172.16.0.0/12"),
    ("172.31.255.255", "172.16.0.0/12"),
    ("192.0.0.1", "192.0.0.0/24"),
    ("192.0.0.8", "192.0.0.0/24"),
    ("192.0.0.9", "192.0.0.0/24"),
    ("192.0.0.10", "192.0.0.0/24"),
    ("192.0.0.170", "192.0.0.0/24"),
    ("192.0.2.1", "192.0.2.0/24"),
    ("192.31.196.1", "192.31.196.0/24"),
    ("192.52.193.1", "192.52.193.0/24"),
    ("192.88.99.1", "192.88.99.0/24"),
    ("192.168.1.1", "192.168.0.0/16"),
    ("192.175.48.1", "192.175.48.0/24"),
    ("198.18.0.1", "198.18.0.0/15"),
    ("198.19.255.255", "198.18.0.0/15"),
    ("198.51.100.1", "198.51.100.0/24"),
    ("203.0.113.1", "203.0.113.0/24"),
    ("224.0.0.1", "224.0.0.0/4"),
    ("239.255.255.250", "224.0.0.0/4"),
    ("240.0.0.1", "240.0.0.0/4"),
    ("254.255.255.255", "240.0.0.0/4"),
    ("255.255.255.255", "255.255.255.255/32"),
];

/// (address inside, range expected in the error)
const BLOCKED_V6: &[(&str, &str)] = &[
    ("::", "::/128"),
    ("::1", "::1/128"),
    ("64:ff9b:1::1", "64:ff9b:1::/48"),
    ("64:ff9b:1::808:808", "64:ff9b:1::/48"),
    ("64:ff9b:1:ffff::1", "64:ff9b:1::/48"),
    ("100::1", "100::/64"),
    ("100::ffff:ffff:ffff:ffff", "100::/64"),
    ("100:0:0:1::1", "100:0:0:1::/64"),
    ("2001::1", "2001::/32"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/32"),
    ("2001:1::1", "2001::/23"),
    ("2001:1::2", "2001::/23"),
    ("2001:2::1", "2001:2::/48"),
    ("2001:3::1", "2001::/23"),
    ("2001:4:112::1", "2001::/23"),
    ("2001:10::1", "2001::/23"),
    ("2001:20::1", "2001::/23"),
    ("2001:1ff:ffff::1", "2001::/23"),
    ("2001:db8::1", "2001:db8::/32"),
    ("2001:db8:ffff::1", "2001:db8::/32"),
    ("2620:4f:8000::1", "2620:4f:8000::/48"),
    ("3fff::1", "3fff::/20"),
    ("3fff:fff:ffff::1", "3fff::/20"),
    ("5f00::1", "5f00::/16"),
    ("fc00::1", "fc00::/7"),
    ("fd12:3456::1", "fc00::/7"),
    ("fe80::1", "fe80::/10"),
    ("febf::1", "fe80::/10"),
    ("fec0::1", "fec0::/10"),
    ("ff02::1", "ff00::/8"),
    ("ff0e::1", "ff00::/8"),
    // Outside 2000::/3 and not a transition form: reserved by IETF.
    ("1::1", V6_RESERVED_RANGE),
    ("4000::1", V6_RESERVED_RANGE),
    ("e000::1", V6_RESERVED_RANGE),
    ("64:ff9b:2::1", V6_RESERVED_RANGE),
    ("::1:0:0:1", V6_RESERVED_RANGE),
];

/// Public addresses, including addresses just outside blocked ranges.
const ALLOWED: &[&str] = &[
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "1.0.0.0",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "191.255.255.255",
    "192.0.1.0",
    "192.0.3.0",
    "192.31.195.255",
    "192.31.197.0",
    "192.52.192.255",
    "192.52.194.0",
    "192.88.98.255",
    "192.88.100.0",
    "192.167.255.255",
    "192.169.0.0",
    "192.175.47.255",
    "192.175.49.0",
    "198.17.255.255",
    "198.20.0.0",
    "198.51.99.255",
    "198.51.101.0",
    "203.0.112.255",
    "203.0.114.0",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2001:200::1",
    "2001:db7:ffff::1",
    "2001:db9::1",
    "2620:4f:7fff::1",
    "2620:4f:8001::1",
    "3fff:1000::1",
    "2000::1",
    "3ffe:ffff::1",
    // Transition forms embedding a public IPv4.
    "::ffff:8.8.8.8",
    "::ffff:0:8.8.8.8",
    "::8.8.8.8",
    "64:ff9b::808:808",
    "64:ff9b::1.1.1.1",
    "2002:808:808::1",
    "2606:4700::5efe:808:808",
    "2606:4700::200:5efe:808:808",
];

#[test]
fn blocks_every_ipv4_special_purpose_range() {
    for (addr, range) in BLOCKED_V4 {
        let err = STRICT.check(ip(addr)).expect_err(addr);
        assert_eq!(err.range, *range, "{addr}");
        assert_eq!(err.embedded, None, "{addr}");
    }
}

#[test]
fn blocks_every_ipv6_special_purpose_range() {
    for (addr, range) in BLOCKED_V6 {
        let err = STRICT.check(ip(addr)).expect_err(addr);
        assert_eq!(err.range, *range, "{addr}");
        assert_eq!(err.embedded, None, "{addr}");
    }
}

#[test]
fn allows_public_addresses_and_edges_just_outside_ranges() {
    for addr in ALLOWED {
        assert_eq!(STRICT.check(ip(addr)), Ok(()), "{addr}");
        assert_eq!(DEV.check(ip(addr)), Ok(()), "{addr}");
    }
}

/// (transition form, embedded IPv4, IPv4 range expected)
const EMBEDDED_BLOCKED: &[(&str, &str, &str)] = &[
    // IPv4-mapped
    ("::ffff:127.0.0.1", "127.0.0.1", "127.0.0.0/8"),
    ("::ffff:192.168.1.1", "192.168.1.1", "192.168.0.0/16"),
    ("::ffff:10.0.0.1", "10.0.0.1", "10.0.0.0/8"),
    (
        "::ffff:169.254.169.254",
        "169.254.169.254",
        "169.254.0.0/16",
    ),
    ("::ffff:100.64.0.1", "100.64.0.1", "100.64.0.0/10"),
    ("::ffff:0.0.0.0", "0.0.0.0", "0.0.0.0/8"),
    // NAT64 well-known prefix
    ("64:ff9b::127.0.0.1", "127.0.0.1", "127.0.0.0/8"),
    ("64:ff9b::a00:1", "10.0.0.1", "10.0.0.0/8"),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254", "169.254.0.0/16"),
    ("64:ff9b::6440:1", "100.64.0.1", "100.64.0.0/10"),
    // IPv4-translated
    ("::ffff:0:7f00:1", "127.0.0.1", "127.0.0.0/8"),
    ("::ffff:0:c0a8:101", "192.168.1.1", "192.168.0.0/16"),
    ("::ffff:0:a9fe:a9fe", "169.254.169.254", "169.254.0.0/16"),
    ("::ffff:0:6440:1", "100.64.0.1", "100.64.0.0/10"),
    // IPv4-compatible
    ("::127.0.0.1", "127.0.0.1", "127.0.0.0/8"),
    ("::10.0.0.1", "10.0.0.1", "10.0.0.0/8"),
    ("::169.254.169.254", "169.254.169.254", "169.254.0.0/16"),
    ("::100.64.0.1", "100.64.0.1", "100.64.0.0/10"),
    ("::0.0.0.2", "0.0.0.2", "0.0.0.0/8"),
    // 6to4
    ("2002:7f00:1::1", "127.0.0.1", "127.0.0.0/8"),
    ("2002:a00:1::1", "10.0.0.1", "10.0.0.0/8"),
    ("2002:a9fe:a9fe::1", "169.254.169.254", "169.254.0.0/16"),
    ("2002:6440:1::1", "100.64.0.1", "100.64.0.0/10"),
    // ISATAP (both IIDs) under a public prefix
    ("2606:4700::5efe:a00:1", "10.0.0.1", "10.0.0.0/8"),
    (
        "2606:4700::200:5efe:a9fe:a9fe",
        "169.254.169.254",
        "169.254.0.0/16",
    ),
    ("2606:4700::5efe:7f00:1", "127.0.0.1", "127.0.0.0/8"),
    (
        "2002:808:808::5efe:c0a8:101",
        "192.168.1.1",
        "192.168.0.0/16",
    ),
];

#[test]
fn blocks_transition_forms_embedding_a_blocked_ipv4() {
    for (addr, v4, range) in EMBEDDED_BLOCKED {
        let err = STRICT.check(ip(addr)).expect_err(addr);
        assert_eq!(err.embedded, Some(v4.parse().unwrap()), "{addr}");
        assert_eq!(err.range, *range, "{addr}");
        assert_eq!(err.ip, ip(addr));
    }
}

#[test]
fn dev_allow_loopback_permits_only_loopback() {
    for addr in [
        "127.0.0.1",
        "127.0.0.2",
        "127.255.255.254",
        "::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(STRICT.check(ip(addr)).is_err(), "{addr} blocked by default");
        assert_eq!(
            DEV.check(ip(addr)),
            Ok(()),
            "{addr} allowed with the dev hook"
        );
    }
    for addr in [
        "0.0.0.0",
        "10.0.0.1",
        "169.254.169.254",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "255.255.255.255",
        "::",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::ffff:0.0.0.0",
        "64:ff9b::127.0.0.1",
        "::ffff:0:7f00:1",
        "::127.0.0.1",
        "2002:7f00:1::1",
        "2606:4700::5efe:7f00:1",
    ] {
        assert!(DEV.check(ip(addr)).is_err(), "{addr} must stay blocked");
    }
}

#[test]
fn blocked_address_display_names_range_and_embedded_ipv4() {
    let e = STRICT.check(ip("10.1.2.3")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "10.1.2.3 is in 10.0.0.0/8 (private-use (RFC 1918))"
    );
    let e = STRICT.check(ip("64:ff9b::a00:1")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "64:ff9b::a00:1 embeds IPv4 10.0.0.1 which is in 10.0.0.0/8 (private-use (RFC 1918))"
    );
}

/// The cases of FastMCP's `tests/server/auth/test_ssrf_protection.py::TestIsIPAllowed`, plus the
/// three addresses CPython 3.11's `ipaddress.is_global` wrongly allows.
#[test]
fn fastmcp_is_ip_allowed_catalogue() {
    let allowed = [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "64:ff9b::808:808",
        "::ffff:0:808:808",
        "::808:808",
        "2606:4700::5efe:808:808",
        "::ffff:8.8.8.8",
    ];
    let blocked = [
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "::1",
        "169.254.169.254",
        "100.64.0.1",
        "100.100.100.100",
        "::ffff:127.0.0.1",
        "::ffff:192.168.1.1",
        "64:ff9b::7f00:1",
        "64:ff9b::c0a8:101",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::6440:1",
        "64:ff9b:1::7f00:1",
        "64:ff9b:1:7f00:1::",
        "::ffff:0:7f00:1",
        "::ffff:0:c0a8:101",
        "::ffff:0:a9fe:a9fe",
        "::ffff:0:6440:1",
        "::7f00:1",
        "::c0a8:101",
        "::a9fe:a9fe",
        "::6440:1",
        "2002:a9fe:a9fe::1",
        "2606:4700::5efe:c0a8:101",
        "2606:4700::5efe:a9fe:a9fe",
        // CPython 3.11 `is_global` allows these; we do not.
        "192.88.99.1",
        "fec0::1",
        "3fff::1",
    ];
    for a in allowed {
        assert!(STRICT.is_allowed(ip(a)), "{a} should be allowed");
    }
    for a in blocked {
        assert!(!STRICT.is_allowed(ip(a)), "{a} should be blocked");
    }
}

#[test]
fn non_canonical_ipv4_hosts_are_checked_as_the_address_they_denote() {
    for host in [
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "0x7f000001",
        "127.0.0.1.",
    ] {
        let parsed = parse_host_ip(host).expect(host);
        let err = STRICT.check(parsed).expect_err(host);
        assert_eq!(err.range, "127.0.0.0/8", "{host}");
    }
    let parsed = parse_host_ip("169.254.43518").unwrap();
    assert_eq!(STRICT.check(parsed).unwrap_err().range, "169.254.0.0/16");
}
