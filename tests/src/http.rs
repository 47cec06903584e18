//! A tiny HTTP/1.1 GET client over a tokio `TcpStream`, enough to scrape a
//! Prometheus `/metrics` endpoint or probe a health check.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{HarnessError, Result};

/// Upper bound on one whole request (connect, send, read to end).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// A response: status code and decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Body as text (lossy UTF-8), chunked transfer encoding decoded.
    pub body: String,
    /// Header lines as (name, value), names as sent.
    pub headers: Vec<(String, String)>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// GETs `url` and returns its body; any status other than 200 is an error.
pub async fn scrape(url: &str) -> Result<String> {
    let resp = http_get(url).await?;
    if resp.status != 200 {
        return Err(HarnessError::Http {
            url: url.into(),
            reason: format!("status {}: {}", resp.status, resp.body),
        });
    }
    Ok(resp.body)
}

/// GETs `url` (`http://host:port/path`) with `Connection: close`.
pub async fn http_get(url: &str) -> Result<HttpResponse> {
    http_request("GET", url).await
}

/// Sends `method url` (no body, `Connection: close`) and returns the
/// response whatever its status.
pub async fn http_request(method: &str, url: &str) -> Result<HttpResponse> {
    let err = |reason: String| HarnessError::Http {
        url: url.into(),
        reason,
    };
    let (authority, path) =
        split_url(url).ok_or_else(|| err("not an http://host:port/path URL".into()))?;
    let fut = async {
        let mut stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| err(format!("connect: {e}")))?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: */*\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| err(format!("send: {e}")))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| err(format!("read: {e}")))?;
        parse_response(&raw).map_err(err)
    };
    tokio::time::timeout(HTTP_TIMEOUT, fut)
        .await
        .map_err(|_| err(format!("no complete response within {HTTP_TIMEOUT:?}")))?
}

/// Splits `http://host:port/path?q` into (`host:port`, `/path?q`); the port
/// defaults to 80 and the path to `/`.
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if auth.is_empty() {
        return None;
    }
    let auth = if auth
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        auth.to_string()
    } else {
        format!("{auth}:80")
    };
    Some((auth, path.to_string()))
}

/// Parses a complete HTTP/1.x response read until the connection closed.
fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("response has no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let body = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        headers,
    })
}

/// Decodes a chunked transfer-encoded body.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("http://127.0.0.1:9000/metrics"),
            Some(("127.0.0.1:9000".into(), "/metrics".into()))
        );
        assert_eq!(
            split_url("http://localhost"),
            Some(("localhost:80".into(), "/".into()))
        );
        assert_eq!(split_url("https://x/"), None);
        assert_eq!(split_url("http:///x"), None);
    }

    #[test]
    fn parses_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            parse_response(plain).unwrap(),
            HttpResponse {
                status: 200,
                body: "hello".into(),
                headers: vec![("Content-Length".into(), "5".into())],
            }
        );
        assert_eq!(
            parse_response(plain).unwrap().header("content-length"),
            Some("5")
        );
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        let r = parse_response(chunked).unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "hello world");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }
}
