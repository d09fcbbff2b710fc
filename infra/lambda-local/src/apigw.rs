//! API Gateway HTTP API in front of the functions: a loopback HTTP server that matches each
//! request to a route as API Gateway does (an exact path before a path with parameters before a
//! greedy `{proxy+}`; `ANY` matches every method), turns it into a payload format 2.0 event,
//! invokes the route's function and answers with the function's response (or API Gateway's own
//! 404, 413, 500 and 503).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::Invoke;
use crate::function::Outcome;

/// API Gateway's request payload limit (and Lambda's for a synchronous invocation).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// One route of the API, as the template's `HttpApi` events declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `None` for `ANY`.
    pub method: Option<Method>,
    /// `/webhooks/hubspot`, `/webhooks/mailerlite/{connection_id}`, `/{proxy+}`, `/`.
    pub path: String,
    pub function: String,
}

impl Route {
    pub fn new(method: &str, path: &str, function: &str) -> Route {
        let method = if method.eq_ignore_ascii_case("ANY") { None } else { method.parse().ok() };
        Route { method, path: path.to_string(), function: function.to_string() }
    }

    /// API Gateway's route key: `POST /webhooks/hubspot`, `ANY /{proxy+}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method.as_ref().map_or("ANY", |m| m.as_str()), self.path)
    }

    /// The path parameters if `path` matches, with how specific the match is (higher wins).
    fn matches(&self, method: &Method, path: &str) -> Option<(u32, BTreeMap<String, String>)> {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return None;
        }
        let mut params = BTreeMap::new();
        let pattern: Vec<&str> = self.path.trim_start_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut score = 0;
        for (i, part) in pattern.iter().enumerate() {
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
                // Greedy: the rest of the path, at least one character.
                let rest = actual.get(i..).map(|r| r.join("/")).unwrap_or_default();
                if rest.is_empty() {
                    return None;
                }
                params.insert(name.to_string(), rest);
                return Some((score, params));
            }
            let segment = actual.get(i)?;
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if segment.is_empty() {
                    return None;
                }
                params.insert(name.to_string(), segment.to_string());
                score += 2;
            } else if part == segment {
                score += 3;
            } else {
                return None;
            }
        }
        (actual.len() == pattern.len()).then_some((score + 1, params))
    }
}

/// The route API Gateway picks for a request, and its path parameters.
pub fn match_route<'a>(
    routes: &'a [Route],
    method: &Method,
    path: &str,
) -> Option<(&'a Route, BTreeMap<String, String>)> {
    routes
        .iter()
        .filter_map(|r| r.matches(method, path).map(|(score, params)| (score, r, params)))
        .max_by_key(|(score, r, _)| (*score, r.method.is_some()))
        .map(|(_, r, params)| (r, params))
}

/// The payload format 2.0 event of one request.
#[allow(clippy::too_many_arguments)]
pub fn http_event(
    route: &Route,
    path_parameters: &BTreeMap<String, String>,
    method: &Method,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    source_ip: &str,
) -> Value {
    // Repeated headers are joined with commas; cookies travel in their own field.
    let mut joined: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()));
        } else {
            joined.entry(name.as_str().to_ascii_lowercase()).or_default().push(value);
        }
    }
    let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_string();
    let port = host.rsplit_once(':').map_or("80", |(_, p)| p).to_string();
    // What API Gateway adds for the integration.
    joined.entry("x-forwarded-for".into()).or_default().push(source_ip.to_string());
    joined.insert("x-forwarded-port".into(), vec![port]);
    joined.insert("x-forwarded-proto".into(), vec!["http".into()]);
    let headers_json: Map<String, Value> = joined.into_iter().map(|(k, v)| (k, Value::from(v.join(",")))).collect();
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        query.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let now = time::OffsetDateTime::now_utc();
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.key(),
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers_json,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or_default(),
            "http": {
                "method": method.as_str(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default()
            },
            "requestId": request_id,
            "routeKey": route.key(),
            "stage": "$default",
            "time": now.format(time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000")).unwrap_or_default(),
            "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64
        },
        "isBase64Encoded": encoded
    });
    let o = event.as_object_mut().expect("an object");
    if !body.is_empty() || encoded {
        o.insert("body".into(), Value::from(body));
    }
    if !cookies.is_empty() {
        o.insert("cookies".into(), Value::from(cookies));
    }
    if !query.is_empty() {
        let q: Map<String, Value> = query.into_iter().map(|(k, v)| (k, Value::from(v.join(",")))).collect();
        o.insert("queryStringParameters".into(), Value::Object(q));
    }
    if !path_parameters.is_empty() {
        o.insert("pathParameters".into(), serde_json::to_value(path_parameters).expect("a map"));
    }
    event
}

fn plain(status: StatusCode, message: &str) -> Response {
    let mut r = Response::new(Body::from(json!({ "message": message }).to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The HTTP response API Gateway makes of a function's payload format 2.0 answer.
pub fn http_response(outcome: &Outcome) -> Response {
    let body = match outcome.response() {
        Ok(body) => body,
        Err(why) if matches!(outcome, Outcome::TimedOut) => {
            tracing::warn!(%why, "integration timed out");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        Err(why) => {
            tracing::warn!(%why, "integration failed");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    // An answer without a status code is taken as a 200 with the answer as its JSON body.
    let Some(status) = v.get("statusCode").and_then(Value::as_u64) else {
        let mut r = Response::new(Body::from(v.to_string()));
        r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return r;
    };
    let text = v.get("body").and_then(Value::as_str).unwrap_or_default();
    let bytes = if v.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(b) => b,
            Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
    } else {
        text.as_bytes().to_vec()
    };
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = r.headers_mut();
    for (name, value) in v.get("headers").and_then(Value::as_object).into_iter().flatten() {
        if let (Ok(n), Some(Ok(val))) =
            (http::HeaderName::from_bytes(name.as_bytes()), value.as_str().map(HeaderValue::from_str))
        {
            headers.insert(n, val);
        }
    }
    for (name, values) in v.get("multiValueHeaders").and_then(Value::as_object).into_iter().flatten() {
        let Ok(n) = http::HeaderName::from_bytes(name.as_bytes()) else { continue };
        headers.remove(&n);
        for value in values.as_array().into_iter().flatten().filter_map(Value::as_str) {
            if let Ok(val) = HeaderValue::from_str(value) {
                headers.append(n.clone(), val);
            }
        }
    }
    for cookie in v.get("cookies").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if let Ok(val) = HeaderValue::from_str(cookie) {
            headers.append(http::header::SET_COOKIE, val);
        }
    }
    r
}

struct Front {
    routes: Vec<Route>,
    functions: Arc<dyn Invoke>,
}

async fn serve(
    State(front): State<Arc<Front>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_PAYLOAD_BYTES).await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let raw_path = parts.uri.path().to_string();
    let Some((route, params)) = match_route(&front.routes, &parts.method, &raw_path) else {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    let event = http_event(
        route,
        &params,
        &parts.method,
        &raw_path,
        parts.uri.query().unwrap_or_default(),
        &parts.headers,
        &body,
        &peer.ip().to_string(),
    );
    let outcome = front.functions.invoke(&route.function, event).await;
    http_response(&outcome)
}

/// The HTTP API on a loopback port.
pub struct HttpApi {
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for HttpApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl HttpApi {
    pub async fn start(routes: Vec<Route>, functions: Arc<dyn Invoke>) -> std::io::Result<HttpApi> {
        let front = Arc::new(Front { routes, functions });
        let app = axum::Router::new().fallback(serve).with_state(front);
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
        });
        Ok(HttpApi { addr, server })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_api::Answer;

    fn routes() -> Vec<Route> {
        vec![
            Route::new("POST", "/webhooks/hubspot", "hubspot-webhook"),
            Route::new("POST", "/webhooks/mailerlite/{connection_id}", "mailerlite-webhook"),
            Route::new("ANY", "/", "config-api"),
            Route::new("ANY", "/{proxy+}", "config-api"),
        ]
    }

    fn pick(method: Method, path: &str) -> Option<(String, BTreeMap<String, String>)> {
        let routes = routes();
        match_route(&routes, &method, path).map(|(r, p)| (r.key(), p))
    }

    #[test]
    fn routes_are_matched_most_specific_first() {
        assert_eq!(pick(Method::POST, "/webhooks/hubspot").unwrap().0, "POST /webhooks/hubspot");
        // Another method on a webhook path falls through to the greedy route.
        assert_eq!(pick(Method::GET, "/webhooks/hubspot").unwrap().0, "ANY /{proxy+}");
        let (key, params) = pick(Method::POST, "/webhooks/mailerlite/sales").unwrap();
        assert_eq!(key, "POST /webhooks/mailerlite/{connection_id}");
        assert_eq!(params["connection_id"], "sales");
        let (key, params) = pick(Method::GET, "/connections/sales/status").unwrap();
        assert_eq!(key, "ANY /{proxy+}");
        assert_eq!(params["proxy"], "connections/sales/status");
        assert_eq!(pick(Method::GET, "/").unwrap().0, "ANY /");
        assert_eq!(pick(Method::POST, "/webhooks/mailerlite/a/b").unwrap().0, "ANY /{proxy+}");
        assert!(match_route(&routes()[..2], &Method::GET, "/status").is_none());
    }

    #[test]
    fn a_request_becomes_a_payload_2_event() {
        let routes = routes();
        let (route, params) = match_route(&routes, &Method::POST, "/webhooks/mailerlite/sales").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_static("127.0.0.1:4000"));
        headers.insert("Signature", HeaderValue::from_static("abc"));
        headers.append("x-many", HeaderValue::from_static("1"));
        headers.append("x-many", HeaderValue::from_static("2"));
        headers.insert(http::header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        let e = http_event(
            route,
            &params,
            &Method::POST,
            "/webhooks/mailerlite/sales",
            "x=1&x=2&y=%20",
            &headers,
            b"{\"events\":[]}",
            "127.0.0.1",
        );
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "POST /webhooks/mailerlite/{connection_id}");
        assert_eq!(e["rawPath"], "/webhooks/mailerlite/sales");
        assert_eq!(e["rawQueryString"], "x=1&x=2&y=%20");
        assert_eq!(e["queryStringParameters"], json!({"x": "1,2", "y": " "}));
        assert_eq!(e["pathParameters"], json!({"connection_id": "sales"}));
        assert_eq!(e["headers"]["signature"], "abc");
        assert_eq!(e["headers"]["x-many"], "1,2");
        assert_eq!(e["headers"]["x-forwarded-proto"], "http");
        assert_eq!(e["headers"]["x-forwarded-port"], "4000");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        assert_eq!(e["requestContext"]["domainName"], "127.0.0.1:4000");
        assert_eq!(e["requestContext"]["stage"], "$default");
        assert_eq!(e["body"], "{\"events\":[]}");
        assert_eq!(e["isBase64Encoded"], false);
        // Bytes that are not UTF-8 travel base64-encoded.
        let binary = http_event(route, &params, &Method::POST, "/", "", &headers, &[0xff, 0xfe], "127.0.0.1");
        assert_eq!((binary["body"].as_str(), binary["isBase64Encoded"].as_bool()), (Some("//4="), Some(true)));
        // The functions read it as lambda_http does.
        let parsed: aws_lambda_events::apigw::ApiGatewayV2httpRequest = serde_json::from_value(e).unwrap();
        assert_eq!(parsed.raw_path.as_deref(), Some("/webhooks/mailerlite/sales"));
        assert_eq!(parsed.request_context.http.method, Method::POST);
        assert_eq!(parsed.path_parameters["connection_id"], "sales");
    }

    #[tokio::test]
    async fn a_response_keeps_status_headers_cookies_and_body() {
        let answer = json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-one": "1"},
            "multiValueHeaders": {"x-two": ["a", "b"]},
            "cookies": ["s=1; HttpOnly"],
            "body": "{\"ok\":true}",
            "isBase64Encoded": false
        });
        let r = http_response(&Outcome::Answered(Answer::Response(answer.to_string().into())));
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["x-one"], "1");
        assert_eq!(r.headers().get_all("x-two").iter().count(), 2);
        assert_eq!(r.headers()[http::header::SET_COOKIE], "s=1; HttpOnly");
        let body = to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"{\"ok\":true}");

        let encoded = json!({"statusCode": 200, "body": "aGk=", "isBase64Encoded": true});
        let r = http_response(&Outcome::Answered(Answer::Response(encoded.to_string().into())));
        assert_eq!(&to_bytes(r.into_body(), 1024).await.unwrap()[..], b"hi");

        let failed = Outcome::Answered(Answer::Error { error_type: "Panic".into(), message: "x".into(), init: false });
        assert_eq!(http_response(&failed).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(http_response(&Outcome::TimedOut).status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
