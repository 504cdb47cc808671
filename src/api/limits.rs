//! What one request may take, checked before any handler runs: the length
//! of its URI, and the time its body takes to arrive (a sender that
//! announces a body and never sends it must not hold a connection and a
//! task forever). Both answer in the API's JSON form.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The longest URI (path and query) a request may have (longer: 414).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// 414 for a URI over [`MAX_URI_BYTES`]. hyper's own limit is far higher
/// (64 KiB); past that, `server::JsonErrors` makes its answer JSON.
pub async fn check_uri(request: Request, next: Next) -> Response {
    let length = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if length > MAX_URI_BYTES {
        return closing(ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("the request's URI is longer than {MAX_URI_BYTES} bytes ({length})"),
        ));
    }
    next.run(request).await
}

#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// `http.body_limit_bytes`.
    pub max_bytes: usize,
    /// `http.body_timeout_secs`: from the end of the head to the body's last byte.
    pub timeout: Duration,
}

/// Reads the whole body (every endpoint takes a small JSON document)
/// within the timeout and the size limit, so that handlers get it at once:
/// 408 when it does not arrive in time, 413 when it is too large; nothing
/// is applied either way.
pub async fn read_body(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than `http.body_limit_bytes`; nothing was applied",
        )
    };
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_bytes as u64) {
        return closing(too_large());
    }
    let read =
        tokio::time::timeout(limits.timeout, axum::body::to_bytes(body, limits.max_bytes)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let error = e.into_inner();
            if error.is::<http_body_util::LengthLimitError>() {
                return closing(too_large());
            }
            return closing(ApiError::bad_request(format!(
                "cannot read the request body: {error}; nothing was applied"
            )));
        }
        Err(_) => {
            return closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s (`http.body_timeout_secs`); nothing was applied",
                    limits.timeout.as_secs_f64()
                ),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// An error after which the connection is closed: what is left of the
/// request cannot be told from the next one.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
