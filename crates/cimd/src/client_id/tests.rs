//! Table-driven tests for the client_id URL rules (draft §3; docs/architecture.md, *Client ID
//! URL*).
use super::*;

fn err(raw: &str) -> ClientIdError {
    match ClientIdUrl::parse(raw) {
        Ok(ok) => panic!("{raw:?} was accepted as {ok:?}"),
        Err(e) => e,
    }
}

#[test]
fn accepts_valid_client_ids() {
    let cases: &[(&str, &str, Option<u16>, bool)] = &[
        (
            "https://claude.ai/oauth/mcp-oauth-client-metadata",
            "claude.ai",
            None,
            false,
        ),
        (
            "https://chatgpt.com/oauth/client.json",
            "chatgpt.com",
            None,
            false,
        ),
        ("https://Example.COM/x", "example.com", None, false),
        ("https://a.com:8443/x", "a.com", Some(8443), false),
        ("https://a.com:443/x", "a.com", Some(443), false),
        ("https://a.com/x?v=1", "a.com", None, true),
        ("https://a.com/x?", "a.com", None, true),
        ("https://[::1]/x", "::1", None, false),
        (
            "https://[2001:DB8::1]:8443/x",
            "2001:db8::1",
            Some(8443),
            false,
        ),
        ("https://93.184.216.34/x", "93.184.216.34", None, false),
        ("https://a.com/x/", "a.com", None, false),
        ("https://a.com/.well-known/x", "a.com", None, false),
        ("https://a.com/x..y/...", "a.com", None, false),
        ("https://a.com/%7Euser/c.json", "a.com", None, false),
        ("https://a.com/x@y", "a.com", None, false),
    ];
    for &(raw, host, port, query) in cases {
        let id = ClientIdUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(id.as_str(), raw);
        assert_eq!(id.host(), host, "{raw}");
        assert_eq!(id.port(), port, "{raw}");
        assert_eq!(id.has_query(), query, "{raw}");
    }
}

#[test]
fn rejects_userinfo_in_client_id() {
    for raw in [
        "https://a.com@evil.com/x",
        "https://localhost@evil/x",
        "https://user:pw@a.com/x",
        "https://@a.com/x",
        "https://a.com:443@evil.com/x",
    ] {
        assert_eq!(err(raw), ClientIdError::Userinfo, "{raw}");
    }
}

#[test]
fn rejects_dot_segments_raw_and_percent_encoded() {
    for raw in [
        "https://a.com/./x",
        "https://a.com/../x",
        "https://a.com/a/..",
        "https://a.com/a/../b",
        "https://a.com/x/.",
        "https://a.com/x/..?q",
        "https://a.com/%2e/x",
        "https://a.com/%2E/x",
        "https://a.com/%2e%2e/x",
        "https://a.com/.%2e/x",
        "https://a.com/%2E./x",
        "https://a.com/..%2f/x",
        "https://a.com/x/..%2Fy",
        "https://a.com/x%2f..%2fy",
        "https://a.com/x/..%5cy",
        "https://a.com/public/..;/other/client.json",
        "https://a.com/x/..;jsessionid=1/y",
        "https://a.com/x/.;a/y",
        "https://a.com/x/%2e%2e;/y",
    ] {
        assert!(
            matches!(err(raw), ClientIdError::DotSegment { .. }),
            "{raw}"
        );
    }
}

#[test]
fn rejects_fragment_in_client_id() {
    for raw in [
        "https://a.com/x#f",
        "https://a.com/x#",
        "https://a.com/x?q#f",
    ] {
        assert_eq!(err(raw), ClientIdError::Fragment, "{raw}");
    }
}

#[test]
fn rejects_non_https_scheme() {
    for raw in [
        "http://a.com/x",
        "ftp://a.com/x",
        "a.com/x",
        "//a.com/x",
        "httpsx://a.com/x",
    ] {
        assert!(matches!(err(raw), ClientIdError::NotHttps { .. }), "{raw}");
    }
}

#[test]
fn rejects_uppercase_scheme() {
    for raw in ["HTTPS://a.com/x", "Https://a.com/x"] {
        assert_eq!(err(raw), ClientIdError::SchemeNotLowercase, "{raw}");
    }
}

#[test]
fn rejects_root_and_empty_path() {
    assert_eq!(err("https://a.com/"), ClientIdError::RootPath);
    assert_eq!(err("https://a.com"), ClientIdError::MissingPath);
    assert_eq!(err("https://a.com?x=1"), ClientIdError::MissingPath);
    assert_eq!(err("https://a.com:8443"), ClientIdError::MissingPath);
    assert_eq!(err("https://a.com/?x=1"), ClientIdError::RootPath);
}

#[test]
fn rejects_missing_host() {
    for raw in ["https:///x", "https://:443/x", "https://./x"] {
        assert_eq!(err(raw), ClientIdError::MissingHost, "{raw}");
    }
}

/// Review finding F-fetch-2: a single-label name resolves through search domains into the
/// local network; IP literals (judged by the address policy) and dotted names pass.
#[test]
fn rejects_single_label_hosts() {
    for raw in [
        "https://intranet/x.json",
        "https://localhost/x",
        "https://vault./x",
    ] {
        assert!(
            matches!(err(raw), ClientIdError::SingleLabelHost { .. }),
            "{raw}: {:?}",
            err(raw)
        );
    }
    for raw in [
        "https://app.example/x",
        "https://127.0.0.1/x",
        "https://[2001:db8::1]/x",
    ] {
        assert!(ClientIdUrl::parse(raw).is_ok(), "{raw}");
    }
}

#[test]
fn rejects_invalid_host() {
    for raw in [
        "https://a..com/x",
        "https://a_b!.com/x",
        "https://[::1/x",
        "https://[fe80::1%25eth0]/x",
        "https://[v1.x]/x",
        "https://[::1]x/x",
        "https://a.com:1:2/x",
    ] {
        let e = err(raw);
        assert!(
            matches!(
                e,
                ClientIdError::InvalidHost { .. } | ClientIdError::InvalidPort { .. }
            ),
            "{raw}: {e:?}"
        );
    }
}

#[test]
fn rejects_invalid_port() {
    for raw in [
        "https://a.com:/x",
        "https://a.com:0/x",
        "https://a.com:65536/x",
        "https://a.com:8x/x",
        "https://a.com:-1/x",
        "https://a.com:0443/x",
        "https://a.com:00/x",
    ] {
        assert!(
            matches!(err(raw), ClientIdError::InvalidPort { .. }),
            "{raw}"
        );
    }
    assert!(ClientIdUrl::parse("https://a.com:65535/x").is_ok());
    assert!(ClientIdUrl::parse("https://a.com:1/x").is_ok());
}

#[test]
fn rejects_backslash() {
    for raw in ["https://a.com\\@evil.com/x", "https://a.com/x\\..\\y"] {
        assert!(matches!(err(raw), ClientIdError::Backslash { .. }), "{raw}");
    }
}

#[test]
fn rejects_whitespace_and_control_characters() {
    for raw in [
        " https://a.com/x",
        "https://a.com/x ",
        "https://a.com/a b",
        "https://a.com/x\t",
        "https://a.com/x\n",
        "https://a.com/\u{0}x",
        "https://a.com/x\u{7f}",
        "https://a.com/\u{a0}x",
    ] {
        assert!(
            matches!(err(raw), ClientIdError::ControlOrWhitespace { .. }),
            "{raw:?}"
        );
    }
}

#[test]
fn rejects_invalid_characters() {
    for raw in [
        "https://a.com/<x>",
        "https://a.com/x\"",
        "https://bücher.de/x",
        "https://a.com/{x}",
        "https://a.com/x|y",
        "https://a.com/x^",
    ] {
        assert!(
            matches!(err(raw), ClientIdError::InvalidCharacter { .. }),
            "{raw}"
        );
    }
}

#[test]
fn rejects_malformed_percent_encoding() {
    for raw in ["https://a.com/%zz", "https://a.com/x%", "https://a.com/x%2"] {
        assert!(
            matches!(err(raw), ClientIdError::InvalidPercentEncoding { .. }),
            "{raw}"
        );
    }
}

#[test]
fn rejects_too_long_client_id() {
    let base = "https://a.com/";
    let at_limit = format!("{base}{}", "x".repeat(MAX_CLIENT_ID_LENGTH - base.len()));
    assert_eq!(at_limit.len(), 2048);
    assert!(ClientIdUrl::parse(&at_limit).is_ok());
    let over = format!("{at_limit}y");
    assert_eq!(err(&over), ClientIdError::TooLong { length: 2049 });
    assert!(err(&over).to_string().contains("2048"));
}

#[test]
fn rejects_urls_the_url_parser_rejects() {
    for raw in ["https://xn--a/x", "https://xn--/x"] {
        assert!(
            matches!(err(raw), ClientIdError::Unparseable { .. }),
            "{raw}"
        );
    }
}

#[test]
fn rejects_empty_client_id() {
    assert_eq!(err(""), ClientIdError::Empty);
}

#[test]
fn rejects_hosts_read_differently_by_url_parsers() {
    for raw in [
        "https://0x7f.1/x",
        "https://2130706433/x",
        "https://0177.0.0.1/x",
        "https://127.1/x",
    ] {
        assert!(
            matches!(err(raw), ClientIdError::AmbiguousHost { .. }),
            "{raw}"
        );
    }
}

#[test]
fn compares_client_ids_by_exact_string() {
    let a = ClientIdUrl::parse("https://a.com/x").unwrap();
    let b = ClientIdUrl::parse("https://a.com:443/x").unwrap();
    let c = ClientIdUrl::parse("https://A.com/x").unwrap();
    let d = ClientIdUrl::parse("https://a.com/x/").unwrap();
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d);
    assert_eq!(a, ClientIdUrl::parse("https://a.com/x").unwrap());
    assert_eq!(a.host(), c.host());
}

#[test]
fn serde_round_trips_and_validates() {
    let id: ClientIdUrl = serde_json::from_str("\"https://a.com:443/x\"").unwrap();
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        "\"https://a.com:443/x\""
    );
    assert!(serde_json::from_str::<ClientIdUrl>("\"https://u@a.com/x\"").is_err());
    assert_eq!(id.to_string(), "https://a.com:443/x");
    assert_eq!(id.as_ref(), "https://a.com:443/x");
}

#[test]
fn detects_url_client_ids_cheaply() {
    for (s, want) in [
        ("https://a.com/x", true),
        ("HTTPS://a.com/x", true),
        ("https://", true),
        ("http://a.com/x", false),
        ("3f2c1d2e-uuid", false),
        ("", false),
        ("httpsé", false),
    ] {
        assert_eq!(is_url_client_id(s), want, "{s}");
    }
}

#[test]
fn errors_name_the_rule() {
    assert!(err("https://u@a.com/x").to_string().contains("userinfo"));
    assert!(err("https://a.com/%2e%2e/x").to_string().contains("%2e%2e"));
    assert!(err("http://a.com/x").to_string().contains("`http`"));
}
