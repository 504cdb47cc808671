//! The connection loop of the HTTP API: hyper's HTTP/1 on every accepted
//! connection, with what `axum::serve` lacks: a deadline for a request's
//! head (hyper's own needs a timer that `axum::serve` does not give it),
//! a cap on open connections, and a graceful stop.
//!
//! hyper answers some requests before axum sees them: a malformed request
//! line or header (400), a URI over its limit (414), too many or too large
//! header fields (431). It writes those with an empty body; [`ClientIo`]
//! rewrites exactly those answers into the API's JSON error, so that every
//! answer, errors included, is JSON.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

/// The request line and headers together, at most (hyper answers 431 past it).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Limits on connections; from `http.*` (README, configuration).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// From a connection's first byte (or the end of the previous answer)
    /// to the end of the request's head; then the connection is closed.
    pub header_timeout: Duration,
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
}

/// Accepts connections until `shutdown` turns true, then lets the requests
/// in hand finish (idle connections close at once) and returns when every
/// connection is closed; the caller bounds that with the grace period.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection's task holds a receiver: `closed()` resolves when all are gone.
    let (all_closed_tx, all_closed_rx) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it
                // was accepted: the listener itself is fine; pause a little.
                warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%peer, "too many HTTP connections: answering 503");
            tokio::spawn(refuse_busy(stream, limits.max_connections));
            continue;
        };
        let app = app.clone();
        let shutdown = shutdown.clone();
        let all_closed = all_closed_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, app, limits, shutdown).await;
            drop(permit);
            drop(all_closed);
        });
    }
    drop(listener);
    drop(all_closed_rx);
    all_closed_tx.closed().await;
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(ClientIo::new(stream));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEAD_BYTES);
    let connection = builder.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(e) = served {
                debug!(error = %e, "HTTP connection ended with an error");
            }
            return;
        }
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
    connection.as_mut().graceful_shutdown();
    if let Err(e) = connection.await {
        debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// One connection too many: a 503 in the API's form, then closed.
async fn refuse_busy(mut stream: TcpStream, max: usize) {
    let message = format!(
        "the daemon has {max} HTTP connections open (`http.max_connections`); try again shortly"
    );
    let answer = json_answer(503, "Service Unavailable", &message, &["retry-after: 1"]);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
}

/// A complete HTTP/1.1 answer carrying `{"error": MESSAGE, "status": CODE}`;
/// the connection closes after it.
fn json_answer(status: u16, reason: &str, message: &str, headers: &[&str]) -> Vec<u8> {
    let body = serde_json::json!({ "error": message, "status": status }).to_string();
    let mut answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for header in headers {
        answer.push_str(header);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    answer.push_str(&body);
    answer.into_bytes()
}

/// What the API says instead of hyper's empty answers to a request it could
/// not read.
fn message_for(status: u16) -> Option<(&'static str, String)> {
    Some(match status {
        400 => (
            "Bad Request",
            "the request is not valid HTTP/1.1: its request line or a header field is malformed"
                .to_owned(),
        ),
        414 => (
            "URI Too Long",
            format!(
                "the request's URI is longer than {} bytes",
                super::MAX_URI_BYTES
            ),
        ),
        431 => (
            "Request Header Fields Too Large",
            format!(
                "the request's header fields are too large: at most 100 fields and {MAX_HEAD_BYTES} bytes with the request line"
            ),
        ),
        _ => return None,
    })
}

/// If `written` is one of hyper's own error answers (status 400, 414 or
/// 431, no content type, an empty body), the JSON answer to send instead.
/// The API's own answers always carry a content type, so they never match.
fn replacement_for(written: &[u8]) -> Option<Vec<u8>> {
    let head_end = written.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&written[..head_end]).ok()?;
    let status: u16 = head.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
    let (reason, message) = message_for(status)?;
    let mut kept = Vec::new();
    for field in head.split("\r\n").skip(1).filter(|f| !f.is_empty()) {
        let name = field
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "content-type" | "transfer-encoding" => return None,
            "content-length" if field.split(':').nth(1).map(str::trim) != Some("0") => return None,
            "content-length" | "connection" => {}
            _ => kept.push(field),
        }
    }
    (head_end == written.len()).then(|| json_answer(status, reason, &message, &kept))
}

/// How long a closing connection keeps reading what the client still
/// sends (see [`ClientIo`]'s `poll_shutdown`).
const LINGER: Duration = Duration::from_secs(2);

/// The connection as hyper sees it. It rewrites hyper's own error answers
/// (see [`replacement_for`]): hyper writes an answer's head in one buffer
/// (this type does not offer vectored writes), so one write is one head.
/// And it closes gently: a socket closed with unread data resets the
/// connection, which can destroy the answer just sent (a 413 or 431 sent
/// before the client finished sending), so what the client still sends is
/// read and dropped for a moment first.
pub struct ClientIo<T> {
    inner: T,
    /// A replacement being written: its bytes, how many are written, and
    /// the length of hyper's buffer to report once all are.
    pending: Option<(Vec<u8>, usize, usize)>,
    /// Set once our side is shut down: the deadline of the draining.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether the client sent anything after our side was shut down.
    drained: bool,
}

impl<T> ClientIo<T> {
    pub fn new(inner: T) -> Self {
        ClientIo {
            inner,
            pending: None,
            linger: None,
            drained: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ClientIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match replacement_for(buf) {
                Some(replacement) => this.pending = Some((replacement, 0, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        let (bytes, written, reported) = this.pending.as_mut().expect("set above");
        while *written < bytes.len() {
            match ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => *written += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let reported = *reported;
        this.pending = None;
        Poll::Ready(Ok(reported))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let linger = this.linger.as_mut().expect("set above");
        loop {
            let mut scratch = [0u8; 8192];
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => this.drained = true,
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                // Nothing was left unread: nothing can reset the connection.
                Poll::Pending if !this.drained => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    ready!(linger.as_mut().poll(cx));
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_error_answers_are_replaced() {
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 01:00:00 GMT\r\n\r\n";
        let replaced = String::from_utf8(replacement_for(hyper_431).unwrap()).unwrap();
        let (head, body) = replaced.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("date: Wed, 02 Dec 2026"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], 431);
        assert!(body["error"].as_str().unwrap().contains("header fields"));
        for status in ["400 Bad Request", "414 URI Too Long"] {
            let bare = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            assert!(replacement_for(bare.as_bytes()).is_some(), "{status}");
        }
        // The API's own answers, other statuses, bodies: left alone.
        for kept in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"{\"error\": \"HTTP/1.1 400 \"}",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n",
        ] {
            assert!(replacement_for(kept).is_none(), "{}", String::from_utf8_lossy(kept));
        }
    }
}
