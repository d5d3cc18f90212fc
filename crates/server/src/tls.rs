//! Extra trust roots for outbound TLS toward operator-chosen hosts (the identity provider, a
//! `[[trusted_issuers]]` JWKS host): the OS store plus a PEM bundle the operator names. Client
//! supplied URLs (CIMD documents, `jwks_uri`) go through `cimd::fetch` instead, with its own
//! roots and SSRF rules.

/// The CA certificates in the PEM file `path` (config key `key`, for the error), at least one.
pub fn extra_roots(path: &std::path::Path, key: &str) -> Result<Vec<reqwest::Certificate>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{key}: {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key}: {} contains no certificate", path.display()));
    }
    Ok(certs)
}
