//! Records kept by a [`Store`](crate::Store). All are serde-serialisable so every backend stores
//! the same bytes (JSON); times are `SystemTime` serialised as seconds since the Unix epoch.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// SHA-256 of a token, code or secret value, hex-encoded. The store never sees raw values.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenHash(pub String);

impl TokenHash {
    /// Hash a raw token value.
    pub fn of(raw: &str) -> Self {
        use sha2::Digest;
        TokenHash(hex(&sha2::Sha256::digest(raw.as_bytes())))
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

/// An authorization code's binding (SPEC §4: client_id, redirect_uri, PKCE challenge, resource,
/// scopes, user, and the document snapshot).
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

/// A CIMD client seen by this installation (inventory, SPEC §1 user 3).
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
