//! Reading a URL host as an IP address the way URL parsers and `inet_aton` do.
//!
//! The WHATWG URL Standard (§3.5 "IPv4 parser") and BSD `inet_aton(3)` accept far more than
//! dotted-quad decimal: one to four parts, each decimal, octal (leading `0`) or hex (`0x`), the
//! last part filling the remaining bytes (`127.1` = `127.0.0.1`, `2130706433` = `127.0.0.1`), and
//! a single trailing dot. An SSRF check that only understands `a.b.c.d` can be bypassed with
//! any of those spellings, so [`parse_host_ip`] accepts all of them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Upper bound on digits in one IPv4 part before we give up (a 32-bit value needs at most 32
/// octal digits with leading zeros stripped; anything longer is not an address we accept).
const MAX_PART_DIGITS: usize = 40;

/// Reads `host` as an IP address, or returns `None` if it is not an IP literal (a DNS name).
///
/// Accepts:
/// - IPv6 literals with or without brackets (`[::1]`, `::1`); zone identifiers are not
///   accepted (`None`);
/// - every IPv4 form a URL parser or `inet_aton` accepts: `127.0.0.1`, `127.1`, `127.0.1`,
///   `2130706433`, `0x7f000001`, `0x7f.0.0.1`, `0177.0.0.1`, mixed radices, and one trailing
///   dot (`127.0.0.1.`).
///
/// A host that *looks* numeric but overflows (e.g. `256.0.0.1`, `4294967296`) returns `None`;
/// URL parsers reject such hosts outright, and the fetcher treats any host whose last label is
/// numeric but which is not an address as invalid.
pub fn parse_host_ip(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if host.contains(':') {
        return host.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    parse_ipv4_lenient(host).map(IpAddr::V4)
}

/// True if the last dot-separated label of `host` (ignoring one trailing dot) is a number in
/// WHATWG's sense (decimal digits, or `0x`/`0X` followed by hex digits). Such a host must be a
/// valid IPv4 address or the URL is invalid (WHATWG "ends in a number" checker).
pub(crate) fn ends_in_number(host: &str) -> bool {
    let h = host.strip_suffix('.').unwrap_or(host);
    let last = h.rsplit('.').next().unwrap_or("");
    if last.is_empty() {
        return false;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    match last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

fn parse_ipv4_lenient(host: &str) -> Option<Ipv4Addr> {
    if host.is_empty() {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut numbers = Vec::with_capacity(parts.len());
    for part in &parts {
        numbers.push(parse_part(part)?);
    }
    let (last, init) = numbers.split_last()?;
    if init.iter().any(|n| *n > 255) {
        return None;
    }
    let last_bits = 8 * (5 - numbers.len() as u32); // bytes left for the last part, in bits
    if last_bits < 64 && *last >= (1u64 << last_bits) {
        return None;
    }
    let mut value: u64 = *last;
    for (i, n) in init.iter().enumerate() {
        value += n << (8 * (3 - i as u32));
    }
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

/// One IPv4 part: `0x`/`0X` hex (empty digits = 0, as WHATWG), leading-`0` octal, or decimal.
fn parse_part(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(h) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (h, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return Some(0);
    }
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    if digits.len() > MAX_PART_DIGITS || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_host_ip_reads_every_ipv4_spelling() {
        let lo = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
        let cases: &[(&str, Option<IpAddr>)] = &[
            ("127.0.0.1", lo),
            ("127.1", lo),
            ("127.0.1", lo),
            ("2130706433", lo),
            ("0x7f000001", lo),
            ("0X7F000001", lo),
            ("0x7f.0.0.1", lo),
            ("0x7f.1", lo),
            ("0177.0.0.1", lo),
            ("0177.0.0.01", lo),
            ("00000000177.0.0.1", lo),
            ("017700000001", lo),
            ("127.0.0.1.", lo),
            ("127.1.", lo),
            ("0", Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))),
            ("0x", Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))),
            ("10.0x10.0.1", Some(IpAddr::V4(Ipv4Addr::new(10, 16, 0, 1)))),
            (
                "169.254.43518",
                Some(IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254))),
            ),
            (
                "3232235777",
                Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))),
            ),
            ("8.8.8.8", Some(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)))),
            ("255.255.255.255", Some(IpAddr::V4(Ipv4Addr::BROADCAST))),
            ("4294967295", Some(IpAddr::V4(Ipv4Addr::BROADCAST))),
        ];
        for (host, want) in cases {
            assert_eq!(parse_host_ip(host), *want, "{host}");
        }
    }

    #[test]
    fn parse_host_ip_rejects_non_addresses_and_overflow() {
        for host in [
            "",
            ".",
            "example.com",
            "cimd.test",
            "1.2.3.4.5",
            "256.0.0.1",
            "1.256.0.1",
            "127.16777216",
            "4294967296",
            "0x100000000",
            "08.0.0.1",
            "0x7g.0.0.1",
            "1..1",
            "127.0.0.1..",
            "1.2.3.4a",
            "99999999999999999999999999999999999999999999",
            "[::1",
            "[fe80::1%25eth0]",
            "fe80::1%eth0",
            "[127.0.0.1]",
        ] {
            assert_eq!(parse_host_ip(host), None, "{host:?}");
        }
    }

    #[test]
    fn parse_host_ip_reads_ipv6_with_and_without_brackets() {
        let one: IpAddr = "::1".parse().unwrap();
        assert_eq!(parse_host_ip("[::1]"), Some(one));
        assert_eq!(parse_host_ip("::1"), Some(one));
        assert_eq!(
            parse_host_ip("[::ffff:127.0.0.1]"),
            Some("::ffff:127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            parse_host_ip("[2606:4700:4700::1111]"),
            Some("2606:4700:4700::1111".parse().unwrap())
        );
    }

    #[test]
    fn ends_in_number_matches_whatwg() {
        for (host, want) in [
            ("example.com", false),
            ("1.2.3.4.5", true),
            ("a.0x1f", true),
            ("a.0xzz", false),
            ("foo.09", true),
            ("cimd.test.", false),
            ("127.1.", true),
            ("", false),
        ] {
            assert_eq!(ends_in_number(host), want, "{host}");
        }
    }
}
