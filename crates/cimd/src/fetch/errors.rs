//! Turning a `reqwest::Error` into the precise [`FetchError`] variant.
//!
//! reqwest reports a refused DNS answer as a generic "error sending request". The real cause
//! (our [`ResolveFailure`], a `rustls::Error`, an `io::Error`) sits somewhere in the
//! `std::error::Error::source()` chain, sometimes inside an `io::Error` whose `source()` skips
//! the wrapped error. [`classify`] walks the chain, looking inside `io::Error`s too.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use super::FetchError;
use super::resolver::ResolveFailure;

/// Upper bound on the source-chain walk (a cycle-safe bound; real chains are < 10 deep).
const MAX_CHAIN_DEPTH: usize = 32;

/// Every error in the chain starting at `err`, including errors wrapped by `io::Error`.
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        if out.len() >= MAX_CHAIN_DEPTH {
            break;
        }
        out.push(e);
        next = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    out
}

/// The innermost message, for "connect failed: …" style errors.
pub(crate) fn root_message(err: &(dyn StdError + 'static)) -> String {
    chain(err)
        .last()
        .map(|e| e.to_string())
        .unwrap_or_else(|| err.to_string())
}

/// Maps a reqwest error raised while connecting/sending/reading for `host`.
///
/// `connect_limit` / `total_limit` are reported in a [`FetchError::Timeout`].
pub(crate) fn classify(
    err: &reqwest::Error,
    host: &str,
    url: &str,
    connect_limit: Duration,
    total_limit: Duration,
) -> FetchError {
    let links = chain(err);
    for e in &links {
        if let Some(failure) = e.downcast_ref::<ResolveFailure>() {
            return match failure.clone() {
                ResolveFailure::Blocked { host, blocked } => {
                    FetchError::BlockedAddress { host, blocked }
                }
                ResolveFailure::Dns { host, message } => FetchError::Dns { host, message },
                ResolveFailure::NoAddresses { host } => FetchError::NoAddresses { host },
            };
        }
    }
    if err.is_timeout()
        || links.iter().any(|e| {
            e.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        })
    {
        return FetchError::Timeout {
            url: url.to_string(),
            phase: if err.is_connect() {
                "connect"
            } else {
                "response"
            },
            limit: if err.is_connect() {
                connect_limit
            } else {
                total_limit
            },
        };
    }
    if let Some(tls) = links.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return FetchError::Tls {
            host: host.to_string(),
            message: tls.to_string(),
        };
    }
    if err.is_connect() {
        return FetchError::Connect {
            host: host.to_string(),
            message: root_message(err),
        };
    }
    FetchError::Io {
        message: format!("{url}: {}", root_message(err)),
    }
}
