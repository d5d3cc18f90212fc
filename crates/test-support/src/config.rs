//! cimdgate configurations for tests: one TOML template (listen address and public URL, an
//! embedded store, one local user, the dev fetch hooks that let the fetcher reach this crate's
//! HTTPS hosts on loopback, the built-in demo MCP server at `/mcp`, the admin listener on a free
//! loopback port so several test servers never collide) and a cheap argon2id hash for
//! the user's password.

use std::path::Path;

/// The pieces of a test configuration. Tables in `extra` are appended as they are.
#[derive(Debug, Clone, Copy)]
pub struct TestConfig<'a> {
    /// `server.listen`.
    pub listen: &'a str,
    /// `server.public_url`.
    pub public_url: &'a str,
    /// Folder of the embedded store.
    pub store_dir: &'a Path,
    /// The local user's name.
    pub username: &'a str,
    /// Its argon2id PHC string ([`cheap_password_hash`]).
    pub password_hash: &'a str,
    /// The test CA's certificate file (`fetch.extra_ca_file`).
    pub ca_file: &'a Path,
    /// Hosts resolved to 127.0.0.1 (`fetch.resolve`).
    pub hosts: &'a [&'a str],
    /// More TOML, appended.
    pub extra: &'a str,
}

impl TestConfig<'_> {
    /// The TOML text.
    pub fn toml(&self) -> String {
        let resolve = self
            .hosts
            .iter()
            .map(|h| format!("\"{h}\" = \"127.0.0.1\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            r#"[server]
listen = "{listen}"
public_url = "{public_url}"

[store]
url = "embedded:{store}"

[identity]
mode = "local"

[[identity.users]]
username = "{username}"
password_hash = "{hash}"

[fetch]
dev_allow_loopback = true
extra_ca_file = "{ca}"
resolve = {{ {resolve} }}

[[resources]]
path = "/mcp"
upstream = "builtin:demo"
scopes = ["mcp"]

[admin]
listen = "127.0.0.1:0"

{extra}"#,
            listen = self.listen,
            public_url = self.public_url,
            store = self.store_dir.display(),
            username = self.username,
            hash = self.password_hash,
            ca = self.ca_file.display(),
            extra = self.extra,
        )
    }
}

/// An argon2id hash of `password` with cheap parameters (256 KiB, one pass) and a fixed salt,
/// so logins stay fast in debug builds; the PHC string carries the parameters, so the server
/// verifies it as any other.
pub fn cheap_password_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(256, 1, 1, None).expect("valid argon2 parameters");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"cimdgate-test-salt").expect("valid salt");
    argon
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id hash")
        .to_string()
}
