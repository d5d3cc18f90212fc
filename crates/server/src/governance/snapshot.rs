//! What the inventory keeps of a client's document or registration ([`ClientSnapshot`]) and
//! which of its fields changed between two fetches (draft §8.4: a changed document — new
//! redirect URIs, another authentication method, other keys — is a security event).

use cimd::cache::ResolvedClient;
use cimd::document::AuthMethod;
use cimdgate_store::{ClientSnapshot, FieldChange, RegisteredClient};
use sha2::Digest as _;

/// Fields whose change alters what the client can do with a grant: where codes go, how it
/// authenticates, which keys sign its assertions, what it may ask for. A change of one of
/// these returns an approved client to `pending` when `[cimd] reapprove_on_change` is set.
pub const MATERIAL_FIELDS: [&str; 5] = [
    "redirect_uris",
    "token_endpoint_auth_method",
    "jwks_uri",
    "jwks",
    "scope",
];

/// The snapshot of a validated CIMD document.
pub fn of_document(resolved: &ResolvedClient) -> ClientSnapshot {
    let d = &resolved.document;
    let mut keys: Vec<String> = d
        .jwks
        .as_ref()
        .map(|set| set.keys.iter().map(key_label).collect())
        .unwrap_or_default();
    keys.sort();
    ClientSnapshot {
        client_name: d.client_name.clone(),
        client_uri: d.client_uri.as_ref().map(ToString::to_string),
        logo_uri: d.logo_uri.as_ref().map(ToString::to_string),
        contacts: d.contacts.clone(),
        redirect_uris: d
            .redirect_uris
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect(),
        token_endpoint_auth_method: Some(
            match d.token_endpoint_auth_method {
                AuthMethod::None => "none",
                AuthMethod::PrivateKeyJwt => "private_key_jwt",
            }
            .to_owned(),
        ),
        jwks_uri: d.jwks_uri.as_ref().map(ToString::to_string),
        keys,
        scope: d.scope.clone(),
        digest: Some(resolved.digest.clone()),
    }
}

/// The snapshot of a dynamically registered client (RFC 7591).
pub fn of_registration(c: &RegisteredClient) -> ClientSnapshot {
    ClientSnapshot {
        client_name: c.client_name.clone(),
        redirect_uris: c.redirect_uris.clone(),
        token_endpoint_auth_method: Some(c.token_endpoint_auth_method.clone()),
        scope: c.scope.clone(),
        ..ClientSnapshot::default()
    }
}

/// A label for an inline key: its `kid` and a short SHA-256 of its JSON, so a key replaced
/// under the same `kid` still shows as a change.
fn key_label(jwk: &jsonwebtoken::jwk::Jwk) -> String {
    let json = serde_json::to_vec(jwk).unwrap_or_default();
    let hash = sha2::Sha256::digest(&json);
    let short: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    match &jwk.common.key_id {
        Some(kid) => format!("{kid} sha256:{short}"),
        None => format!("sha256:{short}"),
    }
}

/// The fields that differ between `old` and `new`, as JSON text (`null` when absent).
pub fn diff(old: &ClientSnapshot, new: &ClientSnapshot) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut field = |name: &str, a: serde_json::Value, b: serde_json::Value| {
        if a != b {
            out.push(FieldChange {
                field: name.to_owned(),
                old: a.to_string(),
                new: b.to_string(),
            });
        }
    };
    use serde_json::json;
    field(
        "redirect_uris",
        json!(old.redirect_uris),
        json!(new.redirect_uris),
    );
    field(
        "token_endpoint_auth_method",
        json!(old.token_endpoint_auth_method),
        json!(new.token_endpoint_auth_method),
    );
    field("jwks_uri", json!(old.jwks_uri), json!(new.jwks_uri));
    field("jwks", json!(old.keys), json!(new.keys));
    field("scope", json!(old.scope), json!(new.scope));
    field(
        "client_name",
        json!(old.client_name),
        json!(new.client_name),
    );
    field("client_uri", json!(old.client_uri), json!(new.client_uri));
    field("logo_uri", json!(old.logo_uri), json!(new.logo_uri));
    field("contacts", json!(old.contacts), json!(new.contacts));
    out
}

/// Whether any of `changes` is in [`MATERIAL_FIELDS`].
pub fn is_material(changes: &[FieldChange]) -> bool {
    changes
        .iter()
        .any(|c| MATERIAL_FIELDS.contains(&c.field.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> ClientSnapshot {
        ClientSnapshot {
            client_name: Some("A".into()),
            redirect_uris: vec!["https://a.example/cb".into()],
            token_endpoint_auth_method: Some("none".into()),
            ..ClientSnapshot::default()
        }
    }

    #[test]
    fn an_unchanged_snapshot_has_no_changes() {
        assert!(diff(&snap(), &snap()).is_empty());
    }

    #[test]
    fn each_material_field_is_reported_old_to_new() {
        type Change = fn(&mut ClientSnapshot);
        let cases: [(&str, Change); 5] = [
            ("redirect_uris", |s| {
                s.redirect_uris.push("http://127.0.0.1/cb".into())
            }),
            ("token_endpoint_auth_method", |s| {
                s.token_endpoint_auth_method = Some("private_key_jwt".into())
            }),
            ("jwks_uri", |s| {
                s.jwks_uri = Some("https://a.example/jwks".into())
            }),
            ("jwks", |s| s.keys = vec!["k1 sha256:00".into()]),
            ("scope", |s| s.scope = Some("admin".into())),
        ];
        for (field, change) in cases {
            let mut new = snap();
            change(&mut new);
            let changes = diff(&snap(), &new);
            assert_eq!(changes.len(), 1, "{field}");
            assert_eq!(changes[0].field, field);
            assert_ne!(changes[0].old, changes[0].new);
            assert!(is_material(&changes), "{field} is material");
        }
    }

    #[test]
    fn a_new_name_is_a_change_but_not_a_material_one() {
        let mut new = snap();
        new.client_name = Some("B".into());
        let changes = diff(&snap(), &new);
        assert_eq!(changes[0].old, "\"A\"");
        assert_eq!(changes[0].new, "\"B\"");
        assert!(!is_material(&changes));
    }
}
