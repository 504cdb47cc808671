//! The OpenAPI description served by the real `serve`: OpenAPI 3.1, one
//! operation for every route of the router (src/api/mod.rs) and no other,
//! and each operation answering the live server with a status it
//! documents. (CI also runs schemathesis against it: .ci/schemathesis.)

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::daemon_support::Daemon;
use crate::support::TempDatabase;

const TOKEN: &str = "openapi-token-81c2";

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// Every `(METHOD, path)` the router declares with `.route("path",
/// get(..).post(..))`, read from its source: the router has no list of its
/// routes at run time.
fn router_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/mod.rs"))
        .expect("the router's source");
    let mut routes = BTreeSet::new();
    for call in source.split(".route(\"").skip(1) {
        let (path, rest) = call.split_once('"').unwrap();
        // The route's arguments end where its parenthesis closes.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("a closed .route(...) call");
        let methods = &rest[..end];
        let mut found = false;
        for method in ["get", "post", "put", "delete", "patch", "head", "options"] {
            let calls = methods
                .match_indices(&format!("{method}("))
                .filter(|&(i, _)| {
                    // `get(`, not `forget(` or `my_get(`.
                    let before = i.checked_sub(1).map(|j| methods.as_bytes()[j]);
                    !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .count();
            if calls > 0 {
                routes.insert((method.to_uppercase(), path.to_owned()));
                found = true;
            }
        }
        assert!(found, "no method found in .route(\"{path}\"{methods})");
    }
    assert!(
        routes.len() >= 9,
        "the router's routes were not found: {routes:?}"
    );
    routes
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
) -> (u16, String, String) {
    let response = match method {
        "GET" => {
            let mut request = agent.get(url);
            if let Some(token) = token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            request.call()
        }
        "POST" => {
            let mut request = agent.post(url).header("Content-Type", "application/json");
            if let Some(token) = token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            request.send("{}")
        }
        other => panic!("no client call for {other}"),
    };
    let mut response = response.expect("the daemon answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.body_mut().read_to_string().unwrap();
    (status, content_type, text)
}

#[test]
fn openapi_lists_every_route() {
    let db = TempDatabase::new();
    let imported = db.run(
        &[
            "import",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/examples/01-oldest-first.json"
            ),
        ],
        None,
    );
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _daemon = Daemon::start_with_args(
        &db,
        &[("BACKORDERD__HTTP__TOKEN", TOKEN)],
        &["--listen", &listen],
    );
    let base = format!("http://{listen}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();

    // Served without the token, as JSON, and OpenAPI 3.1.
    let (status, content_type, text) =
        call(&agent, "GET", &format!("{base}/v1/openapi.json"), None);
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc: Value = serde_json::from_str(&text).expect("the description is JSON");
    let version = doc["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3.1."), "OpenAPI {version}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "the bearer scheme: {}",
        doc["components"]
    );

    // The same routes, both ways.
    let routes = router_routes();
    let operations = documented(&doc);
    let undocumented: Vec<_> = routes.difference(&operations).collect();
    let unrouted: Vec<_> = operations.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes without a description: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "described but not routed: {unrouted:?}"
    );

    // Each operation, called on the live server, answers a status it
    // documents with the content type documented for it; a guarded one
    // documents 401 and answers it without the token.
    for (method, path) in &operations {
        let operation = &doc["paths"][path][method.to_lowercase()];
        let url = format!(
            "{base}{}",
            path.replace("{id}", "A").replace("{sku}", "CAT-HAMMOCK")
        );
        let (status, content_type, text) = call(&agent, method, &url, Some(TOKEN));
        let response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which it does not document: {text}"
        );
        let media: Vec<&String> = response["content"].as_object().unwrap().keys().collect();
        assert!(
            media.iter().any(|m| content_type.starts_with(m.as_str())),
            "{method} {path} {status}: content type {content_type}, documented {media:?}"
        );
        if content_type.starts_with("application/json") {
            let body: Value = serde_json::from_str(&text).expect("JSON");
            if status >= 400 {
                assert!(
                    body["error"].is_string() && body["status"] == status,
                    "{body}"
                );
            }
        }
        let guarded = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        let public = ["/healthz", "/readyz", "/v1/openapi.json"].contains(&path.as_str());
        assert_eq!(
            guarded, !public,
            "{method} {path}: security {}",
            operation["security"]
        );
        if guarded {
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {path}: no 401"
            );
            let (status, _, text) = call(&agent, method, &url, None);
            assert_eq!(status, 401, "{method} {path} without the token: {text}");
        }
    }
}
