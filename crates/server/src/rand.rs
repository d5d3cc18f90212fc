//! Randomness for everything this server mints: ids, CSRF bindings, PKCE and `state` toward the
//! IdP, DCR credentials, authorization codes and refresh tokens. One source (aws-lc-rs, seeded
//! by the OS), one rule: a random value that cannot be produced is never replaced by a weaker
//! one.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Fill `buf` from the system RNG.
fn fill(buf: &mut [u8]) {
    // aws-lc's RNG fails only when the OS entropy source is broken. A predictable token or key
    // must never be handed out, and no request could succeed without randomness, so that is
    // fatal for the process rather than an error for one request.
    if aws_lc_rs::rand::fill(buf).is_err() {
        tracing::error!("system random number generator failed");
        std::process::abort();
    }
}

/// `n` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    fill(&mut buf);
    buf
}

/// `n` random bytes, base64url without padding.
pub fn token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fill(&mut buf);
    URL_SAFE_NO_PAD.encode(&buf)
}

/// A new ordered token: 192 random bits behind a time prefix, so that store keys sort by issue
/// time (see [`cimdgate_store::ORDERED_TOKEN_VERSION`]). Authorization codes and refresh tokens.
pub fn ordered_token() -> String {
    cimdgate_store::TokenHash::ordered_token(SystemTime::now(), &bytes::<24>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cimdgate_store::TokenHash;

    #[test]
    fn ordered_tokens_are_unique_and_sort_by_issue_time() {
        let minted: Vec<String> = (0..200).map(|_| ordered_token()).collect();
        let unique: std::collections::HashSet<&String> = minted.iter().collect();
        assert_eq!(unique.len(), minted.len());
        let keys: Vec<String> = minted.iter().map(|t| TokenHash::of(t).0).collect();
        for (t, k) in minted.iter().zip(&keys) {
            assert_eq!(t.len(), 44, "{t}");
            assert_eq!(k.len(), 16 + 64, "time prefix + SHA-256: {k}");
        }
        // Minted one after another: the time prefixes never go backwards.
        assert!(keys.windows(2).all(|w| w[0][..16] <= w[1][..16]));
    }

    #[test]
    fn tokens_have_the_requested_entropy() {
        assert_eq!(token(16).len(), 22);
        assert_eq!(token(32).len(), 43);
        assert_ne!(token(16), token(16));
    }
}
