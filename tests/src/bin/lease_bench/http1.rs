//! A minimal HTTP/1.1 keep-alive client over a tokio `TcpStream`: one
//! connection sends the same POST again and again (etcd's gateway
//! `POST /v3/lease/grant`), reading `Content-Length` bodies. The header
//! parser is a pure function.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted (head and body).
const MAX_RESPONSE: usize = 1 << 20;

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the status line and headers, with the blank line.
    pub len: usize,
    /// Status code.
    pub status: u16,
    /// `Content-Length`.
    pub content_length: usize,
}

/// Parses a response head at the start of `buf`: `Ok(None)` when more bytes
/// are needed, an error for malformed heads and for bodies without
/// `Content-Length` (chunked encoding is not supported).
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_RESPONSE {
            return Err("response head too large".into());
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut content_length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim();
            if k.eq_ignore_ascii_case("content-length") {
                content_length = Some(
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("bad content-length {v:?}"))?,
                );
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                return Err(format!("unsupported transfer-encoding {}", v.trim()));
            }
        }
    }
    let content_length = content_length.ok_or("response has no content-length")?;
    if content_length > MAX_RESPONSE {
        return Err(format!("response body too large: {content_length}"));
    }
    Ok(Some(Head {
        len: end + 4,
        status,
        content_length,
    }))
}

/// One keep-alive connection that repeats one POST.
pub struct Http1 {
    stream: TcpStream,
    buf: Vec<u8>,
    request: Vec<u8>,
    timeout: Duration,
}

impl Http1 {
    /// Connects to `authority` (`127.0.0.1:PORT`) and prepares
    /// `POST path` with a JSON `body`.
    pub async fn connect(
        authority: &str,
        path: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<Http1, String> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(authority))
            .await
            .map_err(|_| format!("connect {authority}: timeout"))?
            .map_err(|e| format!("connect {authority}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        Ok(Http1 {
            stream,
            buf: Vec::with_capacity(1024),
            request,
            timeout,
        })
    }

    /// Sends the request once and returns `(status, body)`.
    pub async fn post(&mut self) -> Result<(u16, Vec<u8>), String> {
        match tokio::time::timeout(self.timeout, self.roundtrip()).await {
            Ok(r) => r,
            Err(_) => Err("timeout".into()),
        }
    }

    async fn roundtrip(&mut self) -> Result<(u16, Vec<u8>), String> {
        self.stream
            .write_all(&self.request)
            .await
            .map_err(|e| format!("send: {e}"))?;
        loop {
            if let Some(head) = parse_head(&self.buf)? {
                let total = head.len + head.content_length;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                let body = self.buf[head.len..total].to_vec();
                self.buf.drain(..total);
                return Ok((head.status, body));
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> Result<(), String> {
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_head() {
        let raw =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 5\r\n\r\nhello";
        let h = parse_head(raw).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.content_length, 5);
        assert_eq!(&raw[h.len..], b"hello");
    }

    #[test]
    fn needs_more_bytes_for_a_partial_head() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        assert_eq!(parse_head(b"").unwrap(), None);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 xx OK\r\nContent-Length: 1\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn keep_alive_round_trips_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            for _ in 0..2 {
                // Read one request (head + 11-byte body) and answer it in two writes.
                loop {
                    if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        if seen.len() >= end + 4 + 11 {
                            seen.drain(..end + 4 + 11);
                            break;
                        }
                    }
                    let n = s.read(&mut buf).await.unwrap();
                    seen.extend_from_slice(&buf[..n]);
                }
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Len")
                    .await
                    .unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                s.write_all(b"gth: 2\r\n\r\nok").await.unwrap();
            }
        });
        let mut c = Http1::connect(&addr, "/x", "{\"TTL\": 30}", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(c.post().await.unwrap(), (200, b"ok".to_vec()));
        assert_eq!(c.post().await.unwrap(), (200, b"ok".to_vec()));
        server.await.unwrap();
        assert!(c.post().await.is_err());
    }
}
