//! A webhook receiver for the `[notify]` tests: a plain HTTP/1.1 listener on loopback that
//! keeps each POST (head, body, when) and answers with the statuses it was given.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as received: its head, its body and when it arrived.
pub type Received = (String, String, Instant);

/// A running receiver (it stops with the runtime).
pub struct WebhookReceiver {
    /// Its port on 127.0.0.1.
    pub port: u16,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl WebhookReceiver {
    /// Starts one that answers each POST with the next status of `statuses` (the last one again
    /// once they run out).
    ///
    /// # Panics
    /// If no loopback port can be bound, or `statuses` is empty.
    pub async fn start(statuses: Vec<u16>) -> WebhookReceiver {
        assert!(!statuses.is_empty(), "a receiver needs a status to answer");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding a webhook receiver: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the receiver's address: {e}"))
            .port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (head, body) = read_request(&mut stream).await;
                let status = {
                    let mut seen = kept.lock().unwrap_or_else(PoisonError::into_inner);
                    seen.push((head, body, Instant::now()));
                    statuses[(seen.len() - 1).min(statuses.len() - 1)]
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        WebhookReceiver { port, seen }
    }

    /// The requests received so far, in order.
    pub fn seen(&self) -> Vec<Received> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests were received so far.
    pub fn count(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A request's head and body (by its `content-length`); empty if the peer closed early.
async fn read_request(stream: &mut tokio::net::TcpStream) -> (String, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return (String::new(), String::new());
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return (head.to_owned(), body.to_owned());
            }
        }
    }
}
