//! Typed request-reply over NATS that turns an error reply (micro error
//! headers or an `{"error": ...}` body) into a [`RequestError`].

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use lull_proto::error::{ErrorCode, ErrorReply};

/// A request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request could not be encoded.
    #[error("encoding request: {0}")]
    Encode(#[from] serde_json::Error),
    /// No reply in time, or no responder.
    #[error("request to {subject}: {message}")]
    Transport {
        /// Subject.
        subject: String,
        /// Cause.
        message: String,
    },
    /// The service answered with an error reply.
    #[error("{code}: {message}")]
    Service {
        /// Code.
        code: ErrorCode,
        /// Message.
        message: String,
    },
    /// The reply could not be decoded.
    #[error("decoding reply from {subject}: {message}")]
    Decode {
        /// Subject.
        subject: String,
        /// Cause.
        message: String,
    },
}

impl RequestError {
    /// The error code: the service's own, or `unavailable` when nothing
    /// answered (no reply in time, or no responder: no coordinator, or no
    /// leader during a failover).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            RequestError::Service { code, .. } => Some(*code),
            RequestError::Transport { .. } => Some(ErrorCode::Unavailable),
            RequestError::Encode(_) | RequestError::Decode { .. } => None,
        }
    }
}

/// Sends `body` to `subject` and decodes the reply as `R`, or as an error
/// reply when the service says so.
pub async fn request<B: Serialize, R: DeserializeOwned>(
    client: &async_nats::Client,
    subject: String,
    body: &B,
    timeout: Duration,
) -> Result<R, RequestError> {
    let payload = serde_json::to_vec(body)?;
    let fut = client.request(subject.clone(), payload.into());
    let msg = match tokio::time::timeout(timeout, fut).await {
        Err(_) => {
            return Err(RequestError::Transport {
                subject,
                message: format!("no reply within {timeout:?}"),
            })
        }
        Ok(Err(e)) => {
            let message = match e.kind() {
                // Nobody subscribes the subject: for the lease endpoints,
                // no coordinator leads at this moment (a failover).
                async_nats::RequestErrorKind::NoResponders => {
                    "unavailable: no coordinator answers (no responders)".to_string()
                }
                _ => e.to_string(),
            };
            return Err(RequestError::Transport { subject, message });
        }
        Ok(Ok(m)) => m,
    };
    let is_error = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Service-Error"))
        .is_some();
    if is_error {
        if let Ok(e) = serde_json::from_slice::<ErrorReply>(&msg.payload) {
            return Err(RequestError::Service {
                code: e.error.code,
                message: e.error.message,
            });
        }
        let text = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Service-Error"))
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        return Err(RequestError::Service {
            code: ErrorCode::Internal,
            message: text,
        });
    }
    serde_json::from_slice(&msg.payload).map_err(|e| RequestError::Decode {
        subject,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_are_unavailable() {
        // A client whose server is gone: the request fails in transport,
        // which callers see as `unavailable`.
        let e = RequestError::Transport {
            subject: "lull.v1.lease.request".into(),
            message: "unavailable: no coordinator answers (no responders)".into(),
        };
        assert_eq!(e.code(), Some(ErrorCode::Unavailable));
        let s = RequestError::Service {
            code: ErrorCode::NotFound,
            message: "x".into(),
        };
        assert_eq!(s.code(), Some(ErrorCode::NotFound));
    }
}
