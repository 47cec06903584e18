//! Agent telemetry ingest: `lull.agent.<host>.health` (`loop.health`) and
//! `lull.agent.<host>.failure` (`loop.failure`, legacy keys accepted), kept
//! per host by the fleet actor. Counted in
//! `lull_fleet_agent_messages_total{kind,result}`: rejections and
//! `dropped` (the actor's queue is full) here, `accepted` and
//! `unknown_host` (no snapshot of the host seen yet) by the fleet actor.

use futures::StreamExt;
use lull_common::runtime::now_unix;
use lull_proto::msg::telemetry::{LoopFailure, LoopHealth};
use lull_proto::{decode, Subjects};
use tokio_util::sync::CancellationToken;

use super::Rejection;
use crate::fleet::FleetHandle;

/// A decoded agent telemetry message.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentMessage {
    /// `loop.health`.
    Health(String, LoopHealth),
    /// `loop.failure`.
    Failure(String, Box<LoopFailure>),
}

/// Decodes one message by its subject kind.
pub fn classify(
    subjects: &Subjects,
    subject: &str,
    payload: &[u8],
    max_payload: usize,
) -> Result<AgentMessage, Rejection> {
    let (host, kind) = subjects
        .host_of_agent(subject)
        .ok_or_else(|| Rejection::BadSubject(subject.to_string()))?;
    lull_proto::validate::subject_token("host_id", host)?;
    match kind {
        "health" => Ok(AgentMessage::Health(
            host.to_string(),
            decode(payload, max_payload)?,
        )),
        "failure" => Ok(AgentMessage::Failure(
            host.to_string(),
            Box::new(decode(payload, max_payload)?),
        )),
        _ => Err(Rejection::BadSubject(subject.to_string())),
    }
}

/// Runs until `shutdown`.
pub async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    fleet: FleetHandle,
    max_payload: usize,
    shutdown: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let mut sub = client.subscribe(subjects.agent_all()).await?;
    loop {
        let msg = tokio::select! {
            m = sub.next() => match m { Some(m) => m, None => break },
            _ = shutdown.cancelled() => break,
        };
        let (kind, result) =
            match classify(&subjects, msg.subject.as_str(), &msg.payload, max_payload) {
                // Counted by the fleet actor (accepted or unknown_host).
                Ok(AgentMessage::Health(host, h)) => {
                    if fleet.agent_health(host, h, now_unix()) {
                        continue;
                    }
                    ("health", "dropped")
                }
                Ok(AgentMessage::Failure(host, f)) => {
                    if fleet.agent_failure(host, *f, now_unix()) {
                        continue;
                    }
                    ("failure", "dropped")
                }
                Err(rejection) => {
                    tracing::debug!(subject = %msg.subject, %rejection, "agent message rejected");
                    let kind = if msg.subject.ends_with(".failure") {
                        "failure"
                    } else if msg.subject.ends_with(".health") {
                        "health"
                    } else {
                        "other"
                    };
                    (kind, rejection.label())
                }
            };
        metrics::counter!(super::metrics::AGENT_MESSAGES.name, "kind" => kind, "result" => result)
            .increment(1);
    }
    let _ = sub.unsubscribe().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_failure_is_accepted() {
        let s = Subjects::default();
        let body = br#"{"tick":3,"tick_duration_ms":5.0,"error":"IOError: disk","telemetry_queue":4,"telemetry_dropped":1}"#;
        match classify(&s, "lull.agent.h1.failure", body, 1 << 16).unwrap() {
            AgentMessage::Failure(h, f) => {
                assert_eq!(h, "h1");
                assert_eq!(f.summary.queue_length, 4);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let s = Subjects::default();
        assert!(classify(&s, "lull.agent.h1.other", b"{}", 1 << 16).is_err());
        assert!(classify(&s, "lull.agent.h1.health", b"[]", 1 << 16).is_err());
    }
}
