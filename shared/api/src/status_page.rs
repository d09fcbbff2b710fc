//! `GET /status`: the status page. The server renders the page shell (no build step: the CSS
//! and a little vanilla JS are inlined); the script asks for the admin token once, keeps it in
//! `sessionStorage`, and reads everything it shows from the config API. Contact data only ever
//! reaches the page as text nodes, and a Content-Security-Policy that allows exactly the
//! inlined script and style (by hash) stops anything else from running.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;

const STYLE: &str = include_str!("status_page/page.css");
const SCRIPT: &str = include_str!("status_page/page.js");

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(status_page))
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn csp_hash(source: &str) -> String {
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(source.as_bytes())))
}

struct Page {
    html: String,
    csp: HeaderValue,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>hmsync · status</title>
<style>{STYLE}</style>
</head>
<body>
<header>
  <h1>hmsync <span class="subtitle">HubSpot ↔ MailerLite</span></h1>
  <div class="header-actions">
    <span id="updated" aria-live="polite"></span>
    <button type="button" id="refresh" hidden>Refresh</button>
    <button type="button" id="forget" hidden>Forget token</button>
  </div>
</header>
<main>
  <form id="login" hidden>
    <h2>Sign in</h2>
    <p>Enter the deployment's admin token. It is kept in this browser tab only.</p>
    <label for="token">Admin token</label>
    <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required>
    <button type="submit" id="login-submit">Show status</button>
    <p id="login-error" class="error" role="alert"></p>
  </form>
  <p id="message" role="status" aria-live="polite"></p>
  <div id="connections"></div>
</main>
<noscript><p>The status page needs JavaScript; the same data is in the API (GET /connections/{{id}}/status).</p></noscript>
<script>{SCRIPT}</script>
</body>
</html>
"#
    );
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        csp_hash(SCRIPT),
        csp_hash(STYLE)
    );
    Page { html, csp: HeaderValue::from_str(&csp).expect("the CSP is a valid header") }
});

/// The status page (public: it holds no data until the admin token is entered).
#[utoipa::path(
    get,
    path = "/status",
    tag = "meta",
    responses((status = 200, description = "The status page", content_type = "text/html", body = String))
)]
async fn status_page() -> Response {
    let page = &*PAGE;
    let mut response = Html(page.html.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, page.csp.clone());
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn the_csp_allows_exactly_the_inlined_script_and_style() {
        let csp = PAGE.csp.to_str().unwrap();
        assert!(csp.contains(&csp_hash(SCRIPT)) && csp.contains(&csp_hash(STYLE)), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(PAGE.html.contains(&format!("<script>{SCRIPT}</script>")));
    }

    #[test]
    fn the_script_never_writes_markup() {
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            assert!(!SCRIPT.contains(sink), "page.js uses {sink}");
        }
    }
}
