//! Entry points for the coverage-guided fuzz targets in `fuzz/` (feature `fuzzing`, off by
//! default; not part of the supported API).

use url::Url;

use crate::config::GatewayConfig;
use crate::proxy::Proxy;

/// The proxy's path builder for one resource: what [`Proxy::forward`] calls to turn a request
/// path under the resource into the upstream URL (or a refusal).
#[derive(Debug)]
pub struct PathBuilder(Proxy);

impl PathBuilder {
    /// The proxy from gateway `resource_path` to `upstream`, as the gateway mounts it.
    pub fn new(resource_path: &str, upstream: Url) -> Result<Self, String> {
        let public_url = Url::parse("https://gateway.example/").map_err(|e| e.to_string())?;
        let config = GatewayConfig::new(public_url, Vec::new());
        let client = crate::proxy::upstream_client(&config)?;
        Ok(PathBuilder(Proxy::new(
            resource_path,
            upstream,
            client,
            &config,
            None,
        )))
    }

    /// The upstream URL for a request path and query, or why it is refused.
    pub fn upstream_url(&self, path: &str, query: Option<&str>) -> Result<Url, String> {
        self.0.upstream_url(path, query)
    }
}
