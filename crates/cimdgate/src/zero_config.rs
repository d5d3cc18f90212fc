//! `cimdgate serve` without a config file (docs/architecture.md, *Command line*): what a newcomer
//! gets.
//!
//! Only when **no config file** is given (neither `--config` nor `CIMDGATE_CONFIG`) — an
//! operator's file is taken literally, so a file without `[[resources]]` is a pure
//! authorization server and a file without users has none:
//!
//! - listen on 127.0.0.1:8080 with the embedded store in `./cimdgate-data` (the config
//!   defaults); `--listen` alone also moves `public_url` when it was not set;
//! - the demo MCP server at `/mcp` ([`default_resource`]) when no resource is configured;
//! - a local dev user `dev` when identity is local and no user is configured. Its random
//!   password is generated on the first start, stored only as an argon2id hash in the store
//!   (secret [`DEV_USER_SECRET`]), and printed once; later starts say it exists;
//! - an admin token for the admin listener's `/admin/` when none is configured: generated on the
//!   first start into [`ADMIN_TOKEN_FILE`] in the data folder (mode 0600) and reused after; the
//!   banner names the file, never the token.

use cimdgate_server::Config;
use cimdgate_server::config::{IdentityMode, LocalUser, ResourceConfig};
use serde::{Deserialize, Serialize};

/// Store secret holding the dev user (`{"username", "password_hash"}` JSON).
pub const DEV_USER_SECRET: &str = "dev-user-v1";
/// The dev user's name.
pub const DEV_USERNAME: &str = "dev";
/// Random bytes in a generated password (18 bytes → 24 base64url characters).
const PASSWORD_BYTES: usize = 18;
/// File in the data folder holding the generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// The dev user after startup: its name, and the password only when it was just created.
#[derive(Debug)]
pub struct DevUser {
    /// Login name.
    pub username: String,
    /// Plaintext password — `Some` only on the start that created it.
    pub new_password: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredDevUser {
    username: String,
    password_hash: String,
}

/// `[[resources]] path = "/mcp"`, `upstream = "builtin:demo"`, `scopes = ["mcp"]`.
pub fn default_resource() -> ResourceConfig {
    ResourceConfig {
        path: "/mcp".into(),
        upstream: "builtin:demo".into(),
        scopes: vec!["mcp".into()],
        forward_upstream_token: false,
        required_scopes: None,
        operation_scopes: Vec::new(),
        allowed_origins: Vec::new(),
    }
}

/// Fill in the zero-config defaults. `listen_given`: `--listen` was passed.
/// Returns the dev user when one is in use.
pub async fn apply(config: &mut Config, listen_given: bool) -> Result<Option<DevUser>, String> {
    let default_public = cimdgate_server::config::ServerConfig::default().public_url;
    if listen_given
        && config.server.public_url == default_public
        && !config.server.listen.ip().is_unspecified()
    {
        let url = format!("http://{}", config.server.listen);
        config.server.public_url =
            url::Url::parse(&url).map_err(|e| format!("public_url {url}: {e}"))?;
    }
    if config.resources.is_empty() {
        config.resources.push(default_resource());
    }
    // A local dev server must take the MCP clients that have no document yet (Cursor, Gemini
    // CLI, `cimdgate login` without --client-id), so zero-config mode turns on the dynamic
    // registration that configured servers leave off (MCP 2026-07-28 deprecates it).
    if config.dcr.enabled.is_none() {
        config.dcr.enabled = Some(true);
    }
    admin_token(config)?;
    if config.identity.mode != IdentityMode::Local || !config.identity.users.is_empty() {
        return Ok(None);
    }
    let (user, new_password) = dev_user(&config.store.url).await?;
    config.identity.users.push(user);
    Ok(Some(DevUser {
        username: DEV_USERNAME.into(),
        new_password,
    }))
}

/// Load the dev user from the store, creating it (with a fresh random password) if absent.
async fn dev_user(store_url: &str) -> Result<(LocalUser, Option<String>), String> {
    let password = random_password()?;
    let to_hash = password.clone();
    let hash = tokio::task::spawn_blocking(move || {
        cimdgate_server::identity::local::hash_password(&to_hash)
    })
    .await
    .map_err(|e| format!("hashing task failed: {e}"))?
    .map_err(|e| e.to_string())?;
    let candidate = serde_json::to_vec(&StoredDevUser {
        username: DEV_USERNAME.into(),
        password_hash: hash,
    })
    .map_err(|e| e.to_string())?;
    // The server opens the store itself; this handle is closed (lock released) on drop.
    let stored = {
        let store = cimdgate_server::services::open_store(store_url)
            .await
            .map_err(|e| e.to_string())?;
        store
            .init_secret(DEV_USER_SECRET, &candidate)
            .await
            .map_err(|e| format!("store: {e}"))?
    };
    let created = stored == candidate;
    let user: StoredDevUser = serde_json::from_slice(&stored)
        .map_err(|e| format!("stored dev user is unreadable ({e}); delete the store folder"))?;
    Ok((
        LocalUser {
            username: user.username,
            password_hash: user.password_hash.into(),
            name: Some("Development user".into()),
        },
        created.then_some(password),
    ))
}

/// Without a configured admin token, and with an embedded store and the admin listener on: use
/// `<data folder>/admin-token`, generating it (32 random bytes, base64url) if absent.
fn admin_token(config: &mut Config) -> Result<(), String> {
    let admin = &config.admin;
    if admin.token.is_some() || admin.token_file.is_some() || admin.listen.addr().is_none() {
        return Ok(());
    }
    let Some(folder) = config.store.url.strip_prefix("embedded:") else {
        return Ok(());
    };
    let folder = std::path::Path::new(folder);
    let path = folder.join(ADMIN_TOKEN_FILE);
    if !path.exists() {
        std::fs::create_dir_all(folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness".to_owned())?;
        use base64::Engine;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        write_private(&path, format!("{token}\n").as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    config.admin.token_file = Some(path);
    Ok(())
}

/// Create `path` readable by its owner only (0600), failing if it exists.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A random password: 18 bytes, base64url (24 characters).
pub fn random_password() -> Result<String, String> {
    use base64::Engine;
    let mut bytes = [0u8; PASSWORD_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness".to_owned())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The startup banner (stdout): what to connect, how, and the dev credentials once.
pub fn banner(config: &Config, dev: Option<&DevUser>) -> String {
    let issuer = config.issuer();
    let mut out = String::new();
    out.push_str(&format!(
        "\ncimdgate is running at {issuer} (no config file: zero-config mode)\n\n"
    ));
    for r in &config.resources {
        out.push_str(&format!(
            "  MCP server   {issuer}{}   (upstream {}, scopes {})\n",
            r.path,
            r.upstream,
            r.scopes.join(" ")
        ));
    }
    out.push_str(&format!(
        "  OAuth issuer {issuer}   (metadata {issuer}/.well-known/oauth-authorization-server)\n"
    ));
    out.push_str(&format!(
        "  Data         {}\n\n",
        config.store.redacted_url()
    ));
    let mcp = config
        .resources
        .first()
        .map(|r| format!("{issuer}{}", r.path))
        .unwrap_or_else(|| issuer.clone());
    out.push_str(&format!(
        "Connect any MCP client that supports Client ID Metadata Documents (CIMD) or Dynamic\n\
         Client Registration to {mcp}, or log in from a terminal:\n\
         \x20 cimdgate login {mcp} --client-id https://your.app/client.json\n\
         \x20 (without --client-id it registers with DCR; --print-token prints a token for scripts)\n\n"
    ));
    if let Some(dev) = dev {
        let folder = config
            .store
            .url
            .strip_prefix("embedded:")
            .unwrap_or(&config.store.url);
        match &dev.new_password {
            Some(pw) => out.push_str(&format!(
                "Sign in as the generated dev user (printed only now; stored as an argon2id hash):\n\
                 \x20 username: {}\n\
                 \x20 password: {pw}\n\
                 \x20 (delete {folder} to reset)\n",
                dev.username
            )),
            None => out.push_str(&format!(
                "dev user `{}` exists; its password was printed on first start (delete {folder} to reset)\n",
                dev.username
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cimdgate_server::secret::ExposeSecret;

    #[tokio::test]
    async fn dev_user_created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("embedded:{}", dir.path().join("s").display());
        let (u1, pw1) = dev_user(&url).await.unwrap();
        let (u2, pw2) = dev_user(&url).await.unwrap();
        assert!(pw1.is_some(), "first start creates the password");
        assert!(pw2.is_none(), "second start must not print a password");
        assert_eq!(
            u1.password_hash.expose_secret(),
            u2.password_hash.expose_secret()
        );
        assert!(u1.password_hash.expose_secret().starts_with("$argon2id$"));
    }

    #[tokio::test]
    async fn defaults_only_fill_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.store.url = format!("embedded:{}", dir.path().join("s").display());
        c.server.listen = "127.0.0.1:9999".parse().unwrap();
        let dev = apply(&mut c, true).await.unwrap().unwrap();
        assert_eq!(c.issuer(), "http://127.0.0.1:9999");
        assert_eq!(c.resources.len(), 1);
        assert_eq!(c.resources[0].upstream, "builtin:demo");
        assert_eq!(c.identity.users[0].username, "dev");
        let text = banner(&c, Some(&dev));
        assert!(text.contains("http://127.0.0.1:9999/mcp"), "{text}");
        assert!(
            text.contains(dev.new_password.as_deref().unwrap()),
            "{text}"
        );
    }
}
