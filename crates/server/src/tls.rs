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

/// The HTTP client for an operator-configured JWKS (a `[[trusted_issuers]]` or
/// `[[enterprise_idps]]` entry): https only, OS roots plus `extra_ca_file` (config key `key`),
/// no redirects, no proxy, 5 s to connect.
pub fn jwks_client(
    extra_ca_file: Option<&std::path::Path>,
    key: &str,
) -> Result<reqwest::Client, String> {
    let roots = match extra_ca_file {
        Some(path) => extra_roots(path, &format!("{key}.extra_ca_file"))?,
        None => Vec::new(),
    };
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(true)
        .connect_timeout(std::time::Duration::from_secs(5))
        .tls_certs_merge(roots)
        .build()
        .map_err(|e| format!("{key}: HTTP client: {e}"))
}
