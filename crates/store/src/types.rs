//! Records kept by a [`Store`](crate::Store). All are serde-serialisable so every backend stores
//! the same bytes (JSON); times are `SystemTime` serialised as seconds since the Unix epoch.

use std::fmt;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};
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

/// A set of OAuth scopes (RFC 6749 §3.3): distinct scope tokens in the order first given,
/// carried on the wire and stored as one space-separated string. Parsing splits on any run of
/// ASCII whitespace (so `" offline_access"` from a real client is the one scope
/// `offline_access`) and drops repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Parse a `scope` parameter.
    pub fn parse(s: &str) -> Self {
        let mut out: Vec<String> = Vec::new();
        for t in s.split_ascii_whitespace() {
            if !out.iter().any(|o| o == t) {
                out.push(t.to_owned());
            }
        }
        Scopes(out)
    }

    /// From individual scope tokens (repeats dropped).
    pub fn from_tokens<I: IntoIterator<Item = S>, S: AsRef<str>>(tokens: I) -> Self {
        let mut out: Vec<String> = Vec::new();
        for t in tokens {
            let t = t.as_ref();
            if !t.is_empty() && !out.iter().any(|o| o == t) {
                out.push(t.to_owned());
            }
        }
        Scopes(out)
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Scopes) -> bool {
        self.0.iter().all(|s| other.contains(s))
    }

    /// The first scope of `self` that `other` lacks.
    pub fn first_missing_from<'a>(&'a self, other: &Scopes) -> Option<&'a str> {
        self.0
            .iter()
            .map(String::as_str)
            .find(|s| !other.contains(s))
    }

    /// The scopes of `self` that are also in `other`, in `self`'s order.
    pub fn intersection(&self, other: &Scopes) -> Scopes {
        Scopes(
            self.0
                .iter()
                .filter(|s| other.contains(s))
                .cloned()
                .collect(),
        )
    }

    /// No scope at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scope tokens.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Scopes::parse(&s))
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

/// What the user approved, bound to an authorization code and carried unchanged by every
/// refresh token of the family the code starts (OAuth 2.1 §4.1.3, §4.3; RFC 8707 §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// The client (exact client_id string).
    pub client_id: String,
    /// CIMD or DCR.
    pub client_kind: ClientKind,
    /// The user.
    pub subject: String,
    /// Granted scopes.
    pub scope: Scopes,
    /// The RFC 8707 resource: the audience of every access token of the grant.
    pub resource: String,
    /// The token family (one per code exchange); code or refresh reuse revokes all of it.
    pub family_id: String,
    /// The CIMD document the user approved; `None` for DCR clients.
    pub document: Option<DocumentBinding>,
    /// Reference to the user's sealed IdP tokens, after an IdP sign-in.
    pub idp_ref: Option<String>,
    /// When the user approved it: the grant ends a fixed time after this, however often it is
    /// refreshed. `None` for grants stored before this was recorded.
    #[serde(default, with = "unix_secs_opt")]
    pub created_at: Option<SystemTime>,
}

/// The CIMD document a grant was approved with: its digest, and the part of it a changed
/// document may not alter without a new authorization (the token endpoint auth method).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentBinding {
    /// SHA-256 (hex) of the validated document, computed once where it is validated.
    pub digest: String,
    /// Its `token_endpoint_auth_method` (`none`, `private_key_jwt`).
    pub auth_method: String,
}

/// An authorization code's record: the grant plus what the code exchange must repeat
/// (redirect URI, PKCE challenge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "legacy::CodeWire")]
pub struct CodeRecord {
    /// What was approved.
    pub grant: Grant,
    /// The redirect URI used at /authorize (must be repeated exactly at /token when sent).
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// When the user authenticated.
    #[serde(with = "unix_secs")]
    pub auth_time: SystemTime,
    /// Expiry (≤ 60 s after issue).
    #[serde(with = "unix_secs")]
    pub expires_at: SystemTime,
}

/// A refresh token's record: the grant it continues. Refresh tokens are opaque; the record
/// holds everything needed to issue the next access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "legacy::RefreshWire")]
pub struct RefreshRecord {
    /// What was approved (the refresh token keeps the grant's whole scope).
    pub grant: Grant,
    /// When this token was issued.
    #[serde(with = "unix_secs")]
    pub issued_at: SystemTime,
    /// Expiry.
    #[serde(with = "unix_secs")]
    pub expires_at: SystemTime,
}

/// Reading records written before [`Grant`] existed (flat fields and the whole document
/// JSON), so codes and refresh tokens issued by an older version keep working after an upgrade.
/// One pass: the wire struct accepts both layouts and the conversion picks one.
mod legacy {
    use std::time::SystemTime;

    use serde::Deserialize;

    use super::{ClientKind, CodeRecord, DocumentBinding, Grant, RefreshRecord, Scopes, unix_secs};

    /// A wire struct with the current `grant` and the flat fields of the first layout, plus
    /// the record's own fields. (Not `#[serde(flatten)]`: that buffers every record read.)
    macro_rules! wire {
        ($name:ident { $($field:ident: $ty:ty $(= $with:literal)?),* $(,)? }) => {
            #[derive(Deserialize)]
            pub(super) struct $name {
                grant: Option<Grant>,
                client_id: Option<String>,
                client_kind: Option<ClientKind>,
                subject: Option<String>,
                scope: Option<Scopes>,
                resource: Option<String>,
                family_id: Option<String>,
                document_hash: Option<String>,
                document_snapshot: Option<String>,
                upstream_ref: Option<String>,
                $($(#[serde(with = $with)])? $field: $ty,)*
            }

            impl $name {
                fn take_grant(&mut self) -> Result<Grant, String> {
                    FlatGrant {
                        client_id: self.client_id.take(),
                        client_kind: self.client_kind.take(),
                        subject: self.subject.take(),
                        scope: self.scope.take(),
                        resource: self.resource.take(),
                        family_id: self.family_id.take(),
                        document_hash: self.document_hash.take(),
                        document_snapshot: self.document_snapshot.take(),
                        upstream_ref: self.upstream_ref.take(),
                    }
                    .into_grant(self.grant.take())
                }
            }
        };
    }

    struct FlatGrant {
        client_id: Option<String>,
        client_kind: Option<ClientKind>,
        subject: Option<String>,
        scope: Option<Scopes>,
        resource: Option<String>,
        family_id: Option<String>,
        document_hash: Option<String>,
        document_snapshot: Option<String>,
        upstream_ref: Option<String>,
    }

    impl FlatGrant {
        fn into_grant(self, current: Option<Grant>) -> Result<Grant, String> {
            if let Some(g) = current {
                return Ok(g);
            }
            let missing = |f: &str| format!("record has neither `grant` nor `{f}`");
            // The auth method was only kept inside the document snapshot; a snapshot that says
            // nothing means the draft's default, `none`.
            let auth_method = self
                .document_snapshot
                .as_deref()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|v| {
                    v.get("token_endpoint_auth_method")
                        .and_then(|m| m.as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| "none".to_owned());
            Ok(Grant {
                client_id: self.client_id.ok_or_else(|| missing("client_id"))?,
                client_kind: self.client_kind.ok_or_else(|| missing("client_kind"))?,
                subject: self.subject.ok_or_else(|| missing("subject"))?,
                scope: self.scope.unwrap_or_default(),
                resource: self.resource.ok_or_else(|| missing("resource"))?,
                family_id: self.family_id.ok_or_else(|| missing("family_id"))?,
                document: self.document_hash.map(|digest| DocumentBinding {
                    digest,
                    auth_method,
                }),
                idp_ref: self.upstream_ref,
                created_at: None,
            })
        }
    }

    wire!(CodeWire {
        redirect_uri: String,
        code_challenge: String,
        auth_time: SystemTime = "unix_secs",
        expires_at: SystemTime = "unix_secs",
    });

    impl TryFrom<CodeWire> for CodeRecord {
        type Error = String;
        fn try_from(mut w: CodeWire) -> Result<Self, String> {
            Ok(CodeRecord {
                grant: w.take_grant()?,
                redirect_uri: w.redirect_uri,
                code_challenge: w.code_challenge,
                auth_time: w.auth_time,
                expires_at: w.expires_at,
            })
        }
    }

    wire!(RefreshWire {
        issued_at: SystemTime = "unix_secs",
        expires_at: SystemTime = "unix_secs",
    });

    impl TryFrom<RefreshWire> for RefreshRecord {
        type Error = String;
        fn try_from(mut w: RefreshWire) -> Result<Self, String> {
            Ok(RefreshRecord {
                grant: w.take_grant()?,
                issued_at: w.issued_at,
                expires_at: w.expires_at,
            })
        }
    }
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
    /// The resource (RFC 8707) the decision was for; a decision applies to that resource only.
    /// `None` in decisions stored before resources were recorded: they apply to none.
    #[serde(default)]
    pub resource: Option<String>,
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
    /// Until when an unused registration is kept: set at registration, cleared once the client
    /// completes its first code exchange. Reads treat an expired registration as absent and the
    /// store deletes it (review finding M8: registrations must not accumulate forever). `None`:
    /// kept (used, or registered before this was recorded).
    #[serde(
        default,
        with = "unix_secs_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<SystemTime>,
}

/// A token-signing key pair, stored so every instance and every restart signs with the same key.
/// The private key is a secret: redacted in `Debug`, written only to the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// Key id published in the JWKS and token headers.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// PKCS#8 DER private key, base64 (standard alphabet).
    #[serde(serialize_with = "expose_secret")]
    pub private_pkcs8_b64: SecretString,
    /// Creation time.
    #[serde(with = "unix_secs")]
    pub created_at: SystemTime,
}

impl PartialEq for SigningKeyRecord {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid
            && self.alg == other.alg
            && self.private_pkcs8_b64.expose_secret() == other.private_pkcs8_b64.expose_secret()
            && self.created_at == other.created_at
    }
}

/// The store is where this secret is meant to go: `secrecy` serialises nothing by itself.
fn expose_secret<S: serde::Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.expose_secret())
}

/// [`unix_secs`] for an `Option<SystemTime>`.
pub mod unix_secs_opt {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialise.
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())),
            None => s.serialize_none(),
        }
    }

    /// Deserialise.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(|secs| UNIX_EPOCH + Duration::from_secs(secs)))
    }
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
    fn scopes_parse_dedupe_and_round_trip_as_one_string() {
        let s = Scopes::parse("  offline_access\tmcp  mcp read ");
        assert_eq!(s.to_string(), "offline_access mcp read");
        assert!(s.contains("mcp") && !s.contains("admin"));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#""offline_access mcp read""#);
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), s);
        let small = Scopes::parse("read mcp");
        assert!(small.is_subset_of(&s) && !s.is_subset_of(&small));
        assert_eq!(s.first_missing_from(&small), Some("offline_access"));
        assert_eq!(s.intersection(&small).to_string(), "mcp read");
        assert!(Scopes::parse(" ").is_empty());
    }

    #[test]
    fn records_of_the_flat_layout_still_read() {
        let code = r#"{"client_id":"https://c.test/x","client_kind":"cimd",
            "redirect_uri":"http://127.0.0.1/cb","code_challenge":"ch","resource":"http://r/mcp",
            "scope":"mcp read","subject":"alice","family_id":"f1","document_hash":"d1",
            "document_snapshot":"{\"token_endpoint_auth_method\":\"private_key_jwt\"}",
            "upstream_ref":"u1","auth_time":5,"expires_at":6}"#;
        let c: CodeRecord = serde_json::from_str(code).unwrap();
        assert_eq!(c.grant.client_id, "https://c.test/x");
        assert_eq!(c.grant.scope.to_string(), "mcp read");
        assert_eq!(
            c.grant.document,
            Some(DocumentBinding {
                digest: "d1".into(),
                auth_method: "private_key_jwt".into()
            })
        );
        assert_eq!(c.grant.idp_ref.as_deref(), Some("u1"));
        // Written back in the current layout, read back the same.
        let again: CodeRecord = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        let rt = r#"{"family_id":"f1","client_id":"dcr_a","client_kind":"dcr","subject":"bob",
            "scope":"mcp","resource":"http://r/mcp","document_hash":null,"document_snapshot":null,
            "upstream_ref":null,"issued_at":1,"expires_at":2}"#;
        let r: RefreshRecord = serde_json::from_str(rt).unwrap();
        assert_eq!(
            (r.grant.subject.as_str(), r.grant.document.is_none()),
            ("bob", true)
        );
        assert!(
            serde_json::from_str::<RefreshRecord>(r#"{"issued_at":1,"expires_at":2}"#).is_err()
        );
    }

    #[test]
    fn signing_key_records_redact_the_private_key_but_store_it() {
        let rec = SigningKeyRecord {
            kid: "k1".into(),
            alg: "EdDSA".into(),
            private_pkcs8_b64: "TOP-SECRET-KEY".to_owned().into(),
            created_at: UNIX_EPOCH,
        };
        assert!(!format!("{rec:?}").contains("TOP-SECRET-KEY"));
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.contains("TOP-SECRET-KEY"), "{json}");
        assert_eq!(
            serde_json::from_str::<SigningKeyRecord>(&json).unwrap(),
            rec
        );
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
