//! The authenticated admin API, mounted at `/admin/v1` by [`super::router`] behind the rate
//! limit and the token check: handlers here never see an unauthenticated request.
//!
//! | route | what |
//! |---|---|
//! | `GET /admin/v1/whoami` | `{"ok": true}`: the token is accepted |
//! | `/admin/v1/clients…` | the client inventory and the administrator's actions ([`super::clients`]) |

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AdminCtx;

/// The `/admin/v1` routes (paths relative to it). Add endpoints here.
pub fn routes(ctx: Arc<AdminCtx>) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .with_state(ctx.clone())
        .merge(super::clients::routes(ctx))
}

async fn whoami() -> Json<Value> {
    Json(json!({"ok": true}))
}
