//! `cimd::ClientIdUrl::parse` (draft §3 and the product rules, crates/cimd/src/client_id.rs) on
//! any string. A string it accepts must read the same to a WHATWG URL parser (https, a host,
//! no userinfo, no fragment, a path other than `/`), re-serialise to exactly itself, and
//! survive the serde round trip the stores use.
#![no_main]

use cimd::ClientIdUrl;
use cimd::client_id::{MAX_CLIENT_ID_LENGTH, is_url_client_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(id) = ClientIdUrl::parse(raw) else {
        return;
    };
    // Simple string comparison (draft §3): the identifier is exactly the input.
    assert_eq!(id.as_str(), raw);
    assert_eq!(id.to_string(), raw);
    assert!(is_url_client_id(raw));
    assert!(raw.len() <= MAX_CLIENT_ID_LENGTH);
    assert!(!raw.contains(['#', '\\', ' ']), "{raw:?}");
    assert_eq!(ClientIdUrl::parse(id.as_str()).as_ref(), Ok(&id));

    // The secondary parser agrees with our reading.
    let url = url::Url::parse(raw).expect("an accepted client_id is a URL");
    assert_eq!(url.scheme(), "https", "{raw:?}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{raw:?}"
    );
    assert!(url.fragment().is_none(), "{raw:?}");
    assert!(url.path() != "/" && !url.path().is_empty(), "{raw:?}");
    assert_eq!(url.port(), id.port().filter(|p| *p != 443), "{raw:?}");
    let host = url.host_str().expect("an accepted client_id has a host");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match (
        host.parse::<std::net::Ipv6Addr>(),
        id.host().parse::<std::net::Ipv6Addr>(),
    ) {
        (Ok(theirs), Ok(ours)) => assert_eq!(theirs, ours, "{raw:?}"),
        _ => assert_eq!(host, id.host(), "{raw:?}"),
    }
    // No dot segment survived: the parser did not have to remove any.
    let decoded = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
    assert!(decoded.split('/').all(|s| s != "." && s != ".."), "{raw:?}");
    assert_eq!(id.has_query(), raw.contains('?'));

    // The serde form the stores keep.
    let json = serde_json::to_string(&id).expect("a string serialises");
    let back: ClientIdUrl = serde_json::from_str(&json).expect("its own serialisation parses");
    assert_eq!(back, id);
});
