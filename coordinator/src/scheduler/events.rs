//! Publishing lease events on `lull.lease.events.<lease_id>`, in the order
//! the book made them, from a task of its own: the scheduler hands events
//! over without waiting, and when this task falls behind by more than its
//! queue the newest events are dropped and counted (a holder still learns
//! its lease's state from its next heartbeat).

use lull_proto::msg::lease::{LeaseEvent, LeaseEventKind};
use lull_proto::Subjects;
use tokio::sync::mpsc;

/// Hands events to the publisher task.
#[derive(Debug)]
pub struct EventSink {
    tx: mpsc::Sender<LeaseEvent>,
    published: [metrics::Counter; 4],
    dropped: metrics::Counter,
}

impl EventSink {
    /// Queues `ev` for publishing, or drops and counts it when the queue
    /// is full.
    pub fn send(&self, ev: LeaseEvent) {
        let i = kind_index(ev.event);
        if self.tx.try_send(ev).is_ok() {
            self.published[i].increment(1);
        } else {
            self.dropped.increment(1);
        }
    }
}

fn kind_index(k: LeaseEventKind) -> usize {
    match k {
        LeaseEventKind::Granted => 0,
        LeaseEventKind::Revoked => 1,
        LeaseEventKind::Expired => 2,
        LeaseEventKind::Released => 3,
    }
}

/// Starts the publisher with a queue of `capacity` events. The task ends
/// (after publishing what is queued and flushing) when the sink is dropped.
pub fn spawn(
    client: async_nats::Client,
    subjects: Subjects,
    capacity: usize,
) -> (EventSink, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity.max(16));
    let counter =
        |label: &'static str| metrics::counter!(super::metrics::EVENTS.name, "event" => label);
    let sink = EventSink {
        tx,
        published: [
            counter("granted"),
            counter("revoked"),
            counter("expired"),
            counter("released"),
        ],
        dropped: metrics::counter!(super::metrics::EFFECTS_DROPPED.name, "effect" => "event"),
    };
    (sink, tokio::spawn(run(rx, client, subjects)))
}

/// Largest number of events taken from the queue at once.
const BATCH: usize = 256;

async fn run(mut rx: mpsc::Receiver<LeaseEvent>, client: async_nats::Client, subjects: Subjects) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        for ev in batch.drain(..) {
            let body = match serde_json::to_vec(&ev) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "encoding a lease event");
                    continue;
                }
            };
            let subject = subjects.lease_events(&ev.lease_id);
            if let Err(e) = client.publish(subject, body.into()).await {
                tracing::warn!(error = %e, lease = %ev.lease_id, "publishing a lease event failed");
            }
        }
    }
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "flushing lease events");
    }
}
