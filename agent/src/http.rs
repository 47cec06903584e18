//! A tiny HTTP/1.1 GET client over a tokio `TcpStream`, enough for addon
//! health checks and scraping a local Prometheus endpoint: `http://` only,
//! `Connection: close`, fixed-length, chunked or read-to-end bodies, and a
//! cap on the bytes read. The response parser is pure and unit-tested.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A GET failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not `http://host[:port][/path]`.
    #[error("bad URL {0:?}: expected http://host[:port][/path]")]
    BadUrl(String),
    /// Connecting failed.
    #[error("connect: {0}")]
    Connect(String),
    /// Reading or writing failed.
    #[error("io: {0}")]
    Io(String),
    /// The response is not valid HTTP/1.x.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The response is larger than allowed.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (default 80).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses `http://host[:port][/path]` (IPv6 as `[::1]`).
    pub fn parse(s: &str) -> Result<Url, HttpError> {
        let bad = || HttpError::BadUrl(s.to_string());
        let rest = s.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let host = &r[..end];
            let after = &r[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => 80,
                None => return Err(bad()),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (authority.to_string(), 80),
            }
        };
        if host.is_empty() || path.contains(['\r', '\n', ' ']) {
            return Err(bad());
        }
        Ok(Url {
            host,
            port,
            path: path.to_string(),
        })
    }

    fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The (de-chunked) body.
    pub body: Vec<u8>,
}

/// GETs `url`, reading at most `max_body` body bytes. The caller bounds the
/// time with `tokio::time::timeout`.
pub async fn get(url: &Url, max_body: usize) -> Result<Response, HttpError> {
    let mut stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| HttpError::Connect(e.to_string()))?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lull-agent\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.host_header()
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| HttpError::Io(e.to_string()))?;
    // Headers are small; allow 16 KiB of them on top of the body.
    let limit = max_body.saturating_add(16 * 1024);
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 8 * 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| HttpError::Io(e.to_string()))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > limit {
            return Err(HttpError::TooLarge(max_body));
        }
        // Stop early once a complete fixed-length or chunked body is in.
        if let Ok(Some(resp)) = parse_response(&buf, max_body) {
            return Ok(resp);
        }
    }
    match parse_response(&buf, max_body)? {
        Some(r) => Ok(r),
        // A body without length and without chunking ends at EOF.
        None => parse_to_eof(&buf, max_body),
    }
}

struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
    body_start: usize,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > 16 * 1024 {
            return Err(HttpError::Malformed("headers too long".into()));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end])
        .map_err(|_| HttpError::Malformed("headers are not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed(format!("status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line {status_line:?}")))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                v.parse()
                    .map_err(|_| HttpError::Malformed(format!("content-length {v:?}")))?,
            );
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Some(Head {
        status,
        content_length,
        chunked,
        body_start: end + 4,
    }))
}

/// Parses a complete response from `buf`; `Ok(None)` while more bytes are
/// needed (a body without length or chunking is complete only at EOF).
pub fn parse_response(buf: &[u8], max_body: usize) -> Result<Option<Response>, HttpError> {
    let Some(head) = parse_head(buf)? else {
        return Ok(None);
    };
    let body = &buf[head.body_start..];
    if head.chunked {
        return match decode_chunked(body)? {
            Some(b) if b.len() > max_body => Err(HttpError::TooLarge(max_body)),
            Some(b) => Ok(Some(Response {
                status: head.status,
                body: b,
            })),
            None => Ok(None),
        };
    }
    if let Some(len) = head.content_length {
        if len > max_body {
            return Err(HttpError::TooLarge(max_body));
        }
        if body.len() >= len {
            return Ok(Some(Response {
                status: head.status,
                body: body[..len].to_vec(),
            }));
        }
        return Ok(None);
    }
    if head.status == 204 || head.status == 304 || (100..200).contains(&head.status) {
        return Ok(Some(Response {
            status: head.status,
            body: Vec::new(),
        }));
    }
    Ok(None)
}

fn parse_to_eof(buf: &[u8], max_body: usize) -> Result<Response, HttpError> {
    let head = parse_head(buf)?.ok_or_else(|| HttpError::Malformed("no headers".into()))?;
    if head.chunked || head.content_length.is_some() {
        return Err(HttpError::Malformed("connection closed mid-body".into()));
    }
    let body = &buf[head.body_start..];
    if body.len() > max_body {
        return Err(HttpError::TooLarge(max_body));
    }
    Ok(Response {
        status: head.status,
        body: body.to_vec(),
    })
}

/// Decodes a chunked body; `Ok(None)` while incomplete.
pub fn decode_chunked(mut b: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(b, b"\r\n") else {
            return Ok(None);
        };
        let size_line = std::str::from_utf8(&b[..eol])
            .map_err(|_| HttpError::Malformed("chunk size".into()))?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| HttpError::Malformed(format!("chunk size {size_hex:?}")))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if b.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("http://127.0.0.1:9100/metrics").unwrap(),
            Url {
                host: "127.0.0.1".into(),
                port: 9100,
                path: "/metrics".into()
            }
        );
        let u = Url::parse("http://localhost").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = Url::parse("http://[::1]:8080/h?x=1").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert_eq!(u.host_header(), "[::1]:8080");
        assert!(Url::parse("https://x/").is_err());
        assert!(Url::parse("http://:80/").is_err());
        assert!(Url::parse("http://h:x/").is_err());
        assert!(Url::parse("http://u:p@h/").is_err());
    }

    #[test]
    fn fixed_length_body() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let resp = parse_response(r, 100).unwrap().unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"hello");
        assert_eq!(parse_response(&r[..r.len() - 1], 100).unwrap(), None);
        assert_eq!(parse_response(r, 3), Err(HttpError::TooLarge(3)));
    }

    #[test]
    fn chunked_body() {
        let r = b"HTTP/1.1 503 Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";
        let resp = parse_response(r, 100).unwrap().unwrap();
        assert_eq!(resp.status, 503);
        assert_eq!(resp.body, b"Wikipedia");
        assert_eq!(parse_response(&r[..60], 100).unwrap(), None);
        assert!(decode_chunked(b"zz\r\n").is_err());
    }

    #[test]
    fn body_until_eof_and_garbage() {
        let r = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nabc";
        assert_eq!(parse_response(r, 100).unwrap(), None);
        assert_eq!(parse_to_eof(r, 100).unwrap().body, b"abc");
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", 100).is_err());
    }

    #[tokio::test]
    async fn get_against_a_local_listener() {
        use tokio::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(std::str::from_utf8(&buf[..n])
                .unwrap()
                .starts_with("GET /health HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/health")).unwrap();
        let r = get(&url, 1024).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    }
}
