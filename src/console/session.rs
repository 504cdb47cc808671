//! Signing in to the console, its sessions and the CSRF token of its forms.
//!
//! With `http.token` set, the sign-in form takes the token (compared in
//! constant time, never logged) and starts a session: a random id kept in
//! this process's memory, sent as an HttpOnly, SameSite=Strict cookie
//! (also Secure when the request came over TLS, as a proxy in front says
//! with `X-Forwarded-Proto: https`; `serve` itself speaks plain HTTP). A
//! session ends [`SESSION_LIFETIME`] after sign-in, on sign-out, or when
//! the process stops. Without a token the API listens on loopback only and
//! the console is open: a session is started on the first visit, only to
//! carry the CSRF token. Every POST but the sign-in itself must carry the
//! session's CSRF token in its `csrf` field (403 otherwise).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use rand::RngCore;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::layout::{self, PageError};
use crate::api::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "backorderd_session";
/// How long a session lasts after sign-in (a working day); then the
/// console asks for the token again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most; the oldest goes first (a flood of visits to an
/// open console cannot grow memory without bound).
const MAX_SESSIONS: usize = 10_000;

struct Session {
    csrf: String,
    expires: Instant,
}

/// The live sessions of this process.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// The session of the request in hand, for pages and forms.
#[derive(Clone)]
pub struct Current {
    pub csrf: String,
    /// A token is configured: the page offers "Sign out".
    pub signed_in: bool,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    fn start(&self) -> (String, String) {
        let (id, csrf) = (random_hex(), random_hex());
        let now = Instant::now();
        let mut map = self.by_id.lock().expect("sessions lock");
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                expires: now + SESSION_LIFETIME,
            },
        );
        (id, csrf)
    }

    fn csrf_of(&self, id: &str) -> Option<String> {
        let mut map = self.by_id.lock().expect("sessions lock");
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.csrf.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    fn end(&self, id: &str) {
        self.by_id.lock().expect("sessions lock").remove(id);
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Behind a TLS-terminating proxy the cookie must only travel over TLS.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn cookie(headers: &HeaderMap, id: &str, max_age: u64) -> HeaderValue {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a cookie of hex and ASCII is a header value")
}

/// Lets a request through with its session ([`Current`] in its
/// extensions). Without one: with a token configured, a page is sent to
/// the sign-in form and a POST is refused (403); without a token, a page
/// starts a session.
pub async fn require_session<S: Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(sessions): Extension<Arc<Sessions>>,
    mut request: Request,
    next: Next,
) -> Response {
    let signed_in = state.token.is_some();
    let id = session_id(request.headers());
    if let Some(csrf) = id.as_deref().and_then(|id| sessions.csrf_of(id)) {
        request.extensions_mut().insert(Current { csrf, signed_in });
        return next.run(request).await;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return PageError::new(
            StatusCode::FORBIDDEN,
            "This form needs a session: sign in (again) and send it from the console's page.",
        )
        .into_response();
    }
    if signed_in {
        let next_path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let target = format!("/sign-in?next={}", percent_encode(&next_path));
        return Redirect::to(&target).into_response();
    }
    let (id, csrf) = sessions.start();
    let set = cookie(request.headers(), &id, SESSION_LIFETIME.as_secs());
    request.extensions_mut().insert(Current { csrf, signed_in });
    let mut response = next.run(request).await;
    response.headers_mut().append(header::SET_COOKIE, set);
    response
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page path to go to after sign-in: only a path of this site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

/// `GET /sign-in`.
pub async fn sign_in_form<S: Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    axum::extract::Query(query): axum::extract::Query<SignInQuery>,
) -> Response {
    if state.token.is_none() {
        return Redirect::to("/").into_response();
    }
    form_page(StatusCode::OK, safe_next(query.next.as_deref()), None)
}

fn form_page(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(problem) = problem {
            p.error role="alert" { (problem) }
        }
        form method="post" action="/sign-in" {
            input type="hidden" name="next" value=(next);
            p {
                label for="token" { "Access token" }
                input #token type="password" name="token" required autocomplete="current-password"
                    aria-describedby="token-help" autofocus;
            }
            p #token-help .help { "The daemon's " code { "http.token" } " (ask whoever runs it)." }
            p { button type="submit" { "Sign in" } }
        }
    };
    (status, layout::page("Sign in", None, body)).into_response()
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    next: Option<String>,
}

/// `POST /sign-in`: the token right starts a session; wrong, 401 and the
/// form again (the token given is never shown nor logged).
pub async fn sign_in<S: Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return Redirect::to("/").into_response();
    };
    let Ok(Form(form)) = form else {
        return form_page(
            StatusCode::BAD_REQUEST,
            "/",
            Some("The form was not sent whole."),
        );
    };
    let next = safe_next(form.next.as_deref());
    if !crate::api::same_secret(form.token.trim().as_bytes(), expected.as_bytes()) {
        return form_page(StatusCode::UNAUTHORIZED, next, Some("That token is wrong."));
    }
    let (id, _csrf) = sessions.start();
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(&headers, &id, SESSION_LIFETIME.as_secs()),
    );
    response
}

/// `POST /sign-out`: ends the session and clears the cookie.
pub async fn sign_out<S: Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Posted(_): Posted<NoFields>,
) -> Response {
    if let Some(id) = session_id(&headers) {
        sessions.end(&id);
    }
    let to = if state.token.is_some() {
        "/sign-in"
    } else {
        "/"
    };
    let mut response = Redirect::to(to).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie(&headers, "", 0));
    response
}

#[derive(Deserialize)]
pub struct NoFields {}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form posted from a console page: its `csrf` field must be the
/// session's token (403 otherwise), then the body is read as `T`.
pub struct Posted<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let current = request.extensions().get::<Current>().cloned();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let given: CsrfField = serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField {
            csrf: String::new(),
        });
        let valid = current
            .is_some_and(|c| crate::api::same_secret(given.csrf.as_bytes(), c.csrf.as_bytes()));
        if !valid || given.csrf.is_empty() {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "This form's CSRF token is missing or stale: reload the page and send it again.",
            )
            .into_response());
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(Posted)
            .map_err(|e| {
                PageError::bad_request(format!("The form is incomplete: {e}")).into_response()
            })
    }
}
