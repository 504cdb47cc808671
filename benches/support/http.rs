//! One keep-alive HTTP/1.1 connection to `serve`, as a sender of events
//! holds it: requests go one after the other on the same socket.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

pub struct Connection {
    addr: SocketAddr,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

/// What came back: a status and body, or no answer at all (the connection
/// failed; the next request opens a new one).
pub enum Answer {
    Status(u16, Bytes),
    Transport(String),
}

impl Connection {
    pub fn new(addr: SocketAddr) -> Connection {
        Connection { addr, sender: None }
    }

    async fn open(&mut self) -> Result<&mut http1::SendRequest<Full<Bytes>>, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().unwrap())
    }

    /// `POST path` with a JSON body; the whole answer is read.
    pub async fn post(&mut self, path: &str, body: String) -> Answer {
        let host = self.addr.to_string();
        let sender = match self.open().await {
            Ok(sender) => sender,
            Err(e) => return Answer::Transport(e),
        };
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request");
        let answer = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match answer.await {
            Ok((status, body)) => Answer::Status(status, body),
            Err(e) => {
                self.sender = None;
                Answer::Transport(e.to_string())
            }
        }
    }
}
