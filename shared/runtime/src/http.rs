//! The HTTP functions (hubspot-webhook, mailerlite-webhook, config-api): a router of
//! `hmsync-api` served through `lambda_http`, which turns each API Gateway v2 event into an
//! `http::Request` with an absolute URI (`https://<host>/<path>`).
//!
//! HubSpot signs the full URL it called. When no public base URL is configured, the router is
//! given the scheme and host of the request itself: API Gateway routes by host, so that is
//! the API's own domain (or its custom domain) — the URL HubSpot called.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use axum::response::Response;
use hmsync_api::AppState;
use lambda_http::Request;
use lambda_http::http::Uri;
use tower::{Service, ServiceExt};

/// Which routes a function serves (`hmsync_api::webhook_routes` or `hmsync_api::router`).
pub type Routes = fn(AppState) -> Router;

/// The service a Lambda HTTP function hands to `lambda_http::run`.
#[derive(Clone)]
pub struct HttpApp {
    state: AppState,
    routes: Routes,
    /// Built once when the public base URL is configured.
    fixed: Option<Router>,
    /// Otherwise, the router for the last base URL seen (one deployment is reached under one
    /// host, so this is built once per cold start in practice).
    last: Arc<Mutex<Option<(String, Router)>>>,
}

impl HttpApp {
    /// `state.public_base_url` is replaced: by `public_base_url` when one is configured, else by
    /// each request's own scheme and host.
    pub fn new(state: AppState, public_base_url: Option<String>, routes: Routes) -> Self {
        let fixed = public_base_url.map(|public_base_url| routes(AppState { public_base_url, ..state.clone() }));
        Self { state, routes, fixed, last: Arc::new(Mutex::new(None)) }
    }

    fn router_for(&self, uri: &Uri) -> Router {
        if let Some(router) = &self.fixed {
            return router.clone();
        }
        let base = base_url(uri);
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((seen, router)) = last.as_ref()
            && *seen == base
        {
            return router.clone();
        }
        let router = (self.routes)(AppState { public_base_url: base.clone(), ..self.state.clone() });
        *last = Some((base, router.clone()));
        router
    }
}

/// `scheme://authority` of an absolute URI; empty for a relative one (a request without a host
/// cannot have been signed for a URL, so signature checks then fail, as they should).
pub fn base_url(uri: &Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
        _ => String::new(),
    }
}

impl Service<Request> for HttpApp {
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let router = self.router_for(request.uri());
        Box::pin(router.oneshot(request))
    }
}
