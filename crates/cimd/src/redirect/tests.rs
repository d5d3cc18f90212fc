//! Table-driven tests for redirect URI syntax, matching, allow-lists and selection.
use super::*;

fn uri(s: &str) -> RedirectUri {
    RedirectUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> RedirectUriError {
    match RedirectUri::parse(s) {
        Ok(u) => panic!("{s:?} accepted as {u:?}"),
        Err(e) => e,
    }
}

fn list(p: &[&str]) -> RedirectAllowList {
    let owned: Vec<String> = p.iter().map(|s| (*s).to_owned()).collect();
    RedirectAllowList::parse(&owned).unwrap_or_else(|e| panic!("{p:?}: {e}"))
}

#[test]
fn accepts_valid_redirect_uris() {
    let cases: &[(&str, Option<&str>, bool)] = &[
        ("https://app.example.com/cb", Some("app.example.com"), false),
        (
            "https://App.Example.com:8443/cb?x=1",
            Some("app.example.com"),
            false,
        ),
        ("http://127.0.0.1/callback", Some("127.0.0.1"), true),
        ("http://127.0.0.1:33418/callback", Some("127.0.0.1"), true),
        ("http://localhost/callback", Some("localhost"), true),
        ("http://LOCALHOST:8080/cb", Some("localhost"), true),
        ("http://[::1]:9000/cb", Some("::1"), true),
        ("com.example.app:/oauth2redirect", None, false),
        ("com.example.app:callback", None, false),
        ("myapp://cb", Some("cb"), false),
        (
            "cursor://anysphere.cursor-retrieval/oauth/callback",
            Some("anysphere.cursor-retrieval"),
            false,
        ),
        (
            "https://claude.ai/api/mcp/auth_callback",
            Some("claude.ai"),
            false,
        ),
    ];
    for &(s, host, loopback) in cases {
        let u = uri(s);
        assert_eq!(u.as_str(), s);
        assert_eq!(u.host(), host, "{s}");
        assert_eq!(u.is_loopback(), loopback, "{s}");
    }
}

#[test]
fn rejects_unsafe_redirect_schemes() {
    for s in [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "DATA:text/html,x",
        "file:///etc/passwd",
        "vbscript:msgbox",
    ] {
        assert!(
            matches!(err(s), RedirectUriError::UnsafeScheme { .. }),
            "{s}"
        );
    }
}

#[test]
fn rejects_http_to_non_loopback_hosts() {
    for s in [
        "http://example.com/cb",
        "http://127.0.0.2/cb",
        "http://localhost./cb",
        "http://localhost.evil.com/cb",
        "http://sub.localhost/cb",
        "http://0.0.0.0/cb",
        "http://[::2]/cb",
        "http://[0:0:0:0:0:0:0:1]/cb",
    ] {
        assert!(
            matches!(err(s), RedirectUriError::HttpNotLoopback { .. }),
            "{s}"
        );
    }
}

#[test]
fn rejects_relative_redirect_uris() {
    for s in ["/cb", "//a.com/cb", "cb", "1app:/cb", "://a.com/cb"] {
        assert!(
            matches!(err(s), RedirectUriError::MissingScheme { .. }),
            "{s}"
        );
    }
}

#[test]
fn rejects_https_without_host() {
    for s in ["https:/cb", "https:cb", "https:///cb", "http:/cb"] {
        assert!(
            matches!(err(s), RedirectUriError::MissingHost { .. }),
            "{s}"
        );
    }
}

#[test]
fn rejects_fragment_in_redirect_uri() {
    for s in [
        "https://a.com/cb#x",
        "https://a.com/cb#",
        "com.example.app:/cb#f",
    ] {
        assert!(matches!(err(s), RedirectUriError::Fragment { .. }), "{s}");
    }
}

#[test]
fn rejects_userinfo_in_redirect_uri() {
    for s in [
        "http://localhost@evil.com/cb",
        "http://localhost:3000@malicious.io/cb",
        "https://user:pass@a.com/cb",
        "myapp://u@cb/x",
    ] {
        assert!(matches!(err(s), RedirectUriError::Userinfo { .. }), "{s}");
    }
}

#[test]
fn rejects_dot_segments_in_redirect_uri() {
    for s in [
        "https://a.com/cb/../admin",
        "https://a.com/./cb",
        "https://a.com/cb/..",
        "https://a.com/%2e%2e/cb",
        "https://a.com/%2E/cb",
        "https://a.com/cb/..%2fadmin",
        "com.example.app:/../cb",
        "http://localhost/a/%2e%2E/cb",
    ] {
        assert!(matches!(err(s), RedirectUriError::DotSegment { .. }), "{s}");
    }
}

#[test]
fn rejects_invalid_characters_in_redirect_uri() {
    for s in [
        "https://a.com/c b",
        "https://a.com/cb\\x",
        " https://a.com/cb",
        "https://a.com/%zz",
    ] {
        assert!(
            matches!(err(s), RedirectUriError::InvalidCharacter { .. }),
            "{s:?}"
        );
    }
}

#[test]
fn rejects_invalid_port_and_host() {
    assert!(matches!(
        err("https://a.com:0/cb"),
        RedirectUriError::InvalidPort { .. }
    ));
    assert!(matches!(
        err("http://localhost:/cb"),
        RedirectUriError::InvalidPort { .. }
    ));
    assert!(matches!(
        err("https://a.com:*/cb"),
        RedirectUriError::InvalidPort { .. }
    ));
    assert!(matches!(
        err("https://*.a.com/cb"),
        RedirectUriError::InvalidHost { .. }
    ));
}

#[test]
fn rejects_empty_and_too_long_redirect_uri() {
    assert!(matches!(err("myapp:"), RedirectUriError::Incomplete { .. }));
    assert_eq!(err(""), RedirectUriError::Empty);
    let long = format!("https://a.com/{}", "x".repeat(MAX_REDIRECT_URI_LENGTH));
    assert!(matches!(err(&long), RedirectUriError::TooLong { .. }));
}

#[test]
fn redirect_uri_matches_exact_string_only() {
    // (registered, requested, expected)
    let cases = [
        ("https://a.com/cb", "https://a.com/cb", true),
        ("https://a.com/cb", "https://a.com/cb/", false),
        ("https://a.com/cb", "https://A.com/cb", false),
        ("https://a.com/cb", "https://a.com:443/cb", false),
        ("https://a.com/cb", "https://a.com/cb?x=1", false),
        ("https://a.com/cb", "https://a.com/CB", false),
        ("https://a.com/cb?x=1", "https://a.com/cb?x=1", true),
        ("https://a.com/cb?x=1", "https://a.com/cb?x=2", false),
        ("com.example.app:/cb", "com.example.app:/cb", true),
        ("com.example.app:/cb", "com.example.app:/cb2", false),
        ("https://a.com/cb", "https://a.com/cb#x", false),
    ];
    for (reg, req, want) in cases {
        assert_eq!(redirect_uri_matches(&uri(reg), req), want, "{reg} vs {req}");
    }
}

#[test]
fn redirect_uri_loopback_port_may_differ() {
    let cases = [
        (
            "http://localhost/callback",
            "http://localhost:51234/callback",
            true,
        ),
        (
            "http://127.0.0.1/callback",
            "http://127.0.0.1:8080/callback",
            true,
        ),
        ("http://[::1]/callback", "http://[::1]:8080/callback", true),
        ("http://127.0.0.1:3000/cb", "http://127.0.0.1:4000/cb", true),
        ("http://127.0.0.1:3000/cb", "http://127.0.0.1/cb", true),
        ("http://localhost/cb?a=1", "http://localhost:5/cb?a=1", true),
    ];
    for (reg, req, want) in cases {
        assert_eq!(redirect_uri_matches(&uri(reg), req), want, "{reg} vs {req}");
    }
}

#[test]
fn redirect_uri_loopback_only_port_may_differ() {
    let cases = [
        // no host cross-mapping
        (
            "http://localhost/callback",
            "http://127.0.0.1:5000/callback",
        ),
        (
            "http://127.0.0.1/callback",
            "http://localhost:5000/callback",
        ),
        ("http://127.0.0.1/callback", "http://[::1]:5000/callback"),
        (
            "http://localhost/callback",
            "http://LOCALHOST:5000/callback",
        ),
        // not loopback under our strict definition
        (
            "http://localhost/callback",
            "http://localhost.:5000/callback",
        ),
        (
            "http://127.0.0.1/callback",
            "http://127.0.0.2:5000/callback",
        ),
        // path and query exact
        (
            "http://localhost/callback",
            "http://localhost:5000/callback/",
        ),
        ("http://localhost/callback", "http://localhost:5000/other"),
        ("http://localhost/cb?a=1", "http://localhost:5/cb?a=2"),
        ("http://localhost/cb", "http://localhost:5/cb?a=1"),
        ("http://localhost/cb", "http://localhost:5/cb#f"),
        // scheme exact: no https exception, no upgrade
        ("http://localhost/cb", "https://localhost:5/cb"),
        ("http://localhost/cb", "HTTP://localhost:5/cb"),
        // userinfo / dot segments never
        ("http://localhost/cb", "http://localhost@evil.com:5/cb"),
        ("http://localhost/cb", "http://localhost:5/x/../cb"),
    ];
    for (reg, req) in cases {
        assert!(!redirect_uri_matches(&uri(reg), req), "{reg} vs {req}");
    }
}

#[test]
fn redirect_uri_no_https_loopback_exception() {
    assert!(!redirect_uri_matches(
        &uri("https://localhost/cb"),
        "https://localhost:5/cb"
    ));
    assert!(!redirect_uri_matches(
        &uri("https://127.0.0.1/cb"),
        "https://127.0.0.1:5/cb"
    ));
    assert!(!uri("https://localhost/cb").is_loopback());
}

#[test]
fn allow_list_patterns_match() {
    let l = list(&[
        "https://*.example.com/cb",
        "http://localhost:*/callback",
        "http://127.0.0.1/callback",
        "https://app.test:*/x?y=1",
        "https://fixed.test/cb",
        "com.example.app:/cb",
    ]);
    let cases = [
        ("https://a.example.com/cb", true),
        ("https://a.b.example.com/cb", true),
        ("https://A.Example.COM/cb", true),
        ("https://example.com/cb", false),
        ("https://evilexample.com/cb", false),
        ("https://a.example.com.evil.com/cb", false),
        ("https://a.example.com/cb/x", false),
        ("https://a.example.com/cb?x", false),
        ("http://a.example.com/cb", false),
        ("https://a.example.com:8443/cb", false),
        ("https://a.example.com:443/cb", true),
        ("http://localhost:1234/callback", true),
        ("http://localhost/callback", true),
        ("http://127.0.0.1:5555/callback", true),
        ("http://localhost:1234/other", false),
        ("https://app.test:9/x?y=1", true),
        ("https://app.test:9/x", false),
        ("https://fixed.test/cb", true),
        ("https://fixed.test:8443/cb", false),
        ("com.example.app:/cb", true),
        ("com.example.app:/cb2", false),
        // userinfo and dot segments always rejected
        ("https://u@a.example.com/cb", false),
        ("http://localhost@evil.com:1/callback", false),
        ("https://a.example.com/x/../cb", false),
        ("https://a.example.com/%2e/cb", false),
        ("javascript:alert(1)", false),
    ];
    for (req, want) in cases {
        assert_eq!(l.matches(req), want, "{req}");
    }
}

#[test]
fn allow_list_empty_denies_all() {
    let l = list(&[]);
    assert!(!l.matches("https://a.com/cb"));
}

#[test]
fn allow_list_rejects_bad_wildcards() {
    for p in [
        "https://*/cb",
        "https://a.*.com/cb",
        "https://*a.com/cb",
        "https://a.com/*",
        "https://a.com/cb?x=*",
        "*://a.com/cb",
        "https://**.a.com/cb",
        "https://a.com:8*/cb",
        "com.example.*:/cb",
    ] {
        let owned = vec![p.to_owned()];
        assert!(
            matches!(
                RedirectAllowList::parse(&owned),
                Err(RedirectUriError::BadWildcard { .. })
            ),
            "{p}: {:?}",
            RedirectAllowList::parse(&owned)
        );
    }
    // Patterns obey the redirect URI rules too.
    for p in [
        "http://*.example.com/cb",
        "https://u@*.a.com/cb",
        "https://*.a.com/x/../cb",
    ] {
        assert!(RedirectAllowList::parse(&[p.to_owned()]).is_err(), "{p}");
    }
}

#[test]
fn select_redirect_uri_requires_document_and_allow_list() {
    let reg = vec![uri("https://a.com/cb"), uri("http://localhost/callback")];
    let allow = list(&["https://a.com/cb"]);
    assert_eq!(
        select_redirect_uri(&reg, None, Some("https://a.com/cb")),
        Ok(uri("https://a.com/cb"))
    );
    assert_eq!(
        select_redirect_uri(&reg, None, Some("http://localhost:4242/callback")),
        Ok(uri("http://localhost:4242/callback"))
    );
    assert_eq!(
        select_redirect_uri(&reg, Some(&allow), Some("http://localhost:4242/callback")),
        Err(RedirectMismatch::NotInAllowList {
            uri: "http://localhost:4242/callback".into()
        })
    );
    assert_eq!(
        select_redirect_uri(
            &[uri("https://b.com/cb")],
            Some(&allow),
            Some("https://a.com/cb")
        ),
        Err(RedirectMismatch::NotRegistered {
            uri: "https://a.com/cb".into()
        })
    );
    assert_eq!(
        select_redirect_uri(&reg, None, Some("https://evil.com/cb")),
        Err(RedirectMismatch::NotRegistered {
            uri: "https://evil.com/cb".into()
        })
    );
    assert!(matches!(
        select_redirect_uri(&reg, None, Some("javascript:alert(1)")),
        Err(RedirectMismatch::InvalidSyntax(
            RedirectUriError::UnsafeScheme { .. }
        ))
    ));
    assert_eq!(
        select_redirect_uri(&reg, Some(&list(&[])), Some("https://a.com/cb")).map(|_| ()),
        Err(RedirectMismatch::NotInAllowList {
            uri: "https://a.com/cb".into()
        })
    );
}

#[test]
fn select_redirect_uri_without_parameter_needs_exactly_one() {
    let one = vec![uri("https://a.com/cb")];
    assert_eq!(
        select_redirect_uri(&one, None, None),
        Ok(uri("https://a.com/cb"))
    );
    let two = vec![uri("https://a.com/cb"), uri("https://a.com/cb2")];
    assert_eq!(
        select_redirect_uri(&two, None, None),
        Err(RedirectMismatch::Required { registered: 2 })
    );
    assert_eq!(
        select_redirect_uri(&[], None, None),
        Err(RedirectMismatch::Required { registered: 0 })
    );
    // The single registered URI must still pass the allow-list (FastMCP #3098).
    let evil = vec![uri("https://evil.com/callback")];
    assert_eq!(
        select_redirect_uri(&evil, Some(&list(&["http://localhost:*/callback"])), None),
        Err(RedirectMismatch::NotInAllowList {
            uri: "https://evil.com/callback".into()
        })
    );
}

#[test]
fn redirect_errors_say_why() {
    assert!(
        err("http://example.com/cb")
            .to_string()
            .contains("loopback")
    );
    let m = RedirectMismatch::Required { registered: 2 };
    assert!(m.to_string().contains("registers 2"));
}
