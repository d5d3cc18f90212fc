//! Property tests of two security rules, over generated inputs rather than a table:
//!
//! - **Redirect matching** (RFC 8252 §7.3, RFC 9700 §4.1.3): a requested URI that matches a
//!   registered one is that exact string, or — for a loopback `http` registration only — the same
//!   string with another (or no) port. Nothing else ever matches.
//! - **Address policy** (draft §8.6): an IPv6 address that embeds an IPv4 address (mapped,
//!   translated, compatible, NAT64, 6to4) is refused whenever that IPv4 address is refused, and
//!   the IPv4-mapped form gets exactly the IPv4 verdict.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cimd::ip::IpPolicy;
use cimd::redirect::{RedirectUri, redirect_uri_matches};
use proptest::prelude::*;

/// `uri` without the port after its host (`http://127.0.0.1:8080/cb` → `http://127.0.0.1/cb`);
/// an independent oracle, written on strings, for "differs only in the port".
fn without_port(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rfind(':') {
        Some(i)
            if !authority[i..].contains(']')
                && authority[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &authority[..i]
        }
        _ => authority,
    };
    format!("{scheme}://{host}{tail}")
}

fn registered() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec!["http", "https", "HTTP", "com.example.app"]);
    let host = prop::sample::select(vec![
        "127.0.0.1",
        "[::1]",
        "localhost",
        "LocalHost",
        "127.0.0.2",
        "example.com",
        "app.example.com",
    ]);
    let port = prop::option::of(1u16..=65535);
    let path = prop::sample::select(vec!["", "/", "/cb", "/a/b", "/cb/"]);
    let query = prop::option::of(prop::sample::select(vec!["x=1", "a=b&c=d"]));
    (scheme, host, port, path, query).prop_map(|(s, h, p, path, q)| {
        let mut u = if s.contains('.') {
            format!("{s}:/{}", path.trim_start_matches('/'))
        } else {
            format!("{s}://{h}")
        };
        if !s.contains('.') {
            if let Some(p) = p {
                u.push_str(&format!(":{p}"));
            }
            u.push_str(path);
        }
        if let Some(q) = q {
            u.push('?');
            u.push_str(q);
        }
        u
    })
}

/// Requests near a registered URI: another port, no port, one character inserted, changed case,
/// a suffix, or unrelated text.
fn requested(reg: String) -> impl Strategy<Value = (String, String)> {
    let r = reg.clone();
    prop_oneof![
        (1u16..=65535).prop_map({
            let r = r.clone();
            move |p| (r.clone(), with_port(&r, Some(p)))
        }),
        Just((r.clone(), with_port(&r, None))),
        (
            any::<prop::sample::Index>(),
            prop::sample::select(vec![
                '/', '.', '@', ':', '%', '#', '?', 'a', '\\', '\u{2044}'
            ])
        )
            .prop_map({
                let r = r.clone();
                move |(i, c)| {
                    let mut s = r.clone();
                    let at = i.index(s.len() + 1);
                    let at = (0..=at).rev().find(|&k| s.is_char_boundary(k)).unwrap_or(0);
                    s.insert(at, c);
                    (r.clone(), s)
                }
            }),
        Just((r.clone(), r.to_ascii_uppercase())),
        "[a-zA-Z0-9./:@%?#=&_-]{0,12}".prop_map({
            let r = r.clone();
            move |suffix| (r.clone(), format!("{r}{suffix}"))
        }),
        "[a-zA-Z0-9./:@%?#=&\\[\\]_-]{0,40}".prop_map(move |s| (reg.clone(), s)),
    ]
}

fn with_port(uri: &str, port: Option<u16>) -> String {
    let bare = without_port(uri);
    let Some((scheme, rest)) = bare.split_once("://") else {
        return bare;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    match port {
        Some(p) => format!("{scheme}://{host}:{p}{tail}"),
        None => format!("{scheme}://{host}{tail}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn a_match_is_the_registered_string_or_a_loopback_port_variant(
        (reg, req) in registered().prop_flat_map(requested)
    ) {
        let Ok(registered) = RedirectUri::parse(&reg) else {
            return Ok(());
        };
        if redirect_uri_matches(&registered, &req) {
            prop_assert!(
                req == reg || (registered.is_loopback() && without_port(&req) == without_port(&reg)),
                "{req:?} matched {reg:?}"
            );
        }
    }

    #[test]
    fn every_port_of_a_loopback_registration_matches(reg in registered(), port in 1u16..=65535) {
        let Ok(registered) = RedirectUri::parse(&reg) else {
            return Ok(());
        };
        let req = with_port(&reg, Some(port));
        prop_assert_eq!(
            redirect_uri_matches(&registered, &req),
            req == reg || registered.is_loopback(),
            "{:?} against {:?}", req, reg
        );
    }

    #[test]
    fn embedded_ipv4_forms_agree_with_the_ipv4_verdict(raw in any::<u32>(), loopback_hook in any::<bool>()) {
        let policy = IpPolicy { allow_loopback: loopback_hook };
        let v4 = Ipv4Addr::from(raw);
        let verdict = policy.is_allowed(IpAddr::V4(v4));
        let strict = IpPolicy::STRICT.is_allowed(IpAddr::V4(v4));
        let n = u128::from(raw);
        // The mapped form is the same socket address: the very same verdict.
        let mapped = IpAddr::V6(v4.to_ipv6_mapped());
        prop_assert_eq!(policy.is_allowed(mapped), verdict, "{}", mapped);
        // The other embeddings are refused whenever the strict IPv4 verdict refuses.
        let forms = [
            ("translated ::ffff:0:a", (0xffffu128 << 32 << 16) | n),
            ("NAT64 64:ff9b::a", (0x0064_ff9b_u128 << 96) | n),
            ("6to4 2002:a::", (0x2002u128 << 112) | (n << 80)),
        ];
        for (name, bits) in forms {
            let ip = IpAddr::V6(Ipv6Addr::from(bits));
            if !strict {
                prop_assert!(!policy.is_allowed(ip), "{} form {} of refused {} was allowed", name, ip, v4);
            }
        }
        // IPv4-compatible (::a, deprecated): refused when the IPv4 address is.
        if raw > 1 && !strict {
            let ip = IpAddr::V6(Ipv6Addr::from(n));
            prop_assert!(!policy.is_allowed(ip), "compatible form {} of refused {} was allowed", ip, v4);
        }
    }
}
