//! `GET /status`: the status page and the setup screens. The server renders the page shell (no
//! build step: the CSS, the text catalogue and the plain-JS parts are compiled into the binary
//! and inlined); the script asks for the admin token once, keeps it in `sessionStorage`, and
//! reads and changes everything through the config API. Contact data only ever reaches the page
//! as text nodes, and a Content-Security-Policy that allows exactly the inlined script and
//! style (by hash) stops anything else from running; nothing is loaded from anywhere else, so
//! the page works offline.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;

const STYLE: &str = include_str!("status_page/page.css");

/// The one catalogue of the page's text (English): the shell's few words and everything the
/// script shows.
const TEXT: &str = include_str!("status_page/text.json");

/// The script's parts, in the order they are joined (one scope: later parts use earlier ones).
const SCRIPT_PARTS: [(&str, &str); 9] = [
    ("dom.js", include_str!("status_page/dom.js")),
    ("charts.js", include_str!("status_page/charts.js")),
    ("status.js", include_str!("status_page/status.js")),
    ("contact.js", include_str!("status_page/contact.js")),
    ("wizard.js", include_str!("status_page/wizard.js")),
    ("rules.js", include_str!("status_page/rules.js")),
    ("mapping.js", include_str!("status_page/mapping.js")),
    ("preview.js", include_str!("status_page/preview.js")),
    ("app.js", include_str!("status_page/app.js")),
];

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

/// The catalogue's text at `path` (`app.title`), for the shell.
fn text(catalogue: &serde_json::Value, path: &str) -> String {
    path.split('.')
        .try_fold(catalogue, |v, k| v.get(k))
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("text.json has no {path}"))
        .to_string()
}

/// The inline script: the catalogue as `TEXT`, then every part, in one strict-mode scope.
fn script() -> String {
    let catalogue: serde_json::Value = serde_json::from_str(TEXT).expect("text.json is JSON");
    let mut out = String::from("\"use strict\";\n(function () {\nconst TEXT = ");
    out.push_str(&catalogue.to_string());
    out.push_str(";\n");
    for (name, source) in SCRIPT_PARTS {
        out.push_str(&format!("// ---- {name}\n{source}\n"));
    }
    out.push_str("})();\n");
    out
}

struct Page {
    html: String,
    csp: HeaderValue,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let catalogue: serde_json::Value = serde_json::from_str(TEXT).expect("text.json is JSON");
    let t = |path: &str| escape(&text(&catalogue, path));
    let script = script();
    let html = format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<a class="skip" id="skip" href="#main"></a>
<header>
  <p class="brand"><span id="app-name">{name}</span> <span class="subtitle" id="app-subtitle">{subtitle}</span></p>
  <nav id="nav" hidden></nav>
  <div class="header-actions">
    <span id="updated" aria-live="polite"></span>
    <button type="button" id="refresh" hidden></button>
    <button type="button" id="forget" hidden></button>
  </div>
</header>
<main id="main" tabindex="-1">
  <p id="message" role="status" aria-live="polite"></p>
  <div id="view"></div>
</main>
<noscript><p>{noscript}</p></noscript>
<script>{script}</script>
</body>
</html>
"##,
        title = t("app.title"),
        name = t("app.name"),
        subtitle = t("app.subtitle"),
        noscript = t("app.noscript"),
    );
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        csp_hash(&script),
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
    use std::collections::BTreeSet;

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
        let script = script();
        assert!(csp.contains(&csp_hash(&script)) && csp.contains(&csp_hash(STYLE)), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(PAGE.html.contains(&format!("<script>{script}</script>")));
        assert_eq!(PAGE.html.matches("<script").count(), 1, "one script, the hashed one");
        assert!(!script.to_lowercase().contains("</script"), "nothing ends the script early");
        assert!(!PAGE.html.contains(" style=") && !PAGE.html.contains(" onclick="), "no inline style or handler");
    }

    #[test]
    fn the_script_never_writes_markup_nor_loads_anything() {
        for (name, source) in SCRIPT_PARTS {
            for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
                assert!(!source.contains(sink), "{name} uses {sink}");
            }
            // The SVG namespace is a name, not an address the page loads.
            let source = source.replace("\"http://www.w3.org/2000/svg\"", "");
            for remote in ["http://", "https://", "import(", "<script", "fetch(\"/", "fetch(\"http"] {
                assert!(!source.contains(remote), "{name} reaches out: {remote}");
            }
        }
    }

    /// Every `t("…")` key of the script is in the catalogue (keys built from a prefix are
    /// listed by the prefix and checked where their values are known).
    #[test]
    fn every_text_the_script_shows_is_in_the_one_catalogue() {
        let catalogue: serde_json::Value = serde_json::from_str(TEXT).unwrap();
        let has = |path: &str| path.split('.').try_fold(&catalogue, |v, k| v.get(k)).is_some();
        let mut keys = BTreeSet::new();
        for (_, source) in SCRIPT_PARTS {
            for (at, _) in source.match_indices("t(\"") {
                // `t(` itself, not the end of another name (`pct(`, `pickList(`).
                let before = source[..at].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || "_.$".contains(c)) {
                    continue;
                }
                let rest = &source[at + 3..];
                let key: String =
                    rest.chars().take_while(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)).collect();
                if rest[key.len()..].starts_with('"') && !key.ends_with('.') && !key.ends_with('_') {
                    keys.insert(key);
                }
            }
        }
        assert!(keys.len() > 250, "{} keys", keys.len());
        let missing: Vec<&String> = keys.iter().filter(|k| !has(k)).collect();
        assert!(missing.is_empty(), "not in text.json: {missing:?}");
        // Families the script indexes by a value of the API.
        for (prefix, values) in [
            ("lifecycle", &["draft", "initial_sync", "continuous"][..]),
            ("pause", &["user", "safety_valve", "credentials"]),
            ("scan", &["initial", "scheduled", "manual"]),
            ("steps", &["hubspot", "mailerlite", "direction", "rules", "fields", "options", "preview"]),
            (
                "dead.kind",
                &[
                    "contacts",
                    "scan_start",
                    "scan_page",
                    "hub_spot_merge",
                    "company_changed",
                    "engagement",
                    "unreadable",
                ],
            ),
            ("ml_status", &["active", "unsubscribed", "unconfirmed", "bounced", "junk"]),
            ("types.ml", &["text", "number", "date"]),
            ("direction", &["two_way", "hubspot_to_mailerlite", "mailerlite_to_hubspot"]),
            ("mapping.direction", &["two_way", "hubspot_to_mailerlite", "mailerlite_to_hubspot"]),
        ] {
            for v in values {
                assert!(has(&format!("{prefix}.{v}")), "text.json has no {prefix}.{v}");
            }
        }
        for basis in hmsync_core::validate::LEGAL_BASES {
            assert!(has(&format!("legal_basis.{basis}")), "text.json has no legal_basis.{basis}");
        }
        // Every reason the planner gives has its words.
        for reason in [
            "created",
            "linked",
            "filled_empty",
            "changed_on",
            "conflict_winner",
            "mirrors_source",
            "email_followed",
            "opted_out_in_hub_spot",
            "status_recorded",
            "added_to_target_group",
            "stopped_matching",
            "deleted_in",
            "restored_in",
            "blank_kept",
        ] {
            assert!(has(&format!("reason.{reason}")), "text.json has no reason.{reason}");
        }
        let created = serde_json::to_value(hmsync_core::Reason::OptedOutInHubSpot).unwrap();
        assert_eq!(created["reason"], "opted_out_in_hub_spot");
    }

    #[test]
    fn no_part_of_the_script_grows_past_800_lines() {
        for (name, source) in SCRIPT_PARTS {
            assert!(source.lines().count() <= 800, "{name} has {} lines", source.lines().count());
        }
    }
}
