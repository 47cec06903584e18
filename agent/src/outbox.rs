//! The bounded outbox (pure): a FIFO of encoded messages bounded by count
//! and by bytes. When a new message does not fit, the oldest stats
//! snapshots are dropped first (they are soft state, and a newer one says
//! more), then the oldest telemetry; every drop is counted by kind. Pushing
//! never waits, so collection never blocks on the network.

use std::collections::VecDeque;

use bytes::Bytes;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A `SystemStatsSnapshot`.
    Stats,
    /// A `loop.health`.
    Health,
    /// A `loop.failure`.
    Failure,
}

impl Kind {
    /// Label value for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Stats => "stats",
            Kind::Health => "health",
            Kind::Failure => "failure",
        }
    }
}

/// One message waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Its kind.
    pub kind: Kind,
    /// NATS subject.
    pub subject: String,
    /// Encoded payload.
    pub payload: Bytes,
}

/// The outbox's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most messages.
    pub max_messages: usize,
    /// Most payload bytes.
    pub max_bytes: usize,
}

/// The bounded queue and its drop counters.
#[derive(Debug, Clone)]
pub struct Outbox {
    limits: Limits,
    queue: VecDeque<Envelope>,
    bytes: usize,
    dropped: [u64; 3],
}

fn idx(k: Kind) -> usize {
    match k {
        Kind::Stats => 0,
        Kind::Health => 1,
        Kind::Failure => 2,
    }
}

impl Outbox {
    /// An empty outbox.
    pub fn new(limits: Limits) -> Self {
        Outbox {
            limits: Limits {
                max_messages: limits.max_messages.max(1),
                max_bytes: limits.max_bytes.max(1),
            },
            queue: VecDeque::new(),
            bytes: 0,
            dropped: [0; 3],
        }
    }

    /// Queues `env`, dropping the oldest stats (then the oldest of any
    /// kind) until it fits. A message larger than `max_bytes` on its own is
    /// dropped. Returns the kinds dropped by this push.
    pub fn push(&mut self, env: Envelope) -> Vec<Kind> {
        let mut dropped = Vec::new();
        let size = env.payload.len();
        if size > self.limits.max_bytes {
            self.dropped[idx(env.kind)] += 1;
            dropped.push(env.kind);
            return dropped;
        }
        while self.queue.len() + 1 > self.limits.max_messages
            || self.bytes + size > self.limits.max_bytes
        {
            let victim = self
                .queue
                .iter()
                .position(|e| e.kind == Kind::Stats)
                .unwrap_or(0);
            let Some(old) = self.queue.remove(victim) else {
                break;
            };
            self.bytes -= old.payload.len();
            self.dropped[idx(old.kind)] += 1;
            dropped.push(old.kind);
        }
        self.bytes += size;
        self.queue.push_back(env);
        dropped
    }

    /// Takes up to `max` messages from the front.
    pub fn pop_batch(&mut self, max: usize) -> Vec<Envelope> {
        let n = max.min(self.queue.len());
        let batch: Vec<Envelope> = self.queue.drain(..n).collect();
        self.bytes -= batch.iter().map(|e| e.payload.len()).sum::<usize>();
        batch
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Payload bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages dropped so far, all kinds.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Messages of `kind` dropped so far.
    pub fn dropped(&self, kind: Kind) -> u64 {
        self.dropped[idx(kind)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(kind: Kind, tag: &str, size: usize) -> Envelope {
        let mut p = tag.as_bytes().to_vec();
        p.resize(size.max(tag.len()), b' ');
        Envelope {
            kind,
            subject: "s".into(),
            payload: Bytes::from(p),
        }
    }

    fn tags(o: &mut Outbox) -> Vec<String> {
        o.pop_batch(usize::MAX)
            .into_iter()
            .map(|e| String::from_utf8_lossy(&e.payload).trim().to_string())
            .collect()
    }

    #[test]
    fn count_bound_drops_oldest_stats_first() {
        let mut o = Outbox::new(Limits {
            max_messages: 3,
            max_bytes: 1000,
        });
        assert!(o.push(env(Kind::Health, "h1", 2)).is_empty());
        assert!(o.push(env(Kind::Stats, "s1", 2)).is_empty());
        assert!(o.push(env(Kind::Stats, "s2", 2)).is_empty());
        assert_eq!(o.push(env(Kind::Stats, "s3", 2)), vec![Kind::Stats]);
        assert_eq!(o.len(), 3);
        assert_eq!(o.dropped(Kind::Stats), 1);
        assert_eq!(tags(&mut o), vec!["h1", "s2", "s3"]);
        assert_eq!(o.bytes(), 0);
    }

    #[test]
    fn without_stats_the_oldest_of_any_kind_goes() {
        let mut o = Outbox::new(Limits {
            max_messages: 2,
            max_bytes: 1000,
        });
        o.push(env(Kind::Health, "h1", 2));
        o.push(env(Kind::Failure, "f1", 2));
        assert_eq!(o.push(env(Kind::Health, "h2", 2)), vec![Kind::Health]);
        assert_eq!(tags(&mut o), vec!["f1", "h2"]);
        assert_eq!(o.dropped_total(), 1);
    }

    #[test]
    fn byte_bound() {
        let mut o = Outbox::new(Limits {
            max_messages: 100,
            max_bytes: 25,
        });
        o.push(env(Kind::Stats, "a", 10));
        o.push(env(Kind::Stats, "b", 10));
        assert_eq!(o.bytes(), 20);
        // 20 + 10 > 25: drop "a"
        assert_eq!(o.push(env(Kind::Stats, "c", 10)), vec![Kind::Stats]);
        assert_eq!(o.bytes(), 20);
        // a message over the byte bound on its own is dropped, nothing else
        assert_eq!(o.push(env(Kind::Health, "big", 26)), vec![Kind::Health]);
        assert_eq!(o.len(), 2);
        assert_eq!(tags(&mut o), vec!["b", "c"]);
    }

    #[test]
    fn many_drops_keep_the_newest() {
        let mut o = Outbox::new(Limits {
            max_messages: 10,
            max_bytes: 1 << 20,
        });
        for i in 0..100 {
            o.push(env(Kind::Stats, &format!("s{i}"), 4));
        }
        assert_eq!(o.dropped(Kind::Stats), 90);
        let t = tags(&mut o);
        assert_eq!(t.first().map(String::as_str), Some("s90"));
        assert_eq!(t.last().map(String::as_str), Some("s99"));
    }

    #[test]
    fn batches() {
        let mut o = Outbox::new(Limits {
            max_messages: 10,
            max_bytes: 1000,
        });
        for i in 0..5 {
            o.push(env(Kind::Stats, &format!("{i}"), 1));
        }
        assert_eq!(o.pop_batch(2).len(), 2);
        assert_eq!(o.len(), 3);
        assert_eq!(o.bytes(), 3);
        assert!(o.pop_batch(0).is_empty());
    }
}
