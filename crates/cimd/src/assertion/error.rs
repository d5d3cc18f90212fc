//! Errors of the assertion module: one variant per rule, each naming the claim, header member or
//! key it is about, so an operator (or the client's developer) can act on it.

use std::time::Duration;

use crate::fetch::FetchError;

/// Why a replay store could not record a `jti`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayStoreError {
    /// The store holds its maximum number of live entries. New assertions are refused rather than
    /// evicting live entries, because evicting a live `jti` would let that assertion be replayed.
    #[error(
        "replay store is full ({capacity} unexpired jti entries); refusing the assertion rather \
         than evicting a live entry (that would re-open replay); retry shortly"
    )]
    Full {
        /// Configured total capacity.
        capacity: usize,
    },
    /// One client holds its maximum number of live entries (a per-client cap, so one client
    /// cannot fill the store and lock every other client out).
    #[error(
        "replay store holds {capacity} unexpired jti entries for client {client_id}; refusing \
         more assertions from this client until some expire"
    )]
    ClientFull {
        /// The client that hit its cap.
        client_id: String,
        /// Configured per-client capacity.
        capacity: usize,
    },
    /// A shared backend (Redis, SQL, …) failed.
    #[error("replay store backend error: {0}")]
    Backend(String),
}

/// Why a client assertion (RFC 7523 §3) was rejected.
///
/// Every variant maps to the OAuth error `invalid_client` ([`AssertionError::oauth_error`]); the
/// authorization server answers 401 (RFC 6749 §5.2).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AssertionError {
    /// The client's document does not declare `token_endpoint_auth_method: private_key_jwt`.
    #[error(
        "client {client_id} does not declare token_endpoint_auth_method \"private_key_jwt\" in its \
         metadata document, so it cannot authenticate with a client assertion"
    )]
    NotPrivateKeyJwtClient {
        /// The client.
        client_id: String,
    },
    /// The assertion is longer than [`super::MAX_ASSERTION_BYTES`].
    #[error("client_assertion is {len} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Received length.
        len: usize,
        /// Limit.
        limit: usize,
    },
    /// Not a JWS in compact serialization (three base64url parts).
    #[error("client_assertion is not a signed JWT (JWS compact serialization): {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The protected header is not valid base64url JSON, or a member has the wrong type.
    #[error("client_assertion header is invalid: {reason}")]
    InvalidHeader {
        /// What is wrong.
        reason: String,
    },
    /// Header `alg` is `none`.
    #[error("client_assertion header alg is \"none\"; unsigned assertions are never accepted")]
    AlgNone,
    /// Header `alg` is an HMAC algorithm.
    #[error(
        "client_assertion header alg {alg} is a shared-secret (HMAC) algorithm; a CIMD client must \
         sign with a private key (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA)"
    )]
    AlgHmac {
        /// The header alg.
        alg: String,
    },
    /// Header `alg` is not in the allow-list.
    #[error(
        "client_assertion header alg {alg:?} is not supported; use one of RS256, RS384, RS512, \
         PS256, PS384, PS512, ES256, ES384, EdDSA"
    )]
    AlgUnsupported {
        /// The header alg.
        alg: String,
    },
    /// Header `alg` differs from the document's `token_endpoint_auth_signing_alg`.
    #[error(
        "client_assertion header alg {alg} differs from token_endpoint_auth_signing_alg {registered} \
         in the client's metadata document"
    )]
    AlgNotRegistered {
        /// The header alg.
        alg: String,
        /// The document's value.
        registered: String,
    },
    /// The header has a `crit` member (RFC 7515 §4.1.11); we understand no extensions.
    #[error(
        "client_assertion header has crit {names:?}; no critical header extensions are supported"
    )]
    CritUnsupported {
        /// The listed extension names (empty when `crit` is not an array of strings).
        names: Vec<String>,
    },
    /// The document has neither `jwks` nor `jwks_uri`.
    #[error(
        "client {client_id} declares private_key_jwt but its document has neither jwks nor jwks_uri"
    )]
    NoKeySource {
        /// The client.
        client_id: String,
    },
    /// The key set has no usable signing key (only `oct`, unsupported curves, `use: enc` …).
    #[error(
        "the key set from {source_name} has no usable public signing key (RSA, EC P-256/P-384, OKP Ed25519)"
    )]
    NoUsableKeys {
        /// `jwks` or the `jwks_uri` URL.
        source_name: String,
    },
    /// The header has no `kid` and the key set has several keys.
    #[error(
        "client_assertion header has no kid, but the key set from {source_name} has {count} keys; \
         a kid is required to pick one"
    )]
    KidRequired {
        /// `jwks` or the `jwks_uri` URL.
        source_name: String,
        /// Number of usable keys.
        count: usize,
    },
    /// The header `kid` is not in the key set.
    #[error("unknown kid {kid:?}: no key with this kid in the key set from {source_name}")]
    UnknownKid {
        /// The header kid.
        kid: String,
        /// `jwks` or the `jwks_uri` URL.
        source_name: String,
    },
    /// The header `kid` is not in the `jwks_uri` key set and it was refreshed too recently to
    /// fetch again ([`super::JWKS_REFRESH_MIN_INTERVAL`]).
    #[error(
        "unknown kid {kid:?}: not in the key set from {uri}; key set refreshed less than {}s ago, \
         not fetching it again yet",
        min_interval.as_secs()
    )]
    UnknownKidRecentlyRefreshed {
        /// The header kid.
        kid: String,
        /// The `jwks_uri`.
        uri: String,
        /// The minimum refresh interval.
        min_interval: Duration,
    },
    /// Several keys in the set share the header `kid`.
    #[error(
        "kid {kid:?} appears {count} times in the key set from {source_name}; kids must be unique"
    )]
    DuplicateKid {
        /// The kid.
        kid: String,
        /// How often it appears.
        count: usize,
        /// `jwks` or the `jwks_uri` URL.
        source_name: String,
    },
    /// The selected key is symmetric (`kty: oct`); it is never turned into an HMAC key.
    #[error(
        "key {kid:?} is a symmetric key (kty \"oct\"); client assertions must be verified with a \
         public key (RSA, EC or OKP)"
    )]
    SymmetricKey {
        /// The key's kid (empty when it has none).
        kid: String,
    },
    /// The selected key cannot be used (unsupported curve, `use` other than `sig`, RSA < 2048
    /// bits, undecodable members …).
    #[error("key {kid:?} cannot verify client assertions: {reason}")]
    UnusableKey {
        /// The key's kid (empty when it has none).
        kid: String,
        /// Why.
        reason: String,
    },
    /// Header `alg` does not fit the key type (RSA ↔ RS*/PS*, P-256 ↔ ES256, P-384 ↔ ES384,
    /// Ed25519 ↔ EdDSA).
    #[error("client_assertion header alg {alg} does not match key {kid:?} of type {key_type}")]
    AlgKeyMismatch {
        /// The header alg.
        alg: String,
        /// The key's kid (empty when it has none).
        kid: String,
        /// e.g. `RSA`, `EC P-256`.
        key_type: &'static str,
    },
    /// Header `alg` differs from the JWK's own `alg` member.
    #[error("client_assertion header alg {alg} differs from the alg {jwk_alg} of key {kid:?}")]
    JwkAlgMismatch {
        /// The header alg.
        alg: String,
        /// The JWK's alg.
        jwk_alg: String,
        /// The key's kid (empty when it has none).
        kid: String,
    },
    /// Fetching `jwks_uri` failed.
    #[error("could not fetch jwks_uri {uri}: {}", .source.public_message())]
    JwksFetch {
        /// The `jwks_uri`.
        uri: String,
        /// The fetch failure.
        source: FetchError,
    },
    /// The `jwks_uri` response is not a usable JWK Set.
    #[error("jwks_uri {uri} did not return a valid JWK Set: {reason}")]
    JwksInvalid {
        /// The `jwks_uri`.
        uri: String,
        /// What is wrong.
        reason: String,
    },
    /// The signature does not verify with the selected key.
    #[error("client_assertion signature does not verify with key {kid:?} ({alg})")]
    BadSignature {
        /// The key's kid (empty when it has none).
        kid: String,
        /// The header alg.
        alg: String,
    },
    /// The payload is not a base64url-encoded JSON object.
    #[error("client_assertion payload is not a JSON object: {reason}")]
    InvalidPayload {
        /// What is wrong.
        reason: String,
    },
    /// A required claim is absent.
    #[error("client_assertion has no {claim} claim; it is required (RFC 7523 §3)")]
    MissingClaim {
        /// The claim name.
        claim: &'static str,
    },
    /// A claim has the wrong type or value shape.
    #[error("client_assertion claim {claim} is invalid: {reason}")]
    InvalidClaim {
        /// The claim name.
        claim: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `iss` is not the client_id.
    #[error("client_assertion iss {found:?} must equal the client_id {expected:?} exactly")]
    IssMismatch {
        /// The claim value.
        found: String,
        /// The client_id.
        expected: String,
    },
    /// `sub` is not the client_id.
    #[error("client_assertion sub {found:?} must equal the client_id {expected:?} exactly")]
    SubMismatch {
        /// The claim value.
        found: String,
        /// The client_id.
        expected: String,
    },
    /// No `aud` value is one of ours.
    #[error("client_assertion aud {found:?} contains none of the accepted audiences {expected:?}")]
    AudMismatch {
        /// The claim values.
        found: Vec<String>,
        /// The configured audiences.
        expected: Vec<String>,
    },
    /// `exp` is in the past beyond the allowed skew.
    #[error("client_assertion has expired: exp {exp} is before now {now} minus {skew_secs}s skew")]
    Expired {
        /// The claim (seconds since the epoch).
        exp: i64,
        /// Our clock.
        now: i64,
        /// Allowed skew in seconds.
        skew_secs: u64,
    },
    /// `exp - iat` exceeds the maximum lifetime.
    #[error(
        "client_assertion lifetime exp - iat = {lifetime_secs}s exceeds the maximum of {max_secs}s"
    )]
    LifetimeTooLong {
        /// exp − iat.
        lifetime_secs: i64,
        /// The maximum.
        max_secs: u64,
    },
    /// Without `iat`, `exp` is further in the future than the maximum lifetime (plus skew).
    #[error(
        "client_assertion exp {exp} is more than {max_secs}s (+{skew_secs}s skew) after now {now}; \
         assertions must be short-lived"
    )]
    ExpTooFarInFuture {
        /// The claim.
        exp: i64,
        /// Our clock.
        now: i64,
        /// Maximum lifetime in seconds.
        max_secs: u64,
        /// Allowed skew in seconds.
        skew_secs: u64,
    },
    /// `exp` is before `iat`.
    #[error("client_assertion exp {exp} is before iat {iat}")]
    ExpBeforeIat {
        /// The exp claim.
        exp: i64,
        /// The iat claim.
        iat: i64,
    },
    /// `iat` is in the future beyond the allowed skew.
    #[error("client_assertion iat {iat} is in the future (now {now}, skew {skew_secs}s)")]
    IatInFuture {
        /// The claim.
        iat: i64,
        /// Our clock.
        now: i64,
        /// Allowed skew in seconds.
        skew_secs: u64,
    },
    /// `nbf` is in the future beyond the allowed skew.
    #[error("client_assertion is not valid yet: nbf {nbf} is after now {now} (skew {skew_secs}s)")]
    NotYetValid {
        /// The claim.
        nbf: i64,
        /// Our clock.
        now: i64,
        /// Allowed skew in seconds.
        skew_secs: u64,
    },
    /// The `jti` was already used by this client (RFC 7523 §3 item 7).
    #[error("client_assertion jti {jti:?} was already used; assertions are single-use")]
    Replayed {
        /// The jti.
        jti: String,
    },
    /// The replay store could not record the `jti`.
    #[error("could not record the client_assertion jti: {0}")]
    ReplayStore(#[from] ReplayStoreError),
}

impl AssertionError {
    /// The OAuth 2.0 error code for the token response (RFC 6749 §5.2): always
    /// `invalid_client`, which the authorization server returns with HTTP 401.
    pub fn oauth_error(&self) -> &'static str {
        "invalid_client"
    }
}
