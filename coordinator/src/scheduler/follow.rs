//! The standby side of lease replication: subscribes the leader's
//! replication stream (`<prefix>.ha.leases`) and the sync subject
//! (`<prefix>.ha.sync`), verifies and applies records to the [`Replica`],
//! asks the leader for a snapshot when the replica is not exact, and runs
//! the takeover barrier. Everything it receives is untrusted: a message
//! that does not verify or belongs to an old epoch changes nothing and is
//! counted.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;

use super::replica::{
    open, open_record, Applied, Body, Replica, ReplicaError, SealKey, SnapshotBody,
};

/// Loads the seal keys a standby verifies replication with.
pub type KeyLoader = std::sync::Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, anyhow::Result<Vec<SealKey>>> + Send + Sync,
>;

/// Most records buffered while a snapshot is on its way.
const BUFFER_MAX: usize = 100_000;

/// Something that arrived for the replication side.
#[derive(Debug)]
pub enum Inbound {
    /// A record (or barrier) on the replication stream.
    Record(async_nats::Message),
    /// A standby asks the leader for a snapshot.
    SyncRequest(async_nats::Message),
    /// The leader's answer to our snapshot request.
    SyncReply(Result<async_nats::Message, String>),
}

/// The standby's follower of the replication stream.
pub struct Follower {
    client: async_nats::Client,
    subject: String,
    sync_subject: String,
    records: Option<async_nats::Subscriber>,
    syncs: Option<async_nats::Subscriber>,
    /// The replica, exact or not.
    pub replica: Replica,
    keys: Vec<SealKey>,
    load_keys: KeyLoader,
    keys_loaded: Option<Instant>,
    syncing: bool,
    last_sync: Option<Instant>,
    buffer: Vec<Body>,
    replies_tx: mpsc::Sender<Result<async_nats::Message, String>>,
    replies_rx: mpsc::Receiver<Result<async_nats::Message, String>>,
}

impl Follower {
    /// A follower for the subjects under `subjects`' prefix.
    pub fn new(
        client: async_nats::Client,
        subjects: &lull_proto::Subjects,
        load_keys: KeyLoader,
    ) -> Self {
        let (replies_tx, replies_rx) = mpsc::channel(4);
        Follower {
            client,
            subject: format!("{}.ha.leases", subjects.prefix()),
            sync_subject: format!("{}.ha.sync", subjects.prefix()),
            records: None,
            syncs: None,
            replica: Replica::default(),
            keys: Vec::new(),
            load_keys,
            keys_loaded: None,
            syncing: false,
            last_sync: None,
            buffer: Vec::new(),
            replies_tx,
            replies_rx,
        }
    }

    /// The replication subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Subscribes and loads the seal keys.
    pub async fn start(&mut self) {
        match self.client.subscribe(self.subject.clone()).await {
            Ok(s) => self.records = Some(s),
            Err(e) => tracing::error!(error = %e, "subscribing the replication stream"),
        }
        match self.client.subscribe(self.sync_subject.clone()).await {
            Ok(s) => self.syncs = Some(s),
            Err(e) => tracing::error!(error = %e, "subscribing the sync subject"),
        }
        // Keys are loaded when the first record needs them: loading them
        // now could create the first key before a leader does, which would
        // cost that leader its first-start shortcut past the grace period.
    }

    /// Uses these seal keys (the leader's own, at a takeover).
    pub fn set_keys(&mut self, keys: Vec<SealKey>) {
        self.keys = keys;
    }

    async fn reload_keys(&mut self) {
        if self
            .keys_loaded
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            return;
        }
        self.keys_loaded = Some(Instant::now());
        match (self.load_keys)().await {
            Ok(k) => self.keys = k,
            Err(e) => tracing::warn!(error = format!("{e:#}"), "loading the replication keys"),
        }
    }

    /// The next inbound message (pending forever when nothing is subscribed).
    pub async fn next(&mut self) -> Option<Inbound> {
        let records = async {
            match self.records.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        let syncs = async {
            match self.syncs.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = records => m.map(Inbound::Record),
            m = syncs => m.map(Inbound::SyncRequest),
            r = self.replies_rx.recv() => r.map(Inbound::SyncReply),
        }
    }

    /// Applies what arrived (as a standby).
    pub async fn handle(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Record(msg) => self.on_record(&msg.payload).await,
            Inbound::SyncRequest(_) => {}
            Inbound::SyncReply(Ok(msg)) => self.on_snapshot(&msg.payload).await,
            Inbound::SyncReply(Err(e)) => {
                self.syncing = false;
                tracing::debug!(error = %e, "replica sync request failed");
            }
        }
    }

    /// Opens a message with `open`; on a MAC that does not verify, reloads
    /// the keys (rate-limited: perhaps a new key) and tries once more.
    /// Failures are counted and give `None`.
    async fn open_checked<T>(
        &mut self,
        payload: &[u8],
        open: fn(&[u8], &[SealKey]) -> Result<T, ReplicaError>,
    ) -> Option<T> {
        let mut r = open(payload, &self.keys);
        if matches!(r, Err(ReplicaError::BadMac)) {
            self.reload_keys().await;
            r = open(payload, &self.keys);
        }
        r.map_err(|e| super::metrics::replica_message(e.label()))
            .ok()
    }

    async fn on_record(&mut self, payload: &[u8]) {
        if payload.starts_with(b"barrier:") {
            return;
        }
        let Some(body) = self.open_checked(payload, open_record).await else {
            return;
        };
        if self.syncing && self.buffer.len() < BUFFER_MAX {
            self.buffer.push(body.clone());
        }
        let applied = self.replica.apply(body);
        super::metrics::replica_message(match applied {
            Applied::Applied => "applied",
            Applied::Duplicate => "duplicate",
            Applied::StaleEpoch => "stale_epoch",
            Applied::NeedSync => "gap",
        });
        if applied == Applied::NeedSync {
            self.maybe_sync().await;
        }
    }

    async fn on_snapshot(&mut self, payload: &[u8]) {
        self.syncing = false;
        let Some(snap) = self.open_checked(payload, open::<SnapshotBody>).await else {
            return;
        };
        let (epoch, seq) = (snap.epoch, snap.seq);
        if !self.replica.restore(snap) {
            return;
        }
        let mut later: Vec<Body> = std::mem::take(&mut self.buffer)
            .into_iter()
            .filter(|b| b.epoch == epoch && b.seq > seq)
            .collect();
        later.sort_by_key(|b| b.seq);
        for b in later {
            self.replica.apply(b);
        }
        super::metrics::replica_message("snapshot");
        tracing::info!(
            epoch,
            seq,
            exact = self.replica.exact,
            leases = self.replica.leases.len(),
            "replica synced"
        );
    }

    /// Asks the leader for a snapshot when the replica is not exact (at
    /// most once a second, one at a time).
    pub async fn maybe_sync(&mut self) {
        if self.replica.exact || self.syncing {
            return;
        }
        if self
            .last_sync
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.syncing = true;
        self.last_sync = Some(Instant::now());
        self.buffer.clear();
        let client = self.client.clone();
        let subject = self.sync_subject.clone();
        let tx = self.replies_tx.clone();
        tokio::spawn(async move {
            let r =
                tokio::time::timeout(Duration::from_secs(2), client.request(subject, "".into()))
                    .await
                    .map_err(|_| "timed out".to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
            let _ = tx.send(r).await;
        });
    }

    /// Makes sure every record published before now has been applied: a
    /// barrier message goes out on the stream, and records are applied
    /// until it comes back (or `timeout` passes).
    pub async fn barrier(&mut self, timeout: Duration) {
        let nonce = format!("barrier:{:016x}", rand::random::<u64>());
        if self
            .client
            .publish(self.subject.clone(), nonce.clone().into_bytes().into())
            .await
            .is_err()
        {
            return;
        }
        let _ = self.client.flush().await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = async {
                match self.records.as_mut() {
                    Some(s) => s.next().await,
                    None => None,
                }
            };
            match tokio::time::timeout_at(deadline, next).await {
                Ok(Some(m)) if m.payload.as_ref() == nonce.as_bytes() => return,
                Ok(Some(m)) => self.on_record(&m.payload).await,
                _ => {
                    tracing::warn!(
                        "takeover barrier did not come back; the replica counts as inexact"
                    );
                    self.replica.exact = false;
                    return;
                }
            }
        }
    }

    /// After leading `epoch`: keep the live set known, inexact, and sync
    /// from whoever leads next.
    pub fn demote(&mut self, epoch: u64, live: Vec<(String, String)>) {
        self.replica = Replica {
            epoch,
            seq: 0,
            exact: false,
            leases: live.into_iter().collect(),
        };
        self.syncing = false;
        self.last_sync = None;
    }
}
