//! The field walker behind [`super::validate_document`]: parse into a [`serde_json::Value`],
//! then check each known field by hand so that every problem is collected.

use serde_json::{Map, Value};

use super::{
    ALLOWED_SIGNING_ALGS, AuthMethod, ClientDocument, MAX_DOCUMENT_BYTES, Problem, Profile,
    SUPPORTED_GRANT_TYPES, SUPPORTED_RESPONSE_TYPES, ValidatedDocument, ValidationReport,
};
use crate::client_id::{ClientIdError, ClientIdUrl, raw};
use crate::redirect::{ApplicationType, RedirectUri};

/// Stable rule ids (see the table in the module docs of [`super`]).
pub(super) mod rule {
    pub const TOO_LARGE: &str = "document-too-large";
    pub const INVALID_UTF8: &str = "invalid-utf8";
    pub const INVALID_JSON: &str = "invalid-json";
    pub const NOT_AN_OBJECT: &str = "not-an-object";
    pub const WRONG_TYPE: &str = "wrong-type";
    pub const REQUIRED: &str = "required-field";
    pub const INVALID_CLIENT_ID: &str = "invalid-client-id";
    pub const CLIENT_ID_MISMATCH: &str = "client-id-mismatch";
    pub const CLIENT_ID_QUERY: &str = "client-id-query";
    pub const EMPTY_REDIRECT_URIS: &str = "empty-redirect-uris";
    pub const INVALID_REDIRECT_URI: &str = "invalid-redirect-uri";
    pub const FORBIDDEN_AUTH_METHOD: &str = "forbidden-auth-method";
    pub const AUTH_METHODS_CONFLICT: &str = "auth-methods-conflict";
    pub const CLIENT_SECRET: &str = "client-secret-forbidden";
    pub const PRIVATE_KEY: &str = "private-key-material";
    pub const SYMMETRIC_KEY: &str = "symmetric-key";
    pub const INVALID_JWKS: &str = "invalid-jwks";
    pub const JWKS_CONFLICT: &str = "jwks-conflict";
    pub const MISSING_KEYS: &str = "missing-keys";
    pub const SIGNING_ALG: &str = "unsupported-signing-alg";
    pub const URI_NOT_HTTPS: &str = "uri-not-https";
    pub const UNSAFE_FETCH_URL: &str = "unsafe-fetch-url";
    pub const UNSUPPORTED_VALUE: &str = "unsupported-value";
    pub const CODE_FLOW_REQUIRED: &str = "authorization-code-required";
    /// A displayed name with control, bidirectional-override or invisible characters, or longer
    /// than `MAX_CLIENT_NAME_CHARS` (review finding L4: consent-page spoofing).
    pub const DISPLAY_TEXT: &str = "unsafe-display-text";
    /// A link shown to the user (`client_uri`, `tos_uri`, `policy_uri`) with userinfo
    /// (`https://claude.ai@evil.example/` reads as claude.ai; review finding L3).
    pub const URI_USERINFO: &str = "uri-userinfo";
    /// `application_type` not `web`/`native`, or a redirect URI its type does not allow
    /// (SEP-837, OIDC Registration §2).
    pub const APPLICATION_TYPE: &str = "application-type";
    /// Every rule id above.
    pub const ALL: &[&str] = &[
        TOO_LARGE,
        INVALID_UTF8,
        INVALID_JSON,
        NOT_AN_OBJECT,
        WRONG_TYPE,
        REQUIRED,
        INVALID_CLIENT_ID,
        CLIENT_ID_MISMATCH,
        CLIENT_ID_QUERY,
        EMPTY_REDIRECT_URIS,
        INVALID_REDIRECT_URI,
        FORBIDDEN_AUTH_METHOD,
        AUTH_METHODS_CONFLICT,
        CLIENT_SECRET,
        PRIVATE_KEY,
        SYMMETRIC_KEY,
        INVALID_JWKS,
        JWKS_CONFLICT,
        MISSING_KEYS,
        SIGNING_ALG,
        URI_NOT_HTTPS,
        UNSAFE_FETCH_URL,
        UNSUPPORTED_VALUE,
        CODE_FLOW_REQUIRED,
        DISPLAY_TEXT,
        URI_USERINFO,
        APPLICATION_TYPE,
    ];
    /// What a stored report's rule id becomes when this version does not know it.
    pub const UNKNOWN: &str = "unknown-rule";
}

/// Longest `client_name` accepted, in characters (it is shown on the consent page).
pub const MAX_CLIENT_NAME_CHARS: usize = 100;

/// Control characters, bidirectional overrides and isolates, and zero-width or other invisible
/// format characters: what makes a displayed name read differently from what it is.
pub fn is_hidden_or_control(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}' | '\u{061C}' | '\u{180E}')
}

/// The deserialisable shape of a [`Problem`] (its rule id is an owned string).
#[derive(serde::Deserialize)]
pub(super) struct StoredProblem {
    severity: super::Severity,
    field: String,
    rule: String,
    message: String,
}

impl From<StoredProblem> for Problem {
    /// Map the stored rule id back to its `'static` constant.
    fn from(p: StoredProblem) -> Problem {
        let rule = rule::ALL
            .iter()
            .copied()
            .find(|r| *r == p.rule)
            .unwrap_or(rule::UNKNOWN);
        Problem {
            severity: p.severity,
            field: p.field,
            rule,
            message: p.message,
        }
    }
}

/// Shared-secret methods named by draft §4.1.
const SHARED_SECRET_METHODS: &[&str] = &[
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
];
/// JWK members that carry private or symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4;
/// RFC 8037 §2).
const PRIVATE_JWK_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// Asymmetric key types we accept in `jwks` (RFC 7518 §6, RFC 8037).
const PUBLIC_KEY_TYPES: &[&str] = &["RSA", "EC", "OKP"];

struct Walker<'a> {
    obj: &'a Map<String, Value>,
    problems: Vec<Problem>,
}

impl<'a> Walker<'a> {
    fn error(&mut self, field: impl Into<String>, rule: &'static str, msg: impl Into<String>) {
        self.problems.push(Problem::error(field, rule, msg));
    }
    fn warn(&mut self, field: impl Into<String>, rule: &'static str, msg: impl Into<String>) {
        self.problems.push(Problem::warning(field, rule, msg));
    }
    fn wrong_type(&mut self, field: impl Into<String>, expected: &str, found: &Value) {
        let found = json_type(found);
        self.error(
            field,
            rule::WRONG_TYPE,
            format!("must be {expected}, found {found}"),
        );
    }

    /// A present, non-null value.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn string(&mut self, key: &str) -> Option<&'a str> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            other => {
                self.wrong_type(key, "a string", other);
                None
            }
        }
    }

    /// An array of strings; bad elements are reported (`key[i]`) and skipped.
    fn string_array(&mut self, key: &str) -> Option<Vec<(usize, &'a str)>> {
        match self.get(key)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v {
                        Value::String(s) => Some((i, s.as_str())),
                        other => {
                            self.wrong_type(format!("{key}[{i}]"), "a string", other);
                            None
                        }
                    })
                    .collect(),
            ),
            other => {
                self.wrong_type(key, "an array of strings", other);
                None
            }
        }
    }

    /// `client_uri`, `tos_uri`, `policy_uri`: an absolute https URL.
    fn https_uri(&mut self, key: &str) -> Option<url::Url> {
        let s = self.string(key)?;
        match url::Url::parse(s) {
            Ok(u)
                if u.scheme() == "https"
                    && (!u.username().is_empty() || u.password().is_some()) =>
            {
                self.error(
                    key,
                    rule::URI_USERINFO,
                    "must not contain userinfo (`…@` before the host): the link would read as \
                     another site",
                );
                None
            }
            Ok(u) if u.scheme() == "https" && u.host().is_some() => Some(u),
            Ok(u) => {
                let scheme = u.scheme().to_owned();
                self.error(
                    key,
                    rule::URI_NOT_HTTPS,
                    format!("must be an https URL, found scheme `{scheme}`"),
                );
                None
            }
            Err(e) => {
                self.error(
                    key,
                    rule::URI_NOT_HTTPS,
                    format!("must be an absolute https URL ({e})"),
                );
                None
            }
        }
    }

    /// `jwks_uri`, `logo_uri`: URLs the server fetches — https plus client_id URL hygiene
    /// (no userinfo, fragment, dot segments, …; draft §8.6).
    fn fetchable_uri(&mut self, key: &str) -> Option<url::Url> {
        let s = self.string(key)?;
        match raw::parse_https_url(s, false) {
            Ok(parsed) => Some(parsed.url),
            Err(e @ (ClientIdError::NotHttps { .. } | ClientIdError::SchemeNotLowercase)) => {
                let msg = e.to_string().replacen("client_id", "URL", 1);
                self.error(key, rule::URI_NOT_HTTPS, msg);
                None
            }
            Err(e) => {
                let msg = e.to_string().replacen("client_id", "URL", 1);
                self.error(key, rule::UNSAFE_FETCH_URL, msg);
                None
            }
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Classify an auth method name.
fn auth_method(name: &str) -> Result<AuthMethod, String> {
    match name {
        "none" => Ok(AuthMethod::None),
        "private_key_jwt" => Ok(AuthMethod::PrivateKeyJwt),
        s if SHARED_SECRET_METHODS.contains(&s) || s.starts_with("client_secret") => Err(format!(
            "`{s}` is a shared-secret method, which client metadata documents must not use \
             (draft §4.1); use `none` or `private_key_jwt`"
        )),
        s => Err(format!(
            "`{s}` is not supported for client metadata documents; use `none` or `private_key_jwt`"
        )),
    }
}

fn fail(rule: &'static str, msg: String) -> ValidationReport {
    ValidationReport {
        problems: vec![Problem::error("(document)", rule, msg)],
    }
}

pub(super) fn run(
    bytes: &[u8],
    expected: Option<&ClientIdUrl>,
    profile: Profile,
) -> Result<ValidatedDocument, ValidationReport> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(fail(
            rule::TOO_LARGE,
            format!(
                "document is {} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes (draft §8.7)",
                bytes.len()
            ),
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| fail(rule::INVALID_UTF8, format!("document is not UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        fail(
            rule::INVALID_JSON,
            format!("document is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = &value else {
        return Err(fail(
            rule::NOT_AN_OBJECT,
            format!(
                "document must be a JSON object, found {}",
                json_type(&value)
            ),
        ));
    };
    let mut w = Walker {
        obj,
        problems: Vec::new(),
    };

    let client_id = check_client_id(&mut w, expected);
    let redirect_uris = check_redirect_uris(&mut w);
    let application_type = check_application_type(&mut w, redirect_uris.as_deref());
    let client_name = w.string("client_name").filter(|s| !s.trim().is_empty());
    if let Some(name) = client_name {
        if name.chars().count() > MAX_CLIENT_NAME_CHARS {
            w.error(
                "client_name",
                rule::DISPLAY_TEXT,
                format!("is longer than {MAX_CLIENT_NAME_CHARS} characters"),
            );
        } else if name.chars().any(is_hidden_or_control) {
            w.error(
                "client_name",
                rule::DISPLAY_TEXT,
                "contains control, bidirectional-override or invisible characters",
            );
        }
    }
    if client_name.is_none() && !matches!(w.get("client_name"), Some(v) if !v.is_string()) {
        let msg = "`client_name` is required by the MCP profile (MCP 2025-11-25)";
        match profile {
            Profile::Mcp => w.error("client_name", rule::REQUIRED, msg),
            Profile::Lenient => w.warn("client_name", rule::REQUIRED, msg),
        }
    }
    for key in ["client_secret", "client_secret_expires_at"] {
        if w.obj.contains_key(key) {
            w.error(
                key,
                rule::CLIENT_SECRET,
                format!("`{key}` must not appear in a client metadata document (draft §4.1)"),
            );
        }
    }
    let jwks = check_jwks(&mut w);
    let jwks_uri = w.fetchable_uri("jwks_uri");
    let jwks_present = w.get("jwks").is_some();
    let jwks_uri_present = w.get("jwks_uri").is_some();
    if jwks_present && jwks_uri_present {
        w.error(
            "jwks",
            rule::JWKS_CONFLICT,
            "`jwks` and `jwks_uri` must not both be present (RFC 7591 §2)",
        );
    }
    let method = check_auth_method(&mut w, jwks_present || jwks_uri_present);
    if method == Some(AuthMethod::PrivateKeyJwt) && !jwks_present && !jwks_uri_present {
        w.error(
            "token_endpoint_auth_method",
            rule::MISSING_KEYS,
            "`private_key_jwt` needs exactly one of `jwks` or `jwks_uri` with the client's public keys",
        );
    }
    let signing_alg = w.string("token_endpoint_auth_signing_alg");
    if let Some(alg) = signing_alg
        && !ALLOWED_SIGNING_ALGS.contains(&alg)
    {
        w.error(
            "token_endpoint_auth_signing_alg",
            rule::SIGNING_ALG,
            format!(
                "`{alg}` is not allowed; use one of {}",
                ALLOWED_SIGNING_ALGS.join(", ")
            ),
        );
    }
    let grant_types = filtered(
        &mut w,
        "grant_types",
        SUPPORTED_GRANT_TYPES,
        "authorization_code",
    );
    let response_types = filtered(&mut w, "response_types", SUPPORTED_RESPONSE_TYPES, "code");
    let scope = w.string("scope");
    let client_uri = w.https_uri("client_uri");
    let logo_uri = w.fetchable_uri("logo_uri");
    let tos_uri = w.https_uri("tos_uri");
    let policy_uri = w.https_uri("policy_uri");
    let contacts = w.string_array("contacts").unwrap_or_default();
    let software_id = w.string("software_id");
    let software_version = w.string("software_version");

    let report = ValidationReport {
        problems: w.problems,
    };
    let (Some(client_id), Some(redirect_uris), Some(token_endpoint_auth_method), true) =
        (client_id, redirect_uris, method, report.is_valid())
    else {
        return Err(report);
    };
    let document = ClientDocument {
        client_id,
        redirect_uris,
        client_name: client_name.map(str::to_owned),
        token_endpoint_auth_method,
        token_endpoint_auth_signing_alg: signing_alg.map(str::to_owned),
        grant_types,
        response_types,
        scope: scope.map(str::to_owned),
        client_uri,
        logo_uri,
        tos_uri,
        policy_uri,
        jwks,
        jwks_uri,
        contacts: contacts.into_iter().map(|(_, s)| s.to_owned()).collect(),
        software_id: software_id.map(str::to_owned),
        software_version: software_version.map(str::to_owned),
        application_type,
    };
    Ok(ValidatedDocument {
        document,
        warnings: report.problems,
    })
}

fn check_client_id(w: &mut Walker<'_>, expected: Option<&ClientIdUrl>) -> Option<ClientIdUrl> {
    let Some(raw) = w.string("client_id") else {
        if w.get("client_id").is_none() {
            w.error(
                "client_id",
                rule::REQUIRED,
                "`client_id` is required (draft §4)",
            );
        }
        return None;
    };
    if let Some(exp) = expected
        && raw != exp.as_str()
    {
        w.error(
            "client_id",
            rule::CLIENT_ID_MISMATCH,
            format!(
                "document says `{raw}` but was fetched from `{exp}`; they must be identical strings (draft §4)"
            ),
        );
    }
    match ClientIdUrl::parse(raw) {
        Ok(id) => {
            if id.has_query() {
                w.warn(
                    "client_id",
                    rule::CLIENT_ID_QUERY,
                    "a client_id SHOULD NOT contain a query (draft §3)",
                );
            }
            Some(id)
        }
        Err(e) => {
            w.error("client_id", rule::INVALID_CLIENT_ID, e.to_string());
            None
        }
    }
}

/// `application_type`: `web` or `native`, and each redirect URI allowed for it
/// ([`ApplicationType::check_redirect_uri`]).
fn check_application_type(
    w: &mut Walker<'_>,
    redirect_uris: Option<&[RedirectUri]>,
) -> Option<ApplicationType> {
    let raw = w.string("application_type")?;
    let kind = match ApplicationType::parse(raw) {
        Ok(k) => k,
        Err(why) => {
            w.error("application_type", rule::APPLICATION_TYPE, why);
            return None;
        }
    };
    for (i, uri) in redirect_uris.unwrap_or_default().iter().enumerate() {
        if let Err(why) = kind.check_redirect_uri(uri) {
            w.error(format!("redirect_uris[{i}]"), rule::APPLICATION_TYPE, why);
        }
    }
    Some(kind)
}

fn check_redirect_uris(w: &mut Walker<'_>) -> Option<Vec<RedirectUri>> {
    let Some(entries) = w.string_array("redirect_uris") else {
        if w.get("redirect_uris").is_none() {
            w.error(
                "redirect_uris",
                rule::REQUIRED,
                "`redirect_uris` is required (draft §4.2, MCP)",
            );
        }
        return None;
    };
    let total = w
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if total == 0 {
        w.error(
            "redirect_uris",
            rule::EMPTY_REDIRECT_URIS,
            "`redirect_uris` must list at least one URI",
        );
        return None;
    }
    let mut out = Vec::with_capacity(entries.len());
    for (i, s) in entries {
        match RedirectUri::parse(s) {
            Ok(u) => out.push(u),
            Err(e) => w.error(
                format!("redirect_uris[{i}]"),
                rule::INVALID_REDIRECT_URI,
                e.to_string(),
            ),
        }
    }
    (out.len() == total).then_some(out)
}

/// Singular `token_endpoint_auth_method` (RFC 7591) and plural
/// `token_endpoint_auth_methods_supported` (ChatGPT; oauth-wg #87). The singular wins.
fn check_auth_method(w: &mut Walker<'_>, has_keys: bool) -> Option<AuthMethod> {
    const SINGULAR: &str = "token_endpoint_auth_method";
    const PLURAL: &str = "token_endpoint_auth_methods_supported";
    let singular = w.string(SINGULAR);
    let singular_ok = w.get(SINGULAR).is_none_or(Value::is_string);
    let plural = w.string_array(PLURAL);
    let chosen_singular = match singular {
        Some(s) => match auth_method(s) {
            Ok(m) => Some(m),
            Err(msg) => {
                w.error(SINGULAR, rule::FORBIDDEN_AUTH_METHOD, msg);
                return None;
            }
        },
        None if !singular_ok => return None,
        None => None,
    };
    let Some(plural) = plural else {
        if w.get(PLURAL).is_some() {
            return None; // wrong type already reported
        }
        return Some(chosen_singular.unwrap_or(AuthMethod::None));
    };
    let mut supported = Vec::new();
    for &(i, name) in &plural {
        match auth_method(name) {
            Ok(m) => supported.push(m),
            Err(msg) if chosen_singular.is_none() => w.warn(
                format!("{PLURAL}[{i}]"),
                rule::UNSUPPORTED_VALUE,
                format!("ignored: {msg}"),
            ),
            Err(_) => {}
        }
    }
    if let Some(m) = chosen_singular {
        if !plural.iter().any(|&(_, n)| n == m.as_str()) {
            w.warn(
                PLURAL,
                rule::AUTH_METHODS_CONFLICT,
                format!("does not list `{m}` from `{SINGULAR}`; `{SINGULAR}` is used"),
            );
        }
        return Some(m);
    }
    if supported.contains(&AuthMethod::PrivateKeyJwt)
        && (has_keys || !supported.contains(&AuthMethod::None))
    {
        Some(AuthMethod::PrivateKeyJwt)
    } else if supported.contains(&AuthMethod::None) {
        Some(AuthMethod::None)
    } else {
        w.error(
            PLURAL,
            rule::FORBIDDEN_AUTH_METHOD,
            "lists no method this server supports; include `none` or `private_key_jwt` (draft §4.1)",
        );
        None
    }
}

fn check_jwks(w: &mut Walker<'_>) -> Option<jsonwebtoken::jwk::JwkSet> {
    let value = w.get("jwks")?;
    let Some(keys) = value.get("keys").and_then(Value::as_array) else {
        w.error(
            "jwks",
            rule::INVALID_JWKS,
            "must be a JWK Set: an object with a `keys` array (RFC 7517 §5)",
        );
        return None;
    };
    if keys.is_empty() {
        w.error("jwks.keys", rule::INVALID_JWKS, "contains no keys");
        return None;
    }
    let before = w.problems.len();
    for (i, key) in keys.iter().enumerate() {
        let Some(obj) = key.as_object() else {
            w.wrong_type(format!("jwks.keys[{i}]"), "an object (a JWK)", key);
            continue;
        };
        for m in PRIVATE_JWK_MEMBERS {
            if obj.contains_key(*m) {
                w.error(
                    format!("jwks.keys[{i}].{m}"),
                    rule::PRIVATE_KEY,
                    "private or symmetric key material must not be published; include only the public key (draft -02 §4.1)",
                );
            }
        }
        let kty = obj.get("kty").and_then(Value::as_str);
        let alg = obj.get("alg").and_then(Value::as_str);
        if kty == Some("oct") || alg.is_some_and(|a| a.starts_with("HS")) {
            w.error(
                format!("jwks.keys[{i}].kty"),
                rule::SYMMETRIC_KEY,
                "symmetric (`oct`/HMAC) keys are shared secrets and are not allowed; use RSA, EC or OKP public keys",
            );
        } else if !kty.is_some_and(|k| PUBLIC_KEY_TYPES.contains(&k)) {
            w.error(
                format!("jwks.keys[{i}].kty"),
                rule::INVALID_JWKS,
                format!("`kty` must be one of {}", PUBLIC_KEY_TYPES.join(", ")),
            );
        }
    }
    if w.problems.len() > before {
        return None;
    }
    match serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(value.clone()) {
        Ok(set) => {
            use jsonwebtoken::jwk::AlgorithmParameters as A;
            let mut good = true;
            for (i, k) in set.keys.iter().enumerate() {
                if !matches!(
                    k.algorithm,
                    A::RSA(_) | A::EllipticCurve(_) | A::OctetKeyPair(_)
                ) {
                    good = false;
                    w.error(
                        format!("jwks.keys[{i}]"),
                        rule::INVALID_JWKS,
                        "missing or malformed public key parameters for its `kty` (RSA: n, e; EC: crv, x, y; OKP: crv, x)",
                    );
                }
            }
            good.then_some(set)
        }
        Err(e) => {
            w.error(
                "jwks",
                rule::INVALID_JWKS,
                format!("not a valid JWK Set: {e}"),
            );
            None
        }
    }
}

/// Filter an array field to the supported values, warning on each dropped one; the result must
/// contain `required` (this server only runs the authorization code flow).
fn filtered(w: &mut Walker<'_>, key: &str, supported: &[&str], required: &str) -> Vec<String> {
    let present = w.get(key).is_some();
    let Some(values) = w.string_array(key) else {
        return if present {
            Vec::new()
        } else {
            vec![required.to_owned()]
        };
    };
    let mut out: Vec<String> = Vec::new();
    for (i, v) in values {
        if supported.contains(&v) {
            if !out.iter().any(|o| o == v) {
                out.push(v.to_owned());
            }
        } else {
            w.warn(
                format!("{key}[{i}]"),
                rule::UNSUPPORTED_VALUE,
                format!("`{v}` is not supported by this server and is ignored"),
            );
        }
    }
    if !out.iter().any(|o| o == required) {
        w.error(
            key,
            rule::CODE_FLOW_REQUIRED,
            format!(
                "must include `{required}`: this server only supports the authorization code flow"
            ),
        );
    }
    out
}
