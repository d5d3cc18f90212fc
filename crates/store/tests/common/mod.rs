//! Record fixtures shared by the store's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cimdgate_store::embedded::EmbeddedStore;
use cimdgate_store::{
    ClientKind, ClientRecord, CodeRecord, ConsentRecord, DocumentBinding, Grant, RefreshRecord,
    RegisteredClient, Scopes, SigningKeyRecord, TokenHash,
};

pub const HOUR: Duration = Duration::from_secs(3600);

/// Now, truncated to whole seconds (what the store keeps), so records compare equal after a
/// round trip.
pub fn now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}
/// One instant per test process, in whole seconds, for the record fields that only need to
/// survive a round trip (creation and decision times, and the expiry times of `past`/`future`,
/// which stay an hour either side of the real clock for any test process under an hour). Two fixtures built a moment apart must
/// compare equal even when a second boundary falls between them.
pub fn stamp() -> SystemTime {
    static STAMP: OnceLock<SystemTime> = OnceLock::new();
    *STAMP.get_or_init(now)
}
pub fn past() -> SystemTime {
    stamp() - HOUR
}
pub fn future() -> SystemTime {
    stamp() + HOUR
}

pub fn open_temp() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    (dir, store)
}

pub fn hash(s: &str) -> TokenHash {
    TokenHash::of(s)
}

/// The grant of family `family` (a CIMD client's, approved by alice for `mcp`).
pub fn grant(family: &str, document: Option<DocumentBinding>, idp_ref: Option<&str>) -> Grant {
    Grant {
        client_id: "https://client.example/cimd.json".into(),
        client_kind: ClientKind::Cimd,
        subject: "alice".into(),
        scope: Scopes::parse("mcp"),
        resource: "https://as.example/mcp".into(),
        family_id: family.into(),
        document,
        idp_ref: idp_ref.map(Into::into),
        created_at: None,
    }
}

pub fn code(family: &str, expires_at: SystemTime) -> CodeRecord {
    let document = DocumentBinding {
        digest: "abc".into(),
        auth_method: "none".into(),
    };
    CodeRecord {
        grant: grant(family, Some(document), None),
        redirect_uri: "http://127.0.0.1:9999/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        auth_time: stamp(),
        expires_at,
    }
}

pub fn refresh(family: &str, expires_at: SystemTime) -> RefreshRecord {
    RefreshRecord {
        grant: grant(family, None, Some("up-1")),
        issued_at: stamp(),
        expires_at,
    }
}

pub fn consent(subject: &str, client_id: &str, expires_at: SystemTime) -> ConsentRecord {
    ConsentRecord {
        subject: subject.into(),
        client_id: client_id.into(),
        approved: true,
        scope: "mcp".into(),
        resource: Some("https://as.example/mcp".into()),
        redirect_uri: "127.0.0.1".into(),
        document_hash: Some("abc".into()),
        decided_at: stamp(),
        expires_at,
    }
}

pub fn dcr_client(id: &str) -> RegisteredClient {
    RegisteredClient {
        client_id: id.into(),
        secret_hash: Some("h".into()),
        token_endpoint_auth_method: "client_secret_basic".into(),
        redirect_uris: vec!["https://app.example/cb".into()],
        client_name: Some("App".into()),
        grant_types: vec!["authorization_code".into()],
        scope: None,
        created_at: stamp(),
        expires_at: None,
    }
}

pub fn signing_key(kid: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        private_pkcs8_b64: format!("key-{kid}").into(),
        created_at: stamp(),
    }
}

pub fn seen(client_id: &str, name: Option<&str>, at: SystemTime) -> ClientRecord {
    let mut rec = ClientRecord::new(client_id, ClientKind::Cimd, "client.example", at);
    rec.snapshot.client_name = name.map(Into::into);
    rec
}

/// An embedded store in a temporary folder, as a trait object.
pub fn open_embedded_dyn() -> (tempfile::TempDir, std::sync::Arc<dyn cimdgate_store::Store>) {
    let (dir, s) = open_temp();
    (dir, std::sync::Arc::new(s))
}

/// A Redis store on a private `redis-server` (killed when the guard drops).
pub async fn open_redis_dyn() -> (
    cimdgate_test_support::RedisServer,
    std::sync::Arc<dyn cimdgate_store::Store>,
) {
    let (server, s) = open_redis().await;
    (server, std::sync::Arc::new(s))
}

/// A Redis store on a private `redis-server`.
pub async fn open_redis() -> (
    cimdgate_test_support::RedisServer,
    cimdgate_store::redis::RedisStore,
) {
    let server = cimdgate_test_support::RedisServer::start();
    let store = cimdgate_store::redis::RedisStore::open(&server.url())
        .await
        .unwrap();
    (server, store)
}

/// A Redis store on `url` (a shared cluster or Sentinel setup) under a key prefix of its own,
/// so tests sharing the deployment never see each other's keys. The prefix has no `{…}`:
/// keys spread over the cluster's slots as in production.
pub async fn open_redis_shared(url: &str) -> std::sync::Arc<dyn cimdgate_store::Store> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let options = cimdgate_store::redis::RedisOptions {
        key_prefix: format!(
            "t{}-{}:",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
        ..Default::default()
    };
    let store = cimdgate_store::redis::RedisStore::open_with(url, options)
        .await
        .unwrap();
    std::sync::Arc::new(store)
}

/// Generate one test per backend for each shared test `async fn name(s: Arc<dyn Store>)`.
#[allow(unused_macros)]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (_dir, s) = super::common::open_embedded_dyn();
                    super::$name(s).await;
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (_redis, s) = super::common::open_redis_dyn().await;
                    super::$name(s).await;
                }
            )*
        }
        mod on_redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let url = cimdgate_test_support::RedisCluster::shared().url();
                    super::$name(super::common::open_redis_shared(&url).await).await;
                }
            )*
        }
        mod on_redis_sentinel {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let url = cimdgate_test_support::RedisSentinel::shared().url();
                    super::$name(super::common::open_redis_shared(&url).await).await;
                }
            )*
        }
    };
}
