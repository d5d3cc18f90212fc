//! Client authentication at `/token` and `/revoke` (RFC 6749 §2.3, RFC 7523 §2.2, RFC 7521
//! §4.2, OAuth 2.1 §2.4; draft-ietf-oauth-client-id-metadata-document §5 for CIMD clients).
//!
//! `authenticate_client` is an ordered list of named steps:
//! 1. `presented_credentials` — what the request carries: `client_id`, a secret (HTTP Basic or
//!    form), or a client assertion. At most one method (RFC 6749 §2.3); every client_id source
//!    must agree. With an assertion, `client_id` is optional: the client is taken from the
//!    assertion's `iss` (peeked, unverified, only to find the document; verification follows);
//! 2. `resolve_client` — CIMD document (stale-if-error allowed) or DCR record;
//! 3. `check_method` — the method the client registered, and nothing else: `private_key_jwt` is
//!    **required** when the document declares it (an assertion verified by the core library,
//!    `jti` single-use across replicas through the store — recorded here, or, with
//!    [`ReplayCheck::Deferred`] (the code grant), handed back as [`Authenticated::pending_jti`]
//!    for the caller to record in the same store write as the rest of the exchange); a CIMD
//!    client never uses a secret;
//!    DCR confidential clients present their secret (Basic or form; compared as SHA-256 in
//!    constant time).
//!
//! Every failure is 401 `invalid_client` naming the problem; store failures are 503.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

use cimd::assertion::AssertionError;
use cimdgate_store::{JtiRecord, TokenHash};

use super::ctx::BackCtx;
use super::form::Params;
use crate::audit;
use crate::clients::{Client, Purpose, resolve_client};
use crate::error::OAuthError;

/// RFC 7523 §2.2 `client_assertion_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the secret was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretTransport {
    /// `Authorization: Basic` (RFC 6749 §2.3.1).
    Basic,
    /// `client_secret` form parameter.
    Post,
}

/// The credentials a request carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The client the request claims to be.
    pub client_id: Option<String>,
    /// A client secret and how it came.
    pub secret: Option<(String, SecretTransport)>,
    /// A client assertion (type already checked).
    pub assertion: Option<&'a str>,
}

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::invalid_client(msg)
}

/// Who records a `private_key_jwt` assertion's `jti`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCheck {
    /// Authentication records it (one store write) before it returns.
    Immediate,
    /// Authentication checks everything else and returns the `jti` as
    /// [`Authenticated::pending_jti`]; the caller **must** record it atomically with its own
    /// write (`Store::redeem_code`) or with `Store::record_jti`, and refuse the request if it
    /// was already recorded, before any token is handed out.
    Deferred,
}

/// An authenticated client, and — in [`ReplayCheck::Deferred`] mode with a client assertion —
/// the `jti` the caller must still record.
#[derive(Debug)]
#[must_use = "a pending jti must be recorded before the client counts as authenticated"]
pub struct Authenticated {
    /// The client.
    pub client: Client,
    /// The assertion `jti` still to record (only in [`ReplayCheck::Deferred`] mode).
    pub pending_jti: Option<JtiRecord>,
}

/// Authenticate the client of a `/token` or `/revoke` request (see the module doc), recording
/// an assertion's `jti` before returning.
pub async fn authenticate_client(
    ctx: &BackCtx,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Client, OAuthError> {
    let auth = authenticate_client_with(ctx, headers, params, ReplayCheck::Immediate).await?;
    // Immediate mode records the jti itself and never returns one (see `check_method`).
    Ok(auth.client)
}

/// Authenticate the client of a `/token` or `/revoke` request (see the module doc); `replay`
/// says who records a client assertion's `jti`.
pub async fn authenticate_client_with(
    ctx: &BackCtx,
    headers: &HeaderMap,
    params: &Params,
    replay: ReplayCheck,
) -> Result<Authenticated, OAuthError> {
    let creds = presented_credentials(headers, params)?;
    let Some(client_id) = creds.client_id.as_deref() else {
        return Err(invalid(
            "no client_id: send client_id (public clients), HTTP Basic credentials, or a \
             client_assertion",
        ));
    };
    let client = resolve_client(&ctx.services, client_id, Purpose::Token)
        .await
        .map_err(|e| e.to_oauth(Purpose::Token))?;
    let pending_jti = check_method(ctx, &client, &creds, replay).await?;
    Ok(Authenticated {
        client,
        pending_jti,
    })
}

/// Step 1: collect credentials; one method at most; every client_id source agrees.
pub fn presented_credentials<'a>(
    headers: &HeaderMap,
    params: &'a Params,
) -> Result<Credentials<'a>, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| invalid("the Authorization header is not valid text"))?;
            Some(parse_basic(v)?)
        }
        None => None,
    };
    let assertion = match (
        params.get("client_assertion_type"),
        params.get("client_assertion"),
    ) {
        (None, None) => None,
        (Some(JWT_BEARER), Some(a)) => Some(a),
        (Some(JWT_BEARER), None) => {
            return Err(invalid(
                "client_assertion_type is set but client_assertion is missing",
            ));
        }
        (Some(other), _) => {
            return Err(invalid(format!(
                "client_assertion_type {other:?} is not supported; use {JWT_BEARER}"
            )));
        }
        (None, Some(_)) => {
            return Err(invalid(format!(
                "client_assertion sent without client_assertion_type={JWT_BEARER}"
            )));
        }
    };
    let post_secret = params.get("client_secret");
    let methods = usize::from(basic.is_some())
        + usize::from(post_secret.is_some())
        + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(invalid(
            "more than one client authentication method in one request (RFC 6749 §2.3); use one",
        ));
    }
    let mut ids: Vec<String> = Vec::new();
    if let Some(id) = params.get("client_id") {
        ids.push(id.to_owned());
    }
    let mut secret = post_secret.map(|s| (s.to_owned(), SecretTransport::Post));
    if let Some((id, s)) = basic {
        ids.push(id);
        secret = Some((s, SecretTransport::Basic));
    }
    if let Some(a) = assertion {
        ids.push(peek_assertion_client(a)?);
    }
    if let Some(first) = ids.first()
        && let Some(other) = ids.iter().find(|id| *id != first)
    {
        return Err(invalid(format!(
            "client_id {first:?} does not match the client identified by the credentials \
             ({other:?})"
        )));
    }
    Ok(Credentials {
        client_id: ids.into_iter().next(),
        secret,
        assertion,
    })
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(value: &str) -> Result<(String, String), OAuthError> {
    let Some(b64) = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
    else {
        return Err(invalid(
            "the Authorization header must use the Basic scheme at the token endpoint",
        ));
    };
    let raw = STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid("HTTP Basic credentials are not valid base64 UTF-8"))?;
    let (id, secret) = raw
        .split_once(':')
        .ok_or_else(|| invalid("HTTP Basic credentials have no ':' separator"))?;
    let decode = |s: &str| -> String {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (decode(id), decode(secret));
    if id.is_empty() {
        return Err(invalid("HTTP Basic credentials have an empty client_id"));
    }
    Ok((id, secret))
}

/// The client an assertion claims to come from (`iss`, else `sub`), read WITHOUT verifying,
/// only to find the document holding the keys that will verify it.
pub fn peek_assertion_client(assertion: &str) -> Result<String, OAuthError> {
    if assertion.len() > cimd::assertion::MAX_ASSERTION_BYTES {
        return Err(invalid(format!(
            "client_assertion is {} bytes; the limit is {} bytes",
            assertion.len(),
            cimd::assertion::MAX_ASSERTION_BYTES
        )));
    }
    let payload = assertion
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .ok_or_else(|| invalid("client_assertion is not a JWT with a JSON payload"))?;
    ["iss", "sub"]
        .iter()
        .find_map(|c| payload.get(*c).and_then(|v| v.as_str()))
        .map(str::to_owned)
        .ok_or_else(|| {
            invalid("client_assertion has no iss claim naming the client (send client_id too)")
        })
}

/// Step 3: the registered method, and nothing else. Returns the `jti` still to record
/// ([`ReplayCheck::Deferred`] with an assertion only).
async fn check_method(
    ctx: &BackCtx,
    client: &Client,
    creds: &Credentials<'_>,
    replay: ReplayCheck,
) -> Result<Option<JtiRecord>, OAuthError> {
    let id = client.client_id();
    match client {
        Client::Cimd(c) => {
            if creds.secret.is_some() {
                return Err(invalid(format!(
                    "client {id} is a Client ID Metadata Document client; such clients never use \
                     a client secret (use {} as its document declares)",
                    client.auth_method()
                )));
            }
            let doc = &c.resolved.document;
            match (client.auth_method(), creds.assertion) {
                ("private_key_jwt", Some(assertion)) => {
                    verify_assertion(ctx, id, assertion, doc, replay).await
                }
                ("private_key_jwt", None) => Err(invalid(format!(
                    "client {id} declares token_endpoint_auth_method private_key_jwt in its \
                     metadata document: send client_assertion_type={JWT_BEARER} and a \
                     client_assertion"
                ))),
                (_, Some(_)) => Err(invalid(format!(
                    "client {id} declares token_endpoint_auth_method none; it cannot \
                     authenticate with a client assertion"
                ))),
                (_, None) => Ok(None),
            }
        }
        Client::Dcr(c) => {
            if creds.assertion.is_some() {
                return Err(invalid(format!(
                    "client {id} is a registered client; client assertions are only for Client \
                     ID Metadata Document clients"
                )));
            }
            let checked = match (c.token_endpoint_auth_method.as_str(), &creds.secret) {
                ("none", None) => Ok(()),
                ("none", Some(_)) => Err(invalid(format!(
                    "client {id} registered token_endpoint_auth_method none; it has no secret"
                ))),
                (method, None) => Err(invalid(format!(
                    "client {id} must authenticate with {method} (its client secret)"
                ))),
                (_, Some((secret, _))) => check_secret(id, c.secret_hash.as_deref(), secret),
            };
            checked.map(|()| None)
        }
    }
}

/// Constant-time compare of SHA-256(secret) with the stored hash.
fn check_secret(id: &str, stored: Option<&str>, presented: &str) -> Result<(), OAuthError> {
    let presented = TokenHash::of(presented);
    let ok = stored.is_some_and(|s| bool::from(s.as_bytes().ct_eq(presented.as_str().as_bytes())));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("client secret for client {id} is wrong")))
    }
}

async fn verify_assertion(
    ctx: &BackCtx,
    id: &str,
    assertion: &str,
    doc: &cimd::ClientDocument,
    replay: ReplayCheck,
) -> Result<Option<JtiRecord>, OAuthError> {
    let verifier = &ctx.verifier;
    let verified = match replay {
        ReplayCheck::Immediate => verifier.verify(assertion, doc).await.map(|_| None),
        ReplayCheck::Deferred => verifier.verify_deferred(assertion, doc).await.map(|u| {
            Some(JtiRecord {
                client_id: u.assertion.client_id,
                jti: u.assertion.jti,
                expires_at: u.keep_until,
            })
        }),
    };
    match verified {
        Ok(pending) => Ok(pending),
        Err(AssertionError::ReplayStore(e)) => {
            tracing::error!(error = %e, "cannot record client assertion jti");
            Err(OAuthError::unavailable(
                "the server cannot record the client assertion right now; retry shortly",
            ))
        }
        Err(AssertionError::Replayed { jti }) => Err(jti_replayed(id, jti)),
        Err(e) => Err(invalid(format!("client assertion rejected: {e}"))),
    }
}

/// The refusal of an assertion whose `jti` was already used (audited `replay_blocked`), the
/// same whether the verifier or the code exchange's store write found it.
pub fn jti_replayed(client_id: &str, jti: String) -> OAuthError {
    audit!(event = "replay_blocked", client_id = %client_id);
    crate::telemetry::replay_blocked(crate::telemetry::Replay::Jti);
    invalid(format!(
        "client assertion rejected: {}",
        AssertionError::Replayed { jti }
    ))
}

/// Record a pending `jti` on its own (`Store::record_jti`) — for a code exchange that failed
/// before its combined store write, so a verified assertion is used up whatever the outcome,
/// as in [`ReplayCheck::Immediate`] mode. `Ok(())` when it was new; the replay refusal
/// ([`jti_replayed`]) when it was already recorded.
pub async fn record_pending_jti(ctx: &BackCtx, jti: &JtiRecord) -> Result<(), OAuthError> {
    let fresh = ctx
        .services
        .store
        .record_jti(&jti.client_id, &jti.jti, jti.expires_at)
        .await?;
    if fresh {
        Ok(())
    } else {
        Err(jti_replayed(&jti.client_id, jti.jti.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        super::super::form::parse_form(&h, body.as_bytes()).unwrap()
    }

    fn jwt(payload: &str) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn credentials_name_one_client_and_one_method() {
        let basic = format!("Basic {}", STANDARD.encode("dcr_a:s%3Acret"));
        let a = jwt(r#"{"iss":"https://c.test/x","sub":"https://c.test/x"}"#);
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, &'a str)>,
            Option<String>,
            Result<&'a str, &'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "public client",
                vec![("client_id", "dcr_a")],
                None,
                Ok("dcr_a"),
            ),
            (
                "basic decodes urlencoding",
                vec![],
                Some(basic.clone()),
                Ok("dcr_a"),
            ),
            (
                "basic + form id agree",
                vec![("client_id", "dcr_a")],
                Some(basic.clone()),
                Ok("dcr_a"),
            ),
            (
                "basic + form id differ",
                vec![("client_id", "dcr_b")],
                Some(basic.clone()),
                Err("does not match"),
            ),
            (
                "basic + post secret",
                vec![("client_secret", "s")],
                Some(basic),
                Err("more than one"),
            ),
            (
                "assertion without client_id",
                vec![
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &a),
                ],
                None,
                Ok("https://c.test/x"),
            ),
            (
                "assertion with other client_id",
                vec![
                    ("client_id", "https://c.test/y"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &a),
                ],
                None,
                Err("does not match"),
            ),
            (
                "assertion wrong type",
                vec![("client_assertion_type", "urn:x"), ("client_assertion", &a)],
                None,
                Err("not supported"),
            ),
            (
                "assertion without type",
                vec![("client_assertion", &a)],
                None,
                Err("without client_assertion_type"),
            ),
            (
                "bearer scheme",
                vec![],
                Some("Bearer x".into()),
                Err("Basic scheme"),
            ),
        ];
        for (name, form, auth, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(a) = auth {
                h.insert(header::AUTHORIZATION, HeaderValue::from_str(&a).unwrap());
            }
            let p = params(&form);
            match (presented_credentials(&h, &p), want) {
                (Ok(c), Ok(id)) => assert_eq!(c.client_id.as_deref(), Some(id), "{name}"),
                (Err(e), Err(msg)) => {
                    assert_eq!(e.code.as_str(), "invalid_client", "{name}");
                    assert!(e.description.contains(msg), "{name}: {}", e.description);
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn basic_secret_is_url_decoded() {
        let (id, secret) =
            parse_basic(&format!("Basic {}", STANDARD.encode("a%2Bb:c+d%3A"))).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("a+b", "c d:"));
    }

    #[test]
    fn secret_compare_uses_the_stored_hash() {
        let stored = TokenHash::of("right").0;
        assert!(check_secret("c", Some(&stored), "right").is_ok());
        assert!(check_secret("c", Some(&stored), "wrong").is_err());
        assert!(check_secret("c", None, "right").is_err());
    }
}
