//! A grant is bound to the CIMD document the user approved (its digest and auth method, see
//! `cimdgate_store::DocumentBinding`). When the client's current document differs at the token
//! endpoint, tokens may not widen what was approved (draft-ietf-oauth-client-id-metadata-document
//! §6 on changed documents; docs/architecture.md, *Authorization server*): the redirect URI of
//! a code must still be registered and the token endpoint auth method must be unchanged, or the
//! grant is refused. Scopes always come from the grant, never from the new document. A change
//! that passes is audited as `document_changed`.

use cimd::redirect::RedirectAllowList;

use crate::audit;
use crate::clients::Client;
use crate::error::OAuthError;
use cimdgate_store::Grant;

/// Check the client's current document against the one `grant` was approved with;
/// `redirect_uri` is the code's (`None` at refresh).
pub fn check_document_change(
    grant: &Grant,
    redirect_uri: Option<&str>,
    client: &Client,
    allow_list: Option<&RedirectAllowList>,
) -> Result<(), OAuthError> {
    let (Client::Cimd(c), Some(approved)) = (client, &grant.document) else {
        return Ok(());
    };
    let current = &c.resolved.digest;
    if *current == approved.digest {
        return Ok(());
    }
    let changed = |why: String| {
        OAuthError::invalid_grant(format!(
            "the client's metadata document changed since the user approved it: {why}; \
             start a new authorization"
        ))
    };
    if let Some(uri) = redirect_uri
        && client.redirect_uri(Some(uri), allow_list).is_err()
    {
        return Err(changed(format!(
            "redirect_uri {uri} is no longer registered"
        )));
    }
    if approved.auth_method != client.auth_method() {
        return Err(changed(format!(
            "token_endpoint_auth_method changed from {} to {}",
            approved.auth_method,
            client.auth_method()
        )));
    }
    audit!(
        event = "document_changed",
        client_id = %client.client_id(),
        grant = if redirect_uri.is_some() { "authorization_code" } else { "refresh_token" },
        approved_hash = %approved.digest,
        current_hash = %current
    );
    Ok(())
}
