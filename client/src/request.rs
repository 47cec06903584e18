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
            return Err(RequestError::Transport {
                subject,
                message: e.to_string(),
            })
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
