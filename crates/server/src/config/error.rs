//! [`ConfigError`]: why a configuration cannot be used (every variant names the key).

use std::path::PathBuf;

/// Why the configuration cannot be used. Every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// TOML syntax error.
    #[error("config file {path} is not valid TOML: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// Unknown key or wrong type/value, with the dotted key path.
    #[error("config key `{key}`: {reason}")]
    Key {
        /// Dotted path, e.g. `server.listen`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// An environment override could not be applied.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        reason: String,
    },
}

pub(super) fn key_err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_owned(),
        reason: reason.into(),
    }
}
