//! Local users: `[[identity.users]]` in the configuration with argon2id hashes
//! (docs/architecture.md, *Authorization server*).
//!
//! Passwords are verified with argon2id (RFC 9106) on the blocking thread pool, never on the
//! async executor. An unknown username is verified against a dummy hash with the same cost
//! parameters, so the response time does not reveal which usernames exist; the caller shows
//! one message for both cases (no user enumeration).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::LocalUser;
use crate::secret::ExposeSecret;

/// A user who proved their password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIdentity {
    /// The subject (`sub`): the username.
    pub subject: String,
    /// Display name from the config, if any.
    pub name: Option<String>,
}

/// Why a password could not be hashed or checked (a server fault, not a wrong password).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PasswordError {
    /// The stored hash or the parameters are unusable.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task could not run.
    #[error("password verification task failed: {0}")]
    Task(String),
}

struct Entry {
    hash: String,
    name: Option<String>,
}

/// The configured local users.
pub struct LocalUsers {
    users: HashMap<String, Entry>,
    /// Cost parameters of the first configured hash (the dummy uses them).
    params: Params,
    dummy: Arc<OnceLock<String>>,
}

impl LocalUsers {
    /// Build from `[[identity.users]]`. Every hash must be an argon2id PHC string (the config
    /// check already requires the prefix; this parses it fully).
    pub fn new(users: &[LocalUser]) -> Result<Self, PasswordError> {
        let mut map = HashMap::new();
        let mut params = None;
        for u in users {
            let parsed = PasswordHash::new(u.password_hash.expose_secret()).map_err(|e| {
                PasswordError::Hash(format!("user {:?}: invalid PHC string: {e}", u.username))
            })?;
            if parsed.algorithm.as_str() != "argon2id" || parsed.hash.is_none() {
                return Err(PasswordError::Hash(format!(
                    "user {:?}: not an argon2id hash with salt and digest",
                    u.username
                )));
            }
            if params.is_none() {
                params = Params::try_from(&parsed).ok();
            }
            map.insert(
                u.username.clone(),
                Entry {
                    hash: u.password_hash.expose_secret().to_owned(),
                    name: u.name.clone(),
                },
            );
        }
        Ok(LocalUsers {
            users: map,
            params: params.unwrap_or_default(),
            dummy: Arc::new(OnceLock::new()),
        })
    }

    /// Check `username`/`password`. `Ok(None)` for a wrong password **or** an unknown user.
    pub async fn verify(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<LocalIdentity>, PasswordError> {
        let known = self.users.get(username);
        let hash = known.map(|e| e.hash.clone());
        let params = self.params.clone();
        let dummy = Arc::clone(&self.dummy);
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || -> Result<bool, PasswordError> {
            match hash {
                Some(h) => verify_phc(&h, &password),
                None => {
                    // Same work as a real check, result ignored.
                    let d = match dummy.get() {
                        Some(d) => d.clone(),
                        None => {
                            let d = hash_with(&password, params)?;
                            dummy.get_or_init(|| d).clone()
                        }
                    };
                    let _ = verify_phc(&d, "not the password");
                    Ok(false)
                }
            }
        })
        .await
        .map_err(|e| PasswordError::Task(e.to_string()))??;
        Ok(match (ok, known) {
            (true, Some(e)) => Some(LocalIdentity {
                subject: username.to_owned(),
                name: e.name.clone(),
            }),
            _ => None,
        })
    }
}

fn verify_phc(phc: &str, password: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

fn hash_with(password: &str, params: Params) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Hash("no randomness".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Hash a password for `[[identity.users]]` (`cimdgate hash-password`): an argon2id PHC string
/// with a random 16-byte salt and the `argon2` crate's default (OWASP-recommended) parameters.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    hash_with(password, Params::default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cheap_hash(pw: &str) -> String {
        hash_with(pw, Params::new(256, 1, 1, None).unwrap()).unwrap()
    }

    fn users() -> LocalUsers {
        LocalUsers::new(&[LocalUser {
            username: "alice".into(),
            password_hash: cheap_hash("pw").into(),
            name: Some("Alice".into()),
        }])
        .unwrap()
    }

    #[tokio::test]
    async fn correct_password_logs_in_wrong_or_unknown_does_not() {
        let u = users();
        let cases = [
            ("alice", "pw", true),
            ("alice", "PW", false),
            ("alice", "", false),
            ("bob", "pw", false),
        ];
        for (user, pw, ok) in cases {
            assert_eq!(
                u.verify(user, pw).await.unwrap().is_some(),
                ok,
                "{user}/{pw}"
            );
        }
    }

    #[test]
    fn hash_password_is_argon2id_with_random_salt() {
        let a = hash_password("x").unwrap();
        let b = hash_password("x").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_phc(&a, "x").unwrap());
    }

    #[test]
    fn invalid_phc_string_is_refused_at_startup() {
        for bad in [
            "$argon2id$garbage",
            "plain",
            "$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        ] {
            let err = LocalUsers::new(&[LocalUser {
                username: "a".into(),
                password_hash: bad.into(),
                name: None,
            }]);
            assert!(err.is_err(), "{bad}");
        }
    }
}
