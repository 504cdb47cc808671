//! Webhooks the Standard Webhooks way (notifications.md section 2): the
//! signature, its verification, and one delivery attempt over HTTP(S).
//!
//! Signing: `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<ts>.<body>")>`
//! where the key is the base64 after `whsec_` in the configured secret. One
//! attempt is a POST bounded by the endpoint's timeout, classified as
//! delivered (2xx), gone (410: disable the endpoint) or retry (anything
//! else) with a text that never holds the secret.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret, SecretBox};

type HmacSha256 = Hmac<sha2::Sha256>;

/// A signing key read from `whsec_<base64>`; its bytes never leave it but
/// through [`sign`].
pub struct SigningKey(SecretBox<Vec<u8>>);

impl Clone for SigningKey {
    fn clone(&self) -> Self {
        SigningKey(SecretBox::new(Box::new(self.0.expose_secret().clone())))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// Why a secret is refused; the text never quotes it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret starts with `whsec_` (the value is not shown)")]
    NoPrefix,
    #[error("the part after `whsec_` is not base64 (the value is not shown)")]
    NotBase64,
    #[error(
        "the key after `whsec_` must be at least 16 bytes once decoded (the value is not shown)"
    )]
    TooShort,
}

impl SigningKey {
    /// Reads `whsec_<base64>`; at least 16 bytes of key, as Standard
    /// Webhooks' generators give 24 to 64.
    pub fn parse(secret: &str) -> Result<SigningKey, SecretError> {
        let encoded = secret.strip_prefix("whsec_").ok_or(SecretError::NoPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if key.len() < 16 {
            return Err(SecretError::TooShort);
        }
        Ok(SigningKey(SecretBox::new(Box::new(key))))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The `webhook-signature` value of one attempt: `v1,<base64>`.
pub fn sign(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = key.mac(id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", BASE64.encode(tag))
}

/// Why a received webhook does not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("webhook-timestamp is not a whole number of seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is {0} s away from now, more than the tolerance")]
    OutsideTolerance(i64),
    #[error("no v1 signature in webhook-signature matches")]
    NoMatch,
}

/// What a receiver does (the docs' example and the tests): the timestamp
/// within `tolerance_secs` of `now`, and one of the space-separated
/// signatures a `v1` whose tag matches, compared in constant time.
pub fn verify(
    key: &SigningKey,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now.saturating_sub(ts);
    if skew.abs() > tolerance_secs {
        return Err(VerifyError::OutsideTolerance(skew));
    }
    let matches = signatures.split_whitespace().any(|candidate| {
        let Some(("v1", tag)) = candidate.split_once(',') else {
            return false;
        };
        let Ok(tag) = BASE64.decode(tag) else {
            return false;
        };
        key.mac(id, ts, body).verify_slice(&tag).is_ok()
    });
    matches.then_some(()).ok_or(VerifyError::NoMatch)
}

/// One configured endpoint, as the sender needs it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: url::Url,
    pub key: SigningKey,
    pub timeout: Duration,
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx within the timeout.
    Delivered { status: u16 },
    /// 410 Gone: the endpoint is to be disabled.
    Gone,
    /// Anything else; `error` says what, for the logs and the dead list.
    Retry { error: String },
}

/// Longest part of a refusal's body kept in the error text.
const BODY_EXCERPT: usize = 200;
/// Largest answer body read (the rest is dropped with the connection).
const BODY_LIMIT: usize = 64 * 1024;

/// Sends webhooks over one connection pool (HTTP and HTTPS, the web's
/// root certificates).
#[derive(Clone)]
pub struct Sender {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Default for Sender {
    fn default() -> Self {
        Sender::new()
    }
}

impl Sender {
    pub fn new() -> Sender {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .expect("ring supports the default TLS versions")
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Sender {
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// One attempt: POST `body` (a message's JSON) signed with `timestamp`
    /// (Unix seconds of this attempt).
    pub async fn attempt(
        &self,
        endpoint: &Endpoint,
        id: &str,
        timestamp: i64,
        body: Bytes,
    ) -> Attempt {
        let signature = sign(&endpoint.key, id, timestamp, &body);
        let request = hyper::Request::post(endpoint.url.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("backorderd/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            Err(err) => {
                return Attempt::Retry {
                    error: format!("cannot build the request: {err}"),
                };
            }
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| describe(&err))?;
            let status = response.status();
            // Read the answer within the same timeout, so the connection
            // can be reused and a refusal's reason is kept.
            let body = Limited::new(response.into_body(), BODY_LIMIT)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>((status, body))
        };
        match tokio::time::timeout(endpoint.timeout, exchange).await {
            Err(_) => Attempt::Retry {
                error: format!("no answer within {} s", endpoint.timeout.as_secs_f64()),
            },
            Ok(Err(error)) => Attempt::Retry { error },
            Ok(Ok((status, _))) if status.is_success() => Attempt::Delivered {
                status: status.as_u16(),
            },
            Ok(Ok((status, _))) if status == hyper::StatusCode::GONE => Attempt::Gone,
            Ok(Ok((status, body))) => {
                let text = String::from_utf8_lossy(&body);
                let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
                Attempt::Retry {
                    error: if excerpt.is_empty() {
                        format!("HTTP {status}")
                    } else {
                        format!("HTTP {status}: {excerpt}")
                    },
                }
            }
        }
    }
}

/// An HTTP client error with its causes (connection refused, reset, TLS);
/// none of them holds a header, so the signature stays out.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn the_standard_webhooks_test_vector_signs_and_verifies() {
        // The reference vector of the Standard Webhooks libraries.
        let key = SigningKey::parse(SECRET).unwrap();
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(sign(&key, id, ts, body), expected);
        assert_eq!(
            verify(&key, id, "1614265330", expected, body, ts + 10, 300),
            Ok(())
        );
        // Several signatures (a rotation): any one matching is enough.
        let both = format!("v1,bm9wZQ== {expected}");
        assert_eq!(verify(&key, id, "1614265330", &both, body, ts, 300), Ok(()));
    }

    #[test]
    fn a_changed_body_id_or_timestamp_or_an_old_timestamp_does_not_verify() {
        let key = SigningKey::parse(SECRET).unwrap();
        let signature = sign(&key, "msg_1", 1000, b"{}");
        assert_eq!(
            verify(&key, "msg_1", "1000", &signature, b"{ }", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&key, "msg_2", "1000", &signature, b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&key, "msg_1", "1001", &signature, b"{}", 1001, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&key, "msg_1", "1000", &signature, b"{}", 1301, 300),
            Err(VerifyError::OutsideTolerance(301))
        );
        assert_eq!(
            verify(&key, "msg_1", "soon", &signature, b"{}", 1000, 300),
            Err(VerifyError::BadTimestamp)
        );
        let other = SigningKey::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(
            verify(&other, "msg_1", "1000", &signature, b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn secrets_need_the_prefix_base64_and_16_bytes_and_are_never_shown() {
        assert_eq!(
            SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::NoPrefix
        );
        assert_eq!(
            SigningKey::parse("whsec_not base64!").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            SigningKey::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretError::TooShort
        );
        let key = SigningKey::parse(SECRET).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(***)");
    }
}
