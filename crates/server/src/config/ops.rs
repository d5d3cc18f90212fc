//! `[admin]` and `[audit]`: the operations side of the configuration (the admin listener with
//! `/metrics`, health and the authenticated `/admin/` area; where audit events go).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::{ExposeSecret, SecretString};

use super::error::{ConfigError, key_err};

/// Default address of the admin listener: loopback only, next to the public port's default.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

/// Fewest characters an admin token may have (a generated one has 43).
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// `[admin] listen`: an address, or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    /// No admin listener.
    Off,
    /// Listen here (`127.0.0.1:0` picks a free port: tests).
    Addr(SocketAddr),
}

impl AdminListen {
    /// The address, unless off.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            AdminListen::Off => None,
            AdminListen::Addr(a) => Some(a),
        }
    }
}

impl std::fmt::Display for AdminListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminListen::Off => f.write_str("off"),
            AdminListen::Addr(a) => write!(f, "{a}"),
        }
    }
}

impl Serialize for AdminListen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AdminListen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.eq_ignore_ascii_case("off") {
            return Ok(AdminListen::Off);
        }
        s.parse().map(AdminListen::Addr).map_err(|_| {
            serde::de::Error::custom(format!(
                "{s:?}: expected \"off\" or an address like \"127.0.0.1:9090\""
            ))
        })
    }
}

/// `[admin]`: the internal listener (docs/reference-config.toml).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`, `/admin/…`), or
    /// `"off"`. Default `127.0.0.1:9090`. Must differ from `server.listen`'s port.
    pub listen: AdminListen,
    /// File holding the bearer token of `/admin/` (first line, surrounding blanks trimmed).
    pub token_file: Option<PathBuf>,
    /// The token itself; prefer the `CIMDGATE_ADMIN__TOKEN` environment variable to the file.
    #[serde(serialize_with = "crate::config::redact::redact_opt")]
    pub token: Option<SecretString>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: AdminListen::Addr(DEFAULT_ADMIN_LISTEN),
            token_file: None,
            token: None,
        }
    }
}

impl AdminConfig {
    /// The admin token: `token`, else the first line of `token_file`, else `None` (then no
    /// request to `/admin/` is accepted).
    pub fn load_token(&self) -> Result<Option<SecretString>, ConfigError> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => t.expose_secret().trim().to_owned(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    key_err(
                        "admin.token_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                text.lines().next().unwrap_or_default().trim().to_owned()
            }
            (None, None) => return Ok(None),
        };
        let key = if self.token.is_some() {
            "admin.token"
        } else {
            "admin.token_file"
        };
        if token.chars().count() < MIN_ADMIN_TOKEN_CHARS
            || token.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err(key_err(
                key,
                format!(
                    "the admin token must be at least {MIN_ADMIN_TOKEN_CHARS} printable characters without spaces"
                ),
            ));
        }
        Ok(Some(token.into()))
    }

    /// Check the listener against the public one.
    pub(super) fn check(&self, public: SocketAddr) -> Result<(), ConfigError> {
        if let AdminListen::Addr(a) = self.listen
            && a.port() != 0
            && a.port() == public.port()
        {
            return Err(key_err(
                "admin.listen",
                format!(
                    "{a} uses the same port as server.listen ({public}); the admin listener needs its own port"
                ),
            ));
        }
        self.load_token().map(|_| ())
    }
}

/// `[audit] sink`: where audit events (tracing target `audit`) go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuditSink {
    /// `"log"` (default): with the other log lines on stderr, in the log format.
    #[default]
    Log,
    /// `"stdout"`: JSON lines on standard output (and no longer in the log).
    Stdout,
    /// `"file:PATH"`: JSON lines appended to PATH, reopened on SIGHUP (and no longer in the
    /// log).
    File(PathBuf),
}

impl std::fmt::Display for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditSink::Log => f.write_str("log"),
            AuditSink::Stdout => f.write_str("stdout"),
            AuditSink::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl Serialize for AuditSink {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AuditSink {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "log" => Ok(AuditSink::Log),
            "stdout" => Ok(AuditSink::Stdout),
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.trim().is_empty() => Ok(AuditSink::File(PathBuf::from(p))),
                _ => Err(serde::de::Error::custom(format!(
                    "{s:?}: expected \"log\", \"stdout\" or \"file:PATH\""
                ))),
            },
        }
    }
}

/// `[audit]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// `"log"` (default), `"stdout"` or `"file:PATH"`.
    pub sink: AuditSink,
}
