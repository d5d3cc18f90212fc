//! The gateway's upstream path builder (`Proxy::upstream_url` behind `check_rest_path`,
//! crates/gateway/src/proxy.rs; RFC 3986 §5.2.4) on any request path and query.
//!
//! Input: a mode byte choosing the resource (path and upstream base), then the request path,
//! optionally `?query`. Invariants: the path is refused, or the upstream URL stays on the
//! upstream's origin and under its base path — also once the upstream percent-decodes it,
//! reads `\` as `/` and drops `;` parameters — with no dot segment left, and the query as sent.
#![no_main]

use std::sync::LazyLock;

use cimdgate_gateway::fuzzing::PathBuilder;
use libfuzzer_sys::fuzz_target;
use url::Url;

/// (resource path on the gateway, upstream URL, the upstream's base path).
const RESOURCES: [(&str, &str, &str); 3] = [
    ("/mcp", "http://127.0.0.1:9/base/mcp", "/base/mcp"),
    ("/a", "http://127.0.0.1:9/a/", "/a"),
    ("/tools/", "http://127.0.0.1:9/", ""),
];

static BUILDERS: LazyLock<Vec<PathBuilder>> = LazyLock::new(|| {
    RESOURCES
        .iter()
        .map(|(path, upstream, _)| {
            PathBuilder::new(path, Url::parse(upstream).expect("valid")).expect("a client")
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let which = usize::from(mode) % RESOURCES.len();
    let (resource_path, _, base) = RESOURCES[which];
    // Half the inputs are made to start with the resource path, as routed requests do.
    let path = if mode & 0x80 != 0 {
        format!("{}{text}", resource_path.trim_end_matches('/'))
    } else {
        text.to_owned()
    };
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q)),
        None => (path.clone(), None),
    };
    let Ok(url) = BUILDERS[which].upstream_url(&path, query) else {
        return;
    };
    assert_eq!(
        url.origin().ascii_serialization(),
        "http://127.0.0.1:9",
        "{path:?} → {url}"
    );
    let decoded = percent_encoding::percent_decode_str(url.path())
        .decode_utf8_lossy()
        .replace('\\', "/");
    assert!(
        decoded == base
            || decoded == format!("{base}/")
            || decoded.starts_with(&format!("{base}/")),
        "{path:?} → {url} leaves {base:?}"
    );
    for segment in decoded.split('/') {
        let name = segment.split(';').next().unwrap_or("");
        assert!(
            name != "." && name != "..",
            "{path:?} → {url} has a dot segment"
        );
    }
    if url.query().is_some() {
        assert!(query.is_some(), "{path:?} → {url} gained a query");
    }
});
