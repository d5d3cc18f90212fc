//! The token file: one JSON document mapping each MCP URL to its login (client_id, endpoints,
//! tokens, expiry).
//!
//! Location: `$XDG_CONFIG_HOME/cimdgate/tokens.json`, else `~/.config/cimdgate/tokens.json`
//! ([`TokenStore::default_path`]); the CLI's `--token-store FILE` overrides it. The folder is
//! created with mode 0700 and the file with mode 0600 (Unix); every save writes a new file
//! and renames it into place, so a crash never leaves half a file and the mode never widens.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{ClientError, now_secs};

/// Treat a token as expired this long before its `expires_at` (clock skew, request latency).
pub const EXPIRY_MARGIN_SECS: u64 = 60;

/// One MCP server's login. Tokens are secrets: redacted in `Debug`, written only to the 0600
/// token file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredLogin {
    /// The MCP URL (the key).
    pub mcp_url: String,
    /// The resource identifier tokens are bound to.
    pub resource: String,
    /// Issuer identifier.
    pub issuer: String,
    /// Token endpoint.
    pub token_endpoint: String,
    /// The client_id used (a CIMD URL or a DCR-issued id).
    pub client_id: String,
    /// Granted (or requested) scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// Access token.
    #[serde(serialize_with = "expose")]
    pub access_token: SecretString,
    /// Refresh token.
    #[serde(default, serialize_with = "expose_opt")]
    pub refresh_token: Option<SecretString>,
    /// Expiry of the access token, Unix seconds.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// The token file is where the secrets are meant to go: `secrecy` serialises nothing by itself.
fn expose<S: serde::Serializer>(t: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.expose_secret())
}

fn expose_opt<S: serde::Serializer>(t: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    t.as_ref().map(ExposeSecret::expose_secret).serialize(s)
}

impl StoredLogin {
    /// Whether the access token is still usable (with [`EXPIRY_MARGIN_SECS`] to spare). A
    /// token without a known expiry counts as fresh.
    pub fn is_fresh(&self) -> bool {
        self.expires_at
            .is_none_or(|t| now_secs().saturating_add(EXPIRY_MARGIN_SECS) < t)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    logins: BTreeMap<String, StoredLogin>,
}

/// Current file format version.
const VERSION: u32 = 1;

/// The token file.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    /// A store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TokenStore { path: path.into() }
    }

    /// `$XDG_CONFIG_HOME/cimdgate/tokens.json`, else `$HOME/.config/cimdgate/tokens.json`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            })?;
        Some(base.join("cimdgate").join("tokens.json"))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, reason: impl ToString) -> ClientError {
        ClientError::Store {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn read(&self) -> Result<File, ClientError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.err(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File {
                version: VERSION,
                logins: BTreeMap::new(),
            }),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The login stored for `mcp_url`.
    pub fn load(&self, mcp_url: &str) -> Result<Option<StoredLogin>, ClientError> {
        Ok(self.read()?.logins.remove(mcp_url))
    }

    /// Store (replace) the login for its MCP URL.
    pub fn save(&self, login: &StoredLogin) -> Result<(), ClientError> {
        let mut file = self.read()?;
        file.version = VERSION;
        file.logins.insert(login.mcp_url.clone(), login.clone());
        let text = serde_json::to_vec_pretty(&file).map_err(|e| self.err(e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|e| self.err(e))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = open_private(&tmp).map_err(|e| self.err(e))?;
        f.write_all(&text).map_err(|e| self.err(e))?;
        f.sync_all().map_err(|e| self.err(e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.err(e))
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(url: &str) -> StoredLogin {
        StoredLogin {
            mcp_url: url.into(),
            resource: url.into(),
            issuer: "http://i".into(),
            token_endpoint: "http://i/token".into(),
            client_id: "c".into(),
            scope: Some("mcp".into()),
            access_token: "at-secret".into(),
            refresh_token: Some("rt-secret".into()),
            expires_at: Some(now_secs() + 3600),
        }
    }

    #[test]
    fn save_then_load_round_trips_per_url() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path().join("sub").join("tokens.json"));
        assert!(store.load("http://a/mcp").unwrap().is_none());
        store.save(&login("http://a/mcp")).unwrap();
        store.save(&login("http://b/mcp")).unwrap();
        let json = |l: &StoredLogin| serde_json::to_value(l).unwrap();
        let loaded = store.load("http://a/mcp").unwrap().unwrap();
        assert_eq!(json(&loaded), json(&login("http://a/mcp")));
        assert_eq!(loaded.access_token.expose_secret(), "at-secret");
        assert!(store.load("http://b/mcp").unwrap().is_some());
        assert!(!format!("{:?}", login("x")).contains("secret"));
    }

    #[cfg(unix)]
    #[test]
    fn file_is_0600_and_folder_0700() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path().join("cfg").join("tokens.json"));
        store.save(&login("http://a/mcp")).unwrap();
        store.save(&login("http://a/mcp")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(&dir.path().join("cfg")), 0o700);
    }

    #[test]
    fn freshness_uses_the_margin() {
        let mut l = login("u");
        assert!(l.is_fresh());
        l.expires_at = Some(now_secs() + EXPIRY_MARGIN_SECS - 1);
        assert!(!l.is_fresh());
        l.expires_at = None;
        assert!(l.is_fresh());
    }
}
