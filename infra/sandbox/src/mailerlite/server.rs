//! Serving an account: the `/api` routes behind auth, the rate limits, instrumentation and
//! webhook flushing, the admin routes beside them, and [`MailerLiteSim`], an account bound to a
//! local port.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use http::Method;
use tokio::task::JoinHandle;

use super::account::{MailerLite, MailerLiteConfig};
use super::limits::{WITHOUT_USER_AGENT, set_rate_headers, unauthenticated};
use super::{admin, api};
use crate::common::{ChangedBy, instrument};

impl MailerLite {
    /// The full router: `/api/*` (auth, limits, instrumentation) and `/__sandbox/mailerlite/*`.
    pub fn router(&self) -> Router {
        let api = api::routes()
            .route_layer(from_fn_with_state(self.clone(), gate))
            .route_layer(from_fn_with_state(self.instrumentation().clone(), instrument))
            .route_layer(from_fn_with_state(self.clone(), fill_rate_headers))
            .fallback(gated_route_not_found)
            .with_state(self.clone());
        api.merge(admin::routes().with_state(self.clone()))
    }
}

/// Auth, rate limits and webhook flushing around every `/api` route.
async fn gate(State(ml): State<MailerLite>, req: Request, next: Next) -> Response {
    if !ml.authorized(req.headers()) {
        let mut r = unauthenticated();
        set_rate_headers(r.headers_mut(), ml.limit(), ml.remaining());
        return r;
    }
    let (req, import) = classify(req).await;
    let remaining = match ml.admit(import) {
        Ok(remaining) => remaining,
        Err(r) => return *r,
    };
    // Every official SDK names itself; the sandbox counts the requests that do not (the real
    // API sits behind Cloudflare, which may treat them as bots).
    if !req.headers().contains_key(http::header::USER_AGENT) {
        ml.instrumentation().stats.count_bucket(WITHOUT_USER_AGENT);
    }
    let mut response = next.run(req).await;
    ml.flush_webhooks(ChangedBy::Api);
    set_rate_headers(response.headers_mut(), ml.limit(), remaining);
    response
}

/// Outermost: responses that never reached [`gate`] (injected faults) still carry the
/// rate-limit headers, as every real response does.
async fn fill_rate_headers(State(ml): State<MailerLite>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if !response.headers().contains_key("x-ratelimit-remaining") {
        set_rate_headers(response.headers_mut(), ml.limit(), ml.remaining());
    }
    response
}

/// Whether a request counts against the import window: group imports, and batches made only of
/// `POST api/subscribers` (the body is read and put back).
async fn classify(req: Request) -> (Request, bool) {
    let path = req.uri().path().to_string();
    if req.method() == Method::POST && path.ends_with("/import-subscribers") {
        return (req, true);
    }
    if !(req.method() == Method::POST && path == "/api/batch") {
        return (req, false);
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let import = api::is_upsert_only_batch(&bytes);
    (Request::from_parts(parts, Body::from(bytes)), import)
}

/// Unknown `/api` routes: still authenticated and counted, then the real 404 body.
async fn gated_route_not_found(State(ml): State<MailerLite>, req: Request) -> Response {
    if !ml.authorized(req.headers()) {
        let mut r = unauthenticated();
        set_rate_headers(r.headers_mut(), ml.limit(), ml.remaining());
        return r;
    }
    let remaining = match ml.admit(false) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let mut r = api::route_not_found(req).await;
    set_rate_headers(r.headers_mut(), ml.limit(), remaining);
    r
}

/// A running simulator bound to a local port.
pub struct MailerLiteSim {
    account: MailerLite,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::ops::Deref for MailerLiteSim {
    type Target = MailerLite;
    fn deref(&self) -> &MailerLite {
        &self.account
    }
}

impl MailerLiteSim {
    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves the API in a spawned task.
    pub async fn start(config: MailerLiteConfig, addr: SocketAddr) -> std::io::Result<MailerLiteSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Self::serve(MailerLite::new(config, format!("http://{addr}/api")), listener, Router::new())
    }

    /// Serves `account` on a bound listener (its base URL must be `http://<listener address>/api`),
    /// with `extra` routes on the same server (the combined sandbox adds its cross-side admin
    /// routes this way).
    pub fn serve(
        account: MailerLite,
        listener: tokio::net::TcpListener,
        extra: Router,
    ) -> std::io::Result<MailerLiteSim> {
        let addr = listener.local_addr()?;
        let app = account.router().merge(extra);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "mailerlite sandbox stopped");
            }
        });
        Ok(MailerLiteSim { account, addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The account handle (clone it to keep using the state after the sim is dropped).
    pub fn account(&self) -> &MailerLite {
        &self.account
    }
}

impl Drop for MailerLiteSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}
