//! The page shell every console page shares, the embedded style sheet,
//! error pages and small formatting helpers.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::session::Current;
use crate::store::StoreError;

const STYLE: &str = include_str!("console.css");

/// `GET /assets/console.css`.
pub async fn style_sheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// A whole page: `current` is `None` on the sign-in page (no navigation).
pub fn page(title: &str, current: Option<&Current>, body: Markup) -> Html<String> {
    page_with(title, current, None, body)
}

/// A page that reloads itself after `refresh_secs` (progress shown
/// without JavaScript).
pub fn page_with(
    title: &str,
    current: Option<&Current>,
    refresh_secs: Option<u32>,
    body: Markup,
) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(secs) = refresh_secs {
                    meta http-equiv="refresh" content=(secs);
                }
                title { (title) " · backorderd" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                a.skip href="#content" { "Skip to content" }
                header {
                    span.brand { "backorderd" }
                    @if let Some(current) = current {
                        nav aria-label="Console" {
                            ul {
                                li { a href="/" { "Overview" } }
                                li { a href="/backorders" { "Backorders" } }
                                li { a href="/products" { "Products" } }
                                li { a href="/messages" { "Messages" } }
                                li { a href="/settings" { "Settings" } }
                            }
                        }
                        @if current.signed_in {
                            form.sign-out method="post" action="/sign-out" {
                                (csrf_field(current))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #content tabindex="-1" { (body) }
            }
        }
    };
    Html(markup.into_string())
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(current: &Current) -> Markup {
    html! { input type="hidden" name="csrf" value=(current.csrf); }
}

/// The serde name of an enum value (`in_process`, `partial`...), for display.
pub fn label<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s.replace('_', " "),
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Yes or no.
pub fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

/// A duration in seconds for people: `42 s`, `3 min 5 s`, `2 h 10 min`.
pub fn age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// A console page's failure: answered as a page with the status.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        // The API's mapping decides the status (refused 422, busy 503...).
        let api = crate::api::ApiError::from(e);
        PageError::new(api.status, api.message)
    }
}

impl From<crate::api::ApiError> for PageError {
    fn from(e: crate::api::ApiError) -> Self {
        PageError::new(e.status, e.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let body = html! {
            h1 { (self.status.as_u16()) " " (reason) }
            p.error role="alert" { (self.message) }
            p { a href="/" { "Back to the overview" } }
        };
        let page = page_with(reason, None, None, body);
        (self.status, page).into_response()
    }
}

/// Text that is already HTML-safe (a fixed entity).
pub fn arrow() -> PreEscaped<&'static str> {
    PreEscaped("&rarr;")
}
