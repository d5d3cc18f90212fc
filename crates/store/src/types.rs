//! Records kept by a [`Store`](crate::Store). All are serde-serialisable so every backend stores
//! the same bytes (JSON); times are `SystemTime` serialised as seconds since the Unix epoch.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The store key of a token, code or secret: its SHA-256, hex-encoded — preceded, for an
/// [ordered token](ORDERED_TOKEN_VERSION), by the hex of its 8-byte time prefix. The store never
/// sees raw values.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenHash(pub String);

/// First byte of an *ordered token*: 33 bytes, base64url without padding (44 characters) —
/// this version byte, 8 bytes of issue time (big-endian nanoseconds since the Unix epoch), then
/// 24 random bytes (192 bits, the token's whole secret). Authorization codes and refresh tokens
/// are minted this way so that their keys sort by issue time: the records one group commit
/// writes sit side by side in the B-tree instead of on a random leaf each, which cut page writes
/// per commit from about 45 to 14 and raised durable `/token` throughput by half
/// (docs/benchmarks.md). The time prefix is not secret and is no part of the guessing space.
pub const ORDERED_TOKEN_VERSION: u8 = 1;
/// Length in bytes of an ordered token before base64url encoding.
pub const ORDERED_TOKEN_LEN: usize = 33;

impl TokenHash {
    /// The key of a raw token value. Any value that is not an ordered token (client secrets,
    /// tokens minted before ordered tokens existed, whatever a client sends) keys by its
    /// SHA-256 alone; an attacker-chosen prefix only chooses where a lookup misses.
    pub fn of(raw: &str) -> Self {
        use base64::Engine;
        use sha2::Digest;
        let digest = hex(&sha2::Sha256::digest(raw.as_bytes()));
        let prefix = (raw.len() == 44)
            .then(|| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(raw)
                    .ok()
            })
            .flatten()
            .filter(|b| b.len() == ORDERED_TOKEN_LEN && b[0] == ORDERED_TOKEN_VERSION);
        match prefix {
            Some(b) => TokenHash(format!("{}{digest}", hex(&b[1..9]))),
            None => TokenHash(digest),
        }
    }

    /// An ordered token (see [`ORDERED_TOKEN_VERSION`]) issued at `issued` with the secret
    /// `random`.
    pub fn ordered_token(issued: SystemTime, random: &[u8; 24]) -> String {
        use base64::Engine;
        let nanos = issued
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let mut raw = [0u8; ORDERED_TOKEN_LEN];
        raw[0] = ORDERED_TOKEN_VERSION;
        raw[1..9].copy_from_slice(&nanos.to_be_bytes());
        raw[9..].copy_from_slice(random);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }
    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parse lower- or upper-case hex; `None` if malformed.
pub(crate) fn from_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

/// Lower-case hex encoding of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not secret, but keep logs short.
        write!(f, "TokenHash({}…)", self.0.get(..8).unwrap_or(&self.0))
    }
}

/// What kind of client a record belongs to (draft §7.1: an explicit discriminator, never the
/// `https://` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Identified by a Client ID Metadata Document URL.
    Cimd,
    /// Registered through `/register` (RFC 7591).
    Dcr,
}

/// An authorization code's binding (docs/architecture.md, *Authorization server*: client_id,
/// redirect_uri, PKCE challenge, resource, scopes, user, and the document snapshot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The client the code was issued to (exact string).
    pub client_id: String,
    /// CIMD or DCR.
    pub client_kind: ClientKind,
    /// The redirect URI used at /authorize (must be repeated exactly at /token).
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// RFC 8707 resource the token will be bound to.
    pub resource: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The authenticated user.
    pub subject: String,
    /// The token family this code starts; reuse of the code revokes it.
    pub family_id: String,
    /// SHA-256 (hex) of the validated document the user approved; `None` for DCR clients.
    pub document_hash: Option<String>,
    /// The validated document (JSON) the user approved; `None` for DCR clients.
    pub document_snapshot: Option<String>,
    /// Reference to encrypted upstream tokens, in upstream identity mode.
    pub upstream_ref: Option<String>,
    /// When the user authenticated.
    #[serde(with = "unix_secs")]
    pub auth_time: SystemTime,
    /// Expiry (≤ 60 s after issue).
    #[serde(with = "unix_secs")]
    pub expires_at: SystemTime,
}

/// A refresh token's record. Refresh tokens are opaque; the record holds everything needed
/// to issue the next access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// The family (one per code exchange); reuse of a spent member revokes all of it.
    pub family_id: String,
    /// The client (exact string).
    pub client_id: String,
    /// CIMD or DCR.
    pub client_kind: ClientKind,
    /// The user.
    pub subject: String,
    /// Scopes, space-separated.
    pub scope: String,
    /// The resource (token audience).
    pub resource: String,
    /// SHA-256 of the document approved at /authorize (CIMD clients).
    pub document_hash: Option<String>,
    /// The approved document snapshot (CIMD clients).
    pub document_snapshot: Option<String>,
    /// Reference to encrypted upstream tokens.
    pub upstream_ref: Option<String>,
    /// When this token was issued.
    #[serde(with = "unix_secs")]
    pub issued_at: SystemTime,
    /// Expiry.
    #[serde(with = "unix_secs")]
    pub expires_at: SystemTime,
}

/// A remembered consent decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// The user.
    pub subject: String,
    /// The client (exact string).
    pub client_id: String,
    /// Approved or denied.
    pub approved: bool,
    /// Scopes the decision covers, space-separated.
    pub scope: String,
    /// Redirect URI host(s) the user saw, so a changed redirect asks again.
    pub redirect_uri: String,
    /// Hash of the document shown, so a changed document asks again.
    pub document_hash: Option<String>,
    /// When decided.
    #[serde(with = "unix_secs")]
    pub decided_at: SystemTime,
    /// Until when the decision is remembered.
    #[serde(with = "unix_secs")]
    pub expires_at: SystemTime,
}

/// A client registered through `/register` (RFC 7591).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredClient {
    /// Locally issued id; never starts with `https://` (draft §7.1).
    pub client_id: String,
    /// SHA-256 / argon2 hash of the client secret (confidential clients only).
    pub secret_hash: Option<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// Registered redirect URIs (exact strings).
    pub redirect_uris: Vec<String>,
    /// Display name.
    pub client_name: Option<String>,
    /// Grant types.
    pub grant_types: Vec<String>,
    /// Scopes the client may request, space-separated.
    pub scope: Option<String>,
    /// Registration time.
    #[serde(with = "unix_secs")]
    pub created_at: SystemTime,
}

/// A token-signing key pair, stored so every instance and every restart signs with the same key.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// Key id published in the JWKS and token headers.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// PKCS#8 DER private key, base64 (standard alphabet).
    pub private_pkcs8_b64: String,
    /// Creation time.
    #[serde(with = "unix_secs")]
    pub created_at: SystemTime,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_pkcs8_b64", &"<redacted>")
            .finish()
    }
}

/// A CIMD client seen by this installation (inventory, docs/architecture.md, *Audit and logging*).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenClient {
    /// The client_id URL.
    pub client_id: String,
    /// Its declared name at first sight.
    pub client_name: Option<String>,
    /// First time seen.
    #[serde(with = "unix_secs")]
    pub first_seen: SystemTime,
    /// Last time seen.
    #[serde(with = "unix_secs")]
    pub last_seen: SystemTime,
}

/// Serialise `SystemTime` as whole seconds since the Unix epoch (times before 1970 clamp to 0).
pub mod unix_secs {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialise.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        s.serialize_u64(secs)
    }

    /// Deserialise.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let secs = u64::deserialize(d)?;
        Ok(UNIX_EPOCH + Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::time::{Duration, UNIX_EPOCH};

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn sha(raw: &str) -> String {
        use sha2::Digest;
        hex(&sha2::Sha256::digest(raw.as_bytes()))
    }

    #[test]
    fn ordered_tokens_key_by_issue_time_then_hash() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = TokenHash::ordered_token(t0, &[7; 24]);
        let b = TokenHash::ordered_token(t0 + Duration::from_nanos(1), &[0; 24]);
        let c = TokenHash::ordered_token(t0 + Duration::from_secs(3600), &[255; 24]);
        assert_eq!(a.len(), 44);
        let raw = B64.decode(&a).unwrap();
        assert_eq!(
            (raw.len(), raw[0]),
            (ORDERED_TOKEN_LEN, ORDERED_TOKEN_VERSION)
        );
        assert_eq!(&raw[9..], &[7; 24], "the random part is kept whole");
        let (ka, kb, kc) = (TokenHash::of(&a), TokenHash::of(&b), TokenHash::of(&c));
        assert!(ka.0 < kb.0 && kb.0 < kc.0, "keys sort by issue time");
        assert_eq!(ka.0, format!("{}{}", hex(&raw[1..9]), sha(&a)));
        assert_eq!(TokenHash::of(&a), ka, "deterministic");
    }

    #[test]
    fn everything_else_keys_by_hash_alone() {
        let plain32 = B64.encode([1u8; 32]); // secrets and tokens minted before ordered tokens
        let mut wrong_version = [0u8; ORDERED_TOKEN_LEN];
        wrong_version[0] = 2;
        let wrong_version = B64.encode(wrong_version);
        let ordered = TokenHash::ordered_token(UNIX_EPOCH, &[3; 24]);
        let cases = [
            "".to_owned(),
            "rt".to_owned(),
            plain32,
            wrong_version,
            format!("{ordered}="),          // padded: not the canonical form
            format!("{}*", &ordered[..43]), // not base64url
            ordered[..43].to_owned(),
        ];
        for raw in cases {
            assert_eq!(TokenHash::of(&raw).0, sha(&raw), "{raw:?}");
        }
    }
}
