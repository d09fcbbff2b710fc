//! The HubSpot OAuth install: `start` sends the admin to HubSpot's authorize page with the
//! scopes the sync needs and a signed, expiring, single-use `state` naming the connection;
//! HubSpot sends the browser back to `callback`, which checks the state, exchanges the code with
//! the connection's stored client id and secret, stores the tokens and shows the result.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use hmsync_engine::adapters::HubSpotAuth;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;
use crate::auth::{OAuthState, StateError};
use crate::connections::connection;
use crate::error::{ErrorBody, HttpError};
use crate::status_page::escape;

pub use hmsync_engine::scopes::{OPTIONAL_SCOPES, REQUIRED_SCOPES};

/// How long a started install may take.
pub const STATE_TTL: Duration = Duration::from_secs(10 * 60);

pub fn protected_routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(start))
}

pub fn public_routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(callback))
}

/// Where to send the browser to install the HubSpot app.
#[derive(Serialize, ToSchema)]
pub struct OAuthStart {
    /// HubSpot's authorize page (also in the `Location` header).
    pub authorize_url: String,
    /// The install must be finished before then (epoch ms).
    pub expires_at_ms: i64,
}

/// Starts the HubSpot OAuth install of a connection: 302 to HubSpot's authorize page. Needs the
/// OAuth app's client id and secret stored first (`PUT /connections/{id}/credentials` with
/// `{"hubspot": {"type": "oauth", ...}}`).
#[utoipa::path(
    get,
    path = "/connections/{id}/oauth/hubspot/start",
    tag = "credentials",
    security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "Connection id"),
        ("redirect" = Option<bool>, Query, description = "`false`: answer 200 with the URL instead of redirecting (for a page that calls the API with the token and then navigates itself)"),
    ),
    responses(
        (status = 200, description = "With `redirect=false`: HubSpot's authorize page", body = OAuthStart),
        (status = 302, description = "To HubSpot's authorize page", body = OAuthStart,
            headers(("Location" = String, description = "HubSpot's authorize URL"))),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "No OAuth client id and secret are stored", body = ErrorBody),
        (status = 422, description = "`redirect` is neither true nor false", body = ErrorBody),
        (status = 503, description = "Storage is unavailable or throttled; try again", body = ErrorBody),
    )
)]
async fn start(
    State(api): State<Api>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    connection(&api, &id).await?;
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let redirect = match q.get("redirect").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => {
            return Err(HttpError::invalid(vec![crate::error::FieldProblem::new(
                "redirect",
                "redirect is true or false",
                "Leave it out to be redirected, or send redirect=false to get the URL.",
            )]));
        }
    };
    let Some(HubSpotAuth::OAuth { client_id, .. }) = api.engine.credentials(&id).await?.hubspot else {
        return Err(HttpError::conflict("the connection has no HubSpot OAuth client id and secret").with_action(
            "Store them first: PUT /connections/{id}/credentials with {\"hubspot\": {\"type\": \"oauth\", \"client_id\": …, \"client_secret\": …}}.",
        ));
    };
    let expires_at_ms = api.engine.now_ms() + STATE_TTL.as_millis() as i64;
    let state = api.states.sign(&OAuthState {
        connection_id: id.clone(),
        expires_at_ms,
        nonce: uuid::Uuid::new_v4().simple().to_string(),
    });
    let authorize_url = hmsync_hubspot::authorize_url(
        &api.hubspot_oauth.app_url,
        &client_id,
        &api.oauth_redirect_uri(),
        &REQUIRED_SCOPES,
        &OPTIONAL_SCOPES,
        Some(&state),
    );
    tracing::info!(connection = %id, "HubSpot OAuth install started");
    let location = HeaderValue::from_str(&authorize_url)
        .map_err(|_| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "the authorize URL is not a valid header"))?;
    if !redirect {
        return Ok(Json(OAuthStart { authorize_url, expires_at_ms }).into_response());
    }
    Ok((StatusCode::FOUND, [(header::LOCATION, location)], Json(OAuthStart { authorize_url, expires_at_ms }))
        .into_response())
}

/// HubSpot sends the browser here after the user approved (or declined) the install. Public:
/// the signed `state` is the authentication. Answers an HTML page for the person.
#[utoipa::path(
    get,
    path = "/oauth/hubspot/callback",
    tag = "credentials",
    params(
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("state" = String, Query, description = "The state `start` issued (signed, single-use, valid for 10 minutes)"),
        ("error" = Option<String>, Query, description = "Set when the user declined or HubSpot refused"),
        ("error_description" = Option<String>, Query, description = "HubSpot's explanation of `error`"),
    ),
    responses(
        (status = 200, description = "Installed: the tokens are stored", content_type = "text/html", body = String),
        (status = 400, description = "Missing, bad, expired or used state; declined install; missing code", content_type = "text/html", body = String),
        (status = 404, description = "The connection was deleted meanwhile", content_type = "text/html", body = String),
        (status = 409, description = "The connection's OAuth client changed meanwhile, or the install was in another portal than the one the connection is pinned to (both named; nothing stored)", content_type = "text/html", body = String),
        (status = 502, description = "HubSpot refused the code", content_type = "text/html", body = String),
    )
)]
async fn callback(State(api): State<Api>, RawQuery(query): RawQuery) -> Response {
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let again = "Start the installation again from hmsync (GET /connections/{id}/oauth/hubspot/start).";
    let Some(signed) = q.get("state") else {
        return page(StatusCode::BAD_REQUEST, "Installation failed", &["The link has no state.".into(), again.into()])
            .into_response();
    };
    let state = match api.states.verify(signed, api.engine.now_ms()) {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(reason = %e, "HubSpot OAuth callback refused");
            let why = match e {
                StateError::Expired => "The installation link expired (it is valid for 10 minutes).",
                StateError::Malformed | StateError::BadSignature => {
                    "The installation link was not issued by this hmsync."
                }
            };
            return page(StatusCode::BAD_REQUEST, "Installation failed", &[why.into(), again.into()]).into_response();
        }
    };
    let id = state.connection_id.clone();
    // Back to the connection's HubSpot step of the setup screens (the state names the
    // connection, and is signed by this deployment).
    let back = format!("{}/status#/setup/{}/hubspot", api.public_base_url.trim_end_matches('/'), id);
    if let Some(error) = q.get("error") {
        let description = q.get("error_description").map(String::as_str).unwrap_or("no description");
        tracing::info!(connection = %id, "HubSpot OAuth install declined");
        return page(
            StatusCode::BAD_REQUEST,
            "HubSpot did not authorize hmsync",
            &[format!("HubSpot answered {error}: {description}."), again.into()],
        )
        .with_link(&back, "Back to the setup");
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
        return page(StatusCode::BAD_REQUEST, "Installation failed", &["HubSpot sent no code.".into(), again.into()])
            .with_link(&back, "Back to the setup");
    };
    match install(&api, &state, code).await {
        Ok(body) => page(StatusCode::OK, "HubSpot is connected", &body).with_link(&back, "Continue the setup"),
        Err((status, lines)) => page(status, "Installation failed", &lines).with_link(&back, "Back to the setup"),
    }
}

/// Consumes the state, exchanges the code and stores the tokens; the page's lines either way.
async fn install(api: &Api, state: &OAuthState, code: &str) -> Result<Vec<String>, (StatusCode, Vec<String>)> {
    let id = &state.connection_id;
    let again = "Start the installation again from hmsync.".to_string();
    let internal = |e: String| {
        tracing::error!(connection = %id, error = %e, "HubSpot OAuth install failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            vec![format!("hmsync could not finish the installation: {e}"), again.clone()],
        )
    };
    let Some(conn) = api.engine.store.get_connection(id).await.map_err(|e| internal(e.to_string()))? else {
        return Err((StatusCode::NOT_FOUND, vec![format!("The connection {id} no longer exists.")]));
    };
    // Each state installs once (the store remembers consumed nonces past their expiry).
    let fresh = api
        .engine
        .store
        .mark_events_seen(id, &[format!("oauth-state:{}", state.nonce)], STATE_TTL * 2)
        .await
        .map_err(|e| internal(e.to_string()))?;
    if fresh.first() != Some(&true) {
        return Err((StatusCode::BAD_REQUEST, vec!["This installation link was already used.".into(), again]));
    }
    let credentials = api.engine.credentials(id).await.map_err(|e| internal(e.to_string()))?;
    let Some(HubSpotAuth::OAuth { client_id, client_secret, .. }) = credentials.hubspot else {
        return Err((
            StatusCode::CONFLICT,
            vec!["The connection no longer has HubSpot OAuth client credentials.".into(), again],
        ));
    };
    let tokens = hmsync_hubspot::exchange_code(
        &api.hubspot_oauth.api_url,
        &client_id,
        &client_secret,
        &api.oauth_redirect_uri(),
        code,
    )
    .await
    .map_err(|e| {
        tracing::warn!(connection = %id, error = %e, "HubSpot refused the OAuth code");
        (StatusCode::BAD_GATEWAY, vec![format!("HubSpot refused the authorization code: {e}"), again.clone()])
    })?;
    if let Err(refusal) = api
        .engine
        .store_oauth_tokens(id, &client_id, &client_secret, &tokens)
        .await
        .map_err(|e| internal(e.to_string()))?
    {
        tracing::info!(connection = %id, hub_id = ?tokens.hub_id, "HubSpot OAuth install in another portal refused");
        return Err((StatusCode::CONFLICT, vec![format!("{refusal}."), again]));
    }
    tracing::info!(connection = %id, hub_id = ?tokens.hub_id, "HubSpot OAuth install finished");
    let mut lines = vec![format!(
        "hmsync can now reach HubSpot{} for the connection \u{201c}{}\u{201d}.",
        tokens.hub_id.map(|h| format!(" portal {h}")).unwrap_or_default(),
        conn.config.name
    )];
    let missing: Vec<&str> =
        OPTIONAL_SCOPES.iter().copied().filter(|s| !tokens.scopes.iter().any(|g| g == s)).collect();
    if !missing.is_empty() && !tokens.scopes.is_empty() {
        lines.push(format!(
            "HubSpot did not grant {} (the portal lacks the tool): MailerLite unsubscribes are recorded on the contact but not as HubSpot email opt-outs.",
            missing.join(", ")
        ));
    }
    lines.push("You can close this page.".into());
    Ok(lines)
}

/// A result page of the callback, before it is answered.
struct Page {
    status: StatusCode,
    title: String,
    lines: Vec<String>,
    link: Option<(String, String)>,
}

impl Page {
    /// Adds a link (e.g. back to the setup screens).
    fn with_link(mut self, href: &str, text: &str) -> Response {
        self.link = Some((href.to_string(), text.to_string()));
        self.into_response()
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        render(self.status, &self.title, &self.lines, self.link.as_ref())
    }
}

fn page(status: StatusCode, title: &str, lines: &[String]) -> Page {
    Page { status, title: title.to_string(), lines: lines.to_vec(), link: None }
}

/// A small HTML page; every line and the link are escaped.
fn render(status: StatusCode, title: &str, lines: &[String], link: Option<&(String, String)>) -> Response {
    let mut body: String = lines.iter().map(|l| format!("<p>{}</p>", escape(l))).collect();
    if let Some((href, text)) = link {
        body.push_str(&format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(text)));
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · hmsync</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem\">\
         <h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    // The page's URL holds the code and state: do not hand it to other sites.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
