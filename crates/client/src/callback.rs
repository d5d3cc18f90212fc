//! The loopback redirect listener (RFC 8252 §7.3): `http://127.0.0.1:PORT/callback` on an
//! ephemeral port, answering the first request to `/callback` and handing its query to the
//! flow. The client's metadata document lists the port-less `http://127.0.0.1/callback`, which
//! the authorization server matches for any port (RFC 8252 §7.3).
//!
//! The listener binds 127.0.0.1 only (never all interfaces) and stops after the first callback
//! or when dropped.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::ClientError;

/// Longest wait for the listener to finish answering after the redirect arrived.
pub const GRACEFUL_STOP: Duration = Duration::from_secs(2);

/// Path of the callback.
pub const CALLBACK_PATH: &str = "/callback";

/// The redirect URI to list in a client metadata document for this listener: port-less, so
/// any ephemeral port matches.
pub const DOCUMENT_REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// The query of the redirect back (RFC 6749 §4.1.2 / §4.1.2.1, RFC 9207 §2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackParams {
    /// Authorization code.
    pub code: Option<String>,
    /// `state` echoed back.
    pub state: Option<String>,
    /// Issuer (RFC 9207).
    pub iss: Option<String>,
    /// OAuth error code.
    pub error: Option<String>,
    /// Error detail.
    pub error_description: Option<String>,
}

impl CallbackParams {
    /// From a query map.
    pub fn from_query(q: &HashMap<String, String>) -> Self {
        let get = |k: &str| q.get(k).cloned();
        CallbackParams {
            code: get("code"),
            state: get("state"),
            iss: get("iss"),
            error: get("error"),
            error_description: get("error_description"),
        }
    }

    /// From a full redirect URL (`Location`).
    pub fn from_url(url: &url::Url) -> Self {
        Self::from_query(&url.query_pairs().into_owned().collect())
    }
}

type Slot = Arc<Mutex<Option<oneshot::Sender<CallbackParams>>>>;

/// A running loopback listener.
pub struct CallbackServer {
    addr: SocketAddr,
    rx: oneshot::Receiver<CallbackParams>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for CallbackServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

const DONE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>cimdgate \
login</title></head><body><p>Signed in. You can close this tab and return to the terminal.</p>\
</body></html>";

async fn receive(
    State(slot): State<Slot>,
    Query(q): Query<HashMap<String, String>>,
) -> Html<&'static str> {
    let sender = slot.lock().ok().and_then(|mut s| s.take());
    if let Some(tx) = sender {
        let _ = tx.send(CallbackParams::from_query(&q));
    }
    Html(DONE_PAGE)
}

impl CallbackServer {
    /// Bind `127.0.0.1:0` and start serving.
    pub async fn bind() -> Result<Self, ClientError> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| ClientError::protocol("loopback callback", format!("cannot bind: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ClientError::protocol("loopback callback", e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        let slot: Slot = Arc::new(Mutex::new(Some(tx)));
        let app = Router::new()
            .route(CALLBACK_PATH, get(receive))
            .with_state(slot);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(CallbackServer {
            addr,
            rx,
            stop: Some(stop),
            task,
        })
    }

    /// `http://127.0.0.1:PORT/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}{CALLBACK_PATH}", self.addr.port())
    }

    /// Wait for the redirect (at most `timeout`), then stop listening.
    pub async fn wait(mut self, timeout: Duration) -> Result<CallbackParams, ClientError> {
        let got = tokio::time::timeout(timeout, &mut self.rx).await;
        // Graceful stop: the browser still gets its "you can close this tab" page.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(GRACEFUL_STOP, &mut self.task).await;
        match got {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(ClientError::protocol(
                "loopback callback",
                "the listener stopped before the redirect arrived",
            )),
            Err(_) => Err(ClientError::protocol(
                "loopback callback",
                format!(
                    "no redirect to {} within {} s",
                    self.redirect_uri(),
                    timeout.as_secs()
                ),
            )),
        }
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
