//! The lease book: every live lease, the wait queue, the per-addon buckets
//! and decision summaries, the host views, and the restart grace period, as
//! one pure state machine. The coordinator owns one [`Book`] inside one
//! actor task fed by a channel, so admission is serialised without locks.
//!
//! Every method takes the clock (`now`, Unix seconds) and returns its reply
//! together with a list of [`Effect`]s for the shell to carry out: lease
//! events to publish on `lull.lease.events.<lease_id>` and audit records to
//! write. The book itself does no I/O.
//!
//! The book's methods live by concept: `admission` (a request ruled on by
//! the policy and applied), `lifecycle` (heartbeat, release, report,
//! revoke, expiry), `reclaim` (tokens and re-admission after a restart),
//! `hosts` (host views, PANIC revocation), `addons` (buckets, decision
//! summaries, the loads admission reads) and `status`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use lull_proto::msg::lease::{AddonDecisions, LeaseInfo, LeaseState, OkResponse};

pub use super::audit::{AuditKind, AuditRecord};
use super::bucket::TokenBucket;
use super::config::LeaseConfig;
pub use super::outcome::{BookError, Effect, Outcome, QueueChange};
use super::policy::HostView;
use super::queue::WaitQueue;
use super::token::LeaseKey;

mod addons;
mod admission;
mod hosts;
mod lifecycle;
mod reclaim;
mod status;
pub use status::{BadCursor, Pos, StatusCursor};

#[derive(Debug, Clone)]
struct Lease {
    info: LeaseInfo,
    token: String,
    expected_duration_sec: Option<f64>,
}

impl Lease {
    fn free_at(&self) -> f64 {
        match self.expected_duration_sec {
            Some(d) => self.info.expires_at.max(self.info.granted_at + d),
            None => self.info.expires_at,
        }
    }
}

#[derive(Debug, Clone)]
struct Tomb {
    state: LeaseState,
    reason: Option<String>,
}

#[derive(Debug, Clone)]
struct AddonEntry {
    bucket: TokenBucket,
    decisions: AddonDecisions,
    last_seen: f64,
}

/// The lease book. See the module docs.
#[derive(Debug)]
pub struct Book {
    cfg: LeaseConfig,
    /// Signs new tokens.
    key: LeaseKey,
    /// Earlier keys, still accepted for tokens minted before a rotation.
    previous_keys: Vec<LeaseKey>,
    id_prefix: String,
    next_id: u64,
    grace_until: Option<f64>,
    hosts: BTreeMap<String, HostView>,
    leases: HashMap<String, Lease>,
    by_host: HashMap<String, BTreeSet<String>>,
    used: HashMap<String, u32>,
    addon_active: HashMap<String, u32>,
    queue: WaitQueue,
    recent: VecDeque<LeaseInfo>,
    tombs: HashMap<String, Tomb>,
    tomb_order: VecDeque<String>,
    addons: HashMap<String, AddonEntry>,
    /// The leadership epoch stamped into new tokens.
    epoch: Option<u64>,
}

fn ok(reason: Option<String>) -> OkResponse {
    OkResponse { ok: true, reason }
}

fn not_ok(reason: String) -> OkResponse {
    OkResponse {
        ok: false,
        reason: Some(reason),
    }
}

impl Book {
    /// A book that starts in its grace period (one TTL by default): new
    /// grants are refused with `grace_period` while holders of leases from
    /// before a restart re-assert them with heartbeats. `key` must be the
    /// persisted key of previous runs. Lease ids are
    /// `<id_prefix>-<start time, ms, hex>-<counter>`, so ids of different
    /// starts never collide (which would let an old token act on a new
    /// lease); `id_prefix` keeps only `[A-Za-z0-9_]`, at most 16 of them.
    pub fn new(cfg: LeaseConfig, key: LeaseKey, id_prefix: impl Into<String>, now: f64) -> Self {
        let grace = cfg.grace_period();
        let queue = WaitQueue::new(cfg.queue_max);
        let prefix: String = id_prefix
            .into()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(16)
            .collect();
        let start_ms = if now.is_finite() && now > 0.0 {
            (now * 1000.0) as u64
        } else {
            0
        };
        let id_prefix = format!("{prefix}-{start_ms:x}");
        Book {
            grace_until: (grace > 0.0).then_some(now + grace),
            cfg,
            key,
            previous_keys: Vec::new(),
            id_prefix,
            next_id: 1,
            hosts: BTreeMap::new(),
            leases: HashMap::new(),
            by_host: HashMap::new(),
            used: HashMap::new(),
            addon_active: HashMap::new(),
            queue,
            recent: VecDeque::new(),
            tombs: HashMap::new(),
            tomb_order: VecDeque::new(),
            addons: HashMap::new(),
            epoch: None,
        }
    }

    /// Accepts tokens signed with these earlier keys too (after a key
    /// rotation). A lease re-asserted with such a token gets a new token
    /// signed with the current key, handed back on its heartbeat.
    pub fn add_previous_keys(&mut self, keys: impl IntoIterator<Item = LeaseKey>) {
        self.previous_keys.extend(keys);
    }

    /// Ends the grace period now. Call it when the key was created on this
    /// start: no token can exist, so there is nothing to wait for.
    pub fn skip_grace(&mut self) {
        self.grace_until = None;
    }

    /// Unix seconds until which new grants are refused, while in grace.
    pub fn grace_until(&self) -> Option<f64> {
        self.grace_until
    }

    /// Whether the book is in its grace period at `now`.
    pub fn in_grace(&self, now: f64) -> bool {
        self.grace_until.is_some_and(|g| now < g)
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Remembers lease ids that ended before this start (from the audit
    /// log), so their tokens cannot re-assert them during the grace period
    /// and late heartbeats learn their final state.
    pub fn restore_tombstones(&mut self, ended: impl IntoIterator<Item = (String, LeaseState)>) {
        for (id, state) in ended {
            if !self.leases.contains_key(&id) {
                self.tomb(id, state, None);
            }
        }
    }

    /// An active lease.
    pub fn lease(&self, lease_id: &str) -> Option<&LeaseInfo> {
        self.leases.get(lease_id).map(|l| &l.info)
    }

    /// Stamps the leadership epoch (fencing term) into every token minted
    /// from now on.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = Some(epoch);
    }

    /// The epoch stamped into new tokens.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The current token of an active lease (what the replication stream
    /// hands to standbys).
    pub fn token_of(&self, lease_id: &str) -> Option<&str> {
        self.leases.get(lease_id).map(|l| l.token.as_str())
    }

    /// All active leases (any order).
    pub fn active_leases(&self) -> impl Iterator<Item = &LeaseInfo> {
        self.leases.values().map(|l| &l.info)
    }

    /// Active lease count.
    pub fn active_len(&self) -> usize {
        self.leases.len()
    }

    /// Requests waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Whether a lease id is waiting in the queue.
    pub fn is_queued(&self, lease_id: &str) -> bool {
        self.queue.contains(lease_id)
    }

    /// Units held on a host.
    pub fn used_units(&self, host_id: &str) -> u32 {
        self.used.get(host_id).copied().unwrap_or(0)
    }

    /// The host views.
    pub fn hosts(&self) -> &BTreeMap<String, HostView> {
        &self.hosts
    }

    /// The final state of an ended lease still remembered.
    pub fn ended_state(&self, lease_id: &str) -> Option<LeaseState> {
        self.tombs.get(lease_id).map(|t| t.state)
    }

    /// When the owner should call [`Book::tick`] next at the latest: the end
    /// of the grace period, the soonest lease expiry, queue deadline or
    /// queue re-evaluation. `None` when nothing is pending.
    pub fn next_wakeup(&self) -> Option<f64> {
        let leases = self.leases.values().map(|l| l.info.expires_at);
        self.grace_until
            .into_iter()
            .chain(leases)
            .chain(self.queue.next_wakeup())
            .min_by(|a, b| a.total_cmp(b))
    }

    pub(super) fn new_id(&mut self) -> String {
        loop {
            let id = format!("{}-{}", self.id_prefix, self.next_id);
            self.next_id += 1;
            if !self.leases.contains_key(&id)
                && !self.queue.contains(&id)
                && !self.tombs.contains_key(&id)
            {
                return id;
            }
        }
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "book_proptest.rs"]
mod proptests;

#[cfg(test)]
#[path = "book_restore_tests.rs"]
mod restore_tests;
