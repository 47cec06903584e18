//! The transport: the shared outbox plus the publisher worker that drains
//! it into NATS, and the real figures of the `transport` block of loop
//! telemetry. The worker publishes only while the client is connected (so
//! the backlog stays in the bounded outbox, not in the client's buffers),
//! flushes after each batch under a timeout, and is restarted by a
//! supervisor after an error (counted as `restart_count`). Enqueueing never
//! waits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::Client;
use lull_proto::msg::telemetry::{TransportStatus, TransportWorker};
use tokio::sync::{watch, Notify};

use lull_common::metric::Metric;
use metrics::Unit;

use crate::config::OutboxConfig;
use crate::outbox::{Envelope, Limits, Outbox};
use crate::runner::DURATION_BUCKETS;
use crate::schedule::secs;

/// Gauge: messages waiting in the outbox.
pub static OUTBOX_QUEUE_LENGTH: Metric = Metric::gauge(
    "lull_agent_outbox_queue_length",
    "Messages waiting in the outbox.",
);
/// Gauge: bytes waiting in the outbox.
pub static OUTBOX_QUEUE_BYTES: Metric = Metric::gauge(
    "lull_agent_outbox_queue_bytes",
    "Payload bytes waiting in the outbox.",
)
.unit(Unit::Bytes);
/// Counter `{kind}`: messages dropped because the outbox was full.
pub static OUTBOX_DROPPED: Metric = Metric::counter(
    "lull_agent_outbox_dropped_total",
    "Messages dropped (oldest stats first) because the outbox was full, by kind.",
);
/// Counter `{kind}`: messages published.
pub static PUBLISHED: Metric = Metric::counter(
    "lull_agent_published_total",
    "Messages handed to NATS, by kind.",
);
/// Counter: payload bytes published.
pub static PUBLISHED_BYTES: Metric = Metric::counter(
    "lull_agent_published_bytes_total",
    "Payload bytes handed to NATS.",
)
.unit(Unit::Bytes);
/// Counter: publish or flush errors.
pub static PUBLISH_ERRORS: Metric = Metric::counter(
    "lull_agent_publish_errors_total",
    "Publish or flush errors of the outbox worker.",
);
/// Histogram: duration of one outbox flush.
pub static FLUSH_DURATION: Metric = Metric::histogram(
    "lull_agent_flush_duration_seconds",
    "Duration of one outbox flush.",
)
.unit(Unit::Seconds)
.buckets(DURATION_BUCKETS);
/// Counter: restarts of the publisher worker.
pub static PUBLISHER_RESTARTS: Metric = Metric::counter(
    "lull_agent_publisher_restarts_total",
    "Restarts of the outbox publisher worker after an error.",
);
/// Every metric of the outbox and its publisher.
pub static METRICS: &[&Metric] = &[
    &OUTBOX_QUEUE_LENGTH,
    &OUTBOX_QUEUE_BYTES,
    &OUTBOX_DROPPED,
    &PUBLISHED,
    &PUBLISHED_BYTES,
    &PUBLISH_ERRORS,
    &FLUSH_DURATION,
    &PUBLISHER_RESTARTS,
];

/// Exports the counters that matter at zero from the start.
pub fn zero_metrics() {
    for kind in ["stats", "health", "failure"] {
        metrics::counter!(OUTBOX_DROPPED.name, "kind" => kind).increment(0);
    }
    metrics::counter!(PUBLISH_ERRORS.name).increment(0);
    metrics::counter!(PUBLISHER_RESTARTS.name).increment(0);
}

#[derive(Debug, Default)]
struct Figures {
    last_flush_ms: Option<f64>,
    payloads: u64,
    bytes: u64,
    alive: bool,
    error: Option<String>,
    restarts: u64,
}

/// The outbox and the publisher's figures, shared by the tick loop and the
/// worker.
#[derive(Debug)]
pub struct Transport {
    outbox: Mutex<Outbox>,
    notify: Notify,
    figures: Mutex<Figures>,
    auth_enabled: bool,
}

impl Transport {
    /// An empty transport.
    pub fn new(cfg: &OutboxConfig, auth_enabled: bool) -> Arc<Self> {
        Arc::new(Transport {
            outbox: Mutex::new(Outbox::new(Limits {
                max_messages: cfg.max_messages,
                max_bytes: cfg.max_bytes,
            })),
            notify: Notify::new(),
            figures: Mutex::new(Figures::default()),
            auth_enabled,
        })
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn figures(&self) -> std::sync::MutexGuard<'_, Figures> {
        self.figures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a message (never waits); drops are counted.
    pub fn enqueue(&self, env: Envelope) {
        let (dropped, len, bytes) = {
            let mut o = self.outbox();
            let d = o.push(env);
            (d, o.len(), o.bytes())
        };
        for k in dropped {
            metrics::counter!(OUTBOX_DROPPED.name, "kind" => k.label()).increment(1);
        }
        metrics::gauge!(OUTBOX_QUEUE_LENGTH.name).set(len as f64);
        metrics::gauge!(OUTBOX_QUEUE_BYTES.name).set(bytes as f64);
        self.notify.notify_one();
    }

    /// Messages waiting.
    pub fn queue_len(&self) -> usize {
        self.outbox().len()
    }

    /// The `transport` block of loop telemetry.
    pub fn status(&self) -> TransportStatus {
        let (queue_length, dropped) = {
            let o = self.outbox();
            (o.len() as u64, o.dropped_total())
        };
        let f = self.figures();
        TransportStatus {
            provider: Some("nats".into()),
            queue_length,
            dropped_messages: dropped,
            last_flush_duration_ms: f.last_flush_ms,
            payloads_flushed_total: f.payloads,
            bytes_flushed_total: f.bytes,
            auth_enabled: self.auth_enabled,
            worker: TransportWorker {
                alive: f.alive,
                error: f.error.clone(),
                restart_count: f.restarts,
            },
        }
    }

    /// Publishes one batch if connected; `Ok(0)` when there is nothing to
    /// do or no connection.
    async fn flush_once(&self, client: &Client, cfg: &OutboxConfig) -> Result<usize, String> {
        if client.connection_state() != State::Connected {
            return Ok(0);
        }
        let batch = self.outbox().pop_batch(cfg.batch);
        if batch.is_empty() {
            return Ok(0);
        }
        metrics::gauge!(OUTBOX_QUEUE_LENGTH.name).set(self.queue_len() as f64);
        metrics::gauge!(OUTBOX_QUEUE_BYTES.name).set(self.outbox().bytes() as f64);
        let started = Instant::now();
        let n = batch.len();
        let mut sent_bytes = 0u64;
        let mut last_err = None;
        for env in batch {
            let size = env.payload.len() as u64;
            let kind = env.kind;
            match client.publish(env.subject, env.payload).await {
                Ok(()) => {
                    sent_bytes += size;
                    metrics::counter!(PUBLISHED.name, "kind" => kind.label()).increment(1);
                    metrics::counter!(PUBLISHED_BYTES.name).increment(size);
                }
                Err(e) => {
                    metrics::counter!(PUBLISH_ERRORS.name).increment(1);
                    last_err = Some(format!("publish: {e}"));
                }
            }
        }
        let flushed = tokio::time::timeout(secs(cfg.flush_timeout_sec), client.flush()).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        metrics::histogram!(FLUSH_DURATION.name).record(ms / 1000.0);
        {
            let mut f = self.figures();
            f.last_flush_ms = Some(ms);
            f.payloads += n as u64;
            f.bytes += sent_bytes;
        }
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                metrics::counter!(PUBLISH_ERRORS.name).increment(1);
                return Err(format!("flush: {e}"));
            }
            Err(_) => {
                metrics::counter!(PUBLISH_ERRORS.name).increment(1);
                return Err(format!(
                    "flush: no answer within {} s",
                    cfg.flush_timeout_sec
                ));
            }
        }
        if let Some(e) = last_err {
            // Not fatal (one oversized message, say), but shown.
            self.figures().error = Some(e);
        }
        Ok(n)
    }

    async fn worker(
        &self,
        client: &Client,
        cfg: &OutboxConfig,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let notified = self.notify.notified();
            let sent = self.flush_once(client, cfg).await?;
            if sent > 0 {
                continue;
            }
            // Idle or disconnected: wait for a message, a state change
            // (polled), or the stop signal.
            let pause = if client.connection_state() == State::Connected {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(100)
            };
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Runs the publisher worker until `stop`, restarting it after errors.
pub async fn run(
    transport: Arc<Transport>,
    client: Client,
    cfg: OutboxConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        transport.figures().alive = true;
        match transport.worker(&client, &cfg, &mut stop).await {
            Ok(()) => {
                transport.figures().alive = false;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbox publisher failed; restarting");
                {
                    let mut f = transport.figures();
                    f.alive = false;
                    f.error = Some(e);
                    f.restarts += 1;
                }
                metrics::counter!(PUBLISHER_RESTARTS.name).increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(secs(cfg.restart_backoff_sec)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// At shutdown: publishes what is left while connected, for at most
/// `timeout`. Returns the number of messages still queued.
pub async fn drain(
    transport: &Transport,
    client: &Client,
    cfg: &OutboxConfig,
    timeout: Duration,
) -> usize {
    let deadline = Instant::now() + timeout;
    while transport.queue_len() > 0 && Instant::now() < deadline {
        if client.connection_state() != State::Connected {
            // Nothing can be sent; do not hold up the exit.
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, transport.flush_once(client, cfg)).await {
            Ok(Ok(0)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "flushing the outbox at shutdown");
                break;
            }
            Err(_) => break,
        }
    }
    transport.queue_len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Kind;
    use bytes::Bytes;

    #[test]
    fn status_reflects_the_outbox() {
        let cfg = OutboxConfig {
            max_messages: 2,
            ..Default::default()
        };
        let t = Transport::new(&cfg, true);
        for i in 0..5 {
            t.enqueue(Envelope {
                kind: Kind::Stats,
                subject: "lull.stats.h".into(),
                payload: Bytes::from(format!("{i}")),
            });
        }
        let s = t.status();
        assert_eq!(s.provider.as_deref(), Some("nats"));
        assert_eq!(s.queue_length, 2);
        assert_eq!(s.dropped_messages, 3);
        assert!(s.auth_enabled);
        assert_eq!(s.payloads_flushed_total, 0);
        assert!(s.last_flush_duration_ms.is_none());
    }
}
