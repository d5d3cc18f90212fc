//! Local users: `[[identity.users]]` in the configuration with argon2id hashes
//! (docs/architecture.md, *Authorization server*).
//!
//! Passwords are verified with argon2id (RFC 9106) on the blocking thread pool, never on the
//! async executor. An unknown username is verified against a dummy hash with the same cost
//! parameters, so the response time does not reveal which usernames exist; the caller shows
//! one message for both cases (no user enumeration).
//!
//! Against guessing and exhaustion (review finding M2):
//! - **per-username back-off** ([`LoginThrottle`]): after [`FREE_FAILURES`] failures in a row a
//!   username must wait, doubling from one second up to [`MAX_BACKOFF_SECS`]; while it waits no
//!   password is checked. Known and unknown usernames are treated alike (no enumeration). The
//!   count is per instance; a success resets it;
//! - **bounded hashing**: at most [`max_concurrent_hashes`] argon2 computations run at once; a
//!   request that cannot start one within [`HASH_QUEUE_WAIT`] is refused as busy instead of
//!   queueing memory and CPU without bound.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

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

/// Failures in a row a username may have before it must wait.
pub const FREE_FAILURES: u32 = 5;
/// Longest wait imposed on one username.
pub const MAX_BACKOFF_SECS: u64 = 15 * 60;
/// Usernames tracked by the throttle (least recently failed ones are forgotten first).
const THROTTLE_CAPACITY: u64 = 100_000;
/// Longest wait for a free argon2 slot before the login is refused as busy.
pub const HASH_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Argon2 computations allowed at once: two per CPU (each uses one core and ~19 MiB).
pub fn max_concurrent_hashes() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

/// The outcome of a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The password is right.
    Ok(LocalIdentity),
    /// Wrong password or unknown user (one answer for both).
    Refused,
    /// Too many failures for this username: try again after this many seconds. No password
    /// was checked.
    Throttled {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
}

/// Consecutive login failures per username, and the wait they impose.
pub struct LoginThrottle {
    failures: moka::sync::Cache<String, (u32, Instant)>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            failures: moka::sync::Cache::builder()
                .max_capacity(THROTTLE_CAPACITY)
                .time_to_idle(Duration::from_secs(MAX_BACKOFF_SECS * 2))
                .build(),
        }
    }
}

impl LoginThrottle {
    /// The wait after `failures` failures in a row.
    pub fn backoff(failures: u32) -> Duration {
        if failures < FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (failures - FREE_FAILURES).min(20);
        Duration::from_secs((1u64 << doublings).min(MAX_BACKOFF_SECS))
    }

    /// Seconds `username` must still wait at `now` (0: it may try).
    pub fn wait(&self, username: &str, now: Instant) -> u64 {
        let Some((n, last)) = self.failures.get(username) else {
            return 0;
        };
        let until = last + Self::backoff(n);
        until.saturating_duration_since(now).as_secs_f64().ceil() as u64
    }

    /// Record a failure at `now`.
    pub fn failed(&self, username: &str, now: Instant) {
        let n = self.failures.get(username).map_or(0, |(n, _)| n);
        self.failures
            .insert(username.to_owned(), (n.saturating_add(1), now));
    }

    /// A success: the count starts again.
    pub fn succeeded(&self, username: &str) {
        self.failures.invalidate(username);
    }
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
    /// Every hashing slot stayed busy for [`HASH_QUEUE_WAIT`].
    #[error("too many sign-ins at once; try again shortly")]
    Busy,
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
    /// Per-username back-off.
    pub throttle: LoginThrottle,
    hashing: Arc<tokio::sync::Semaphore>,
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
            throttle: LoginThrottle::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(max_concurrent_hashes())),
        })
    }

    /// Whether `username` is (still) a configured user.
    pub fn exists(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// A login attempt: the back-off first (no password is checked while a username waits),
    /// then [`LocalUsers::verify`]; failures and successes update the back-off.
    pub async fn login(&self, username: &str, password: &str) -> Result<Login, PasswordError> {
        let wait = self.throttle.wait(username, Instant::now());
        if wait > 0 {
            return Ok(Login::Throttled {
                retry_after_secs: wait,
            });
        }
        match self.verify(username, password).await? {
            Some(id) => {
                self.throttle.succeeded(username);
                Ok(Login::Ok(id))
            }
            None => {
                self.throttle.failed(username, Instant::now());
                Ok(Login::Refused)
            }
        }
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
        let permit =
            tokio::time::timeout(HASH_QUEUE_WAIT, Arc::clone(&self.hashing).acquire_owned())
                .await
                .map_err(|_| PasswordError::Busy)?
                .map_err(|_| PasswordError::Busy)?;
        let ok = tokio::task::spawn_blocking(move || -> Result<bool, PasswordError> {
            let _permit = permit;
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
    fn backoff_doubles_after_the_free_failures_and_is_capped() {
        let cases = [
            (0, 0),
            (FREE_FAILURES - 1, 0),
            (FREE_FAILURES, 1),
            (FREE_FAILURES + 1, 2),
            (FREE_FAILURES + 5, 32),
            (FREE_FAILURES + 30, MAX_BACKOFF_SECS),
            (u32::MAX, MAX_BACKOFF_SECS),
        ];
        for (n, secs) in cases {
            assert_eq!(LoginThrottle::backoff(n).as_secs(), secs, "{n} failures");
        }
    }

    /// Review finding M2: after the free failures a username waits, and while it waits not even
    /// the right password is checked; unknown usernames are throttled alike; success resets.
    #[tokio::test]
    async fn repeated_failures_throttle_the_username_not_others() {
        let u = users();
        for user in ["alice", "nobody"] {
            for _ in 0..FREE_FAILURES {
                assert_eq!(u.login(user, "wrong").await.unwrap(), Login::Refused);
            }
            assert!(
                matches!(
                    u.login(user, "pw").await.unwrap(),
                    Login::Throttled { retry_after_secs } if retry_after_secs >= 1
                ),
                "{user}"
            );
        }
        // Another username is unaffected.
        let v = users();
        assert!(matches!(
            v.login("alice", "pw").await.unwrap(),
            Login::Ok(_)
        ));
        // Once the wait is over, the right password works and resets the count.
        let w = users();
        for _ in 0..FREE_FAILURES {
            let _ = w.login("alice", "wrong").await.unwrap();
        }
        w.throttle.failures.insert(
            "alice".into(),
            (FREE_FAILURES, Instant::now() - Duration::from_secs(5)),
        );
        assert!(matches!(
            w.login("alice", "pw").await.unwrap(),
            Login::Ok(_)
        ));
        assert_eq!(w.throttle.wait("alice", Instant::now()), 0);
    }

    /// At most `max_concurrent_hashes` argon2 runs at once: with every slot taken, a login is
    /// refused as busy after the queue wait rather than piling up.
    #[tokio::test]
    async fn hashing_is_bounded() {
        let u = users();
        let held: Vec<_> = (0..max_concurrent_hashes())
            .map(|_| Arc::clone(&u.hashing).try_acquire_owned().unwrap())
            .collect();
        let started = Instant::now();
        assert!(matches!(
            u.verify("alice", "pw").await,
            Err(PasswordError::Busy)
        ));
        assert!(started.elapsed() >= HASH_QUEUE_WAIT);
        drop(held);
        assert!(u.verify("alice", "pw").await.unwrap().is_some());
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
