//! Read-outs of the book for `scheduler.status`: active and recent leases,
//! host capacity and use, and the per-addon decision summaries.

use lull_proto::msg::lease::{
    AddonDecisions, HostCapacity, LeaseInfo, LeaseLists, SchedulerStatus,
};

use super::Book;

/// Where a list of a paged `scheduler.status` continues.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Pos<K> {
    /// From the beginning.
    #[default]
    Start,
    /// After this key.
    After(K),
    /// The list is exhausted.
    Done,
}

/// The position of a `scheduler.status` page in its two paged lists:
/// hosts by id, active leases by grant time then id. Encoded as an
/// opaque `next_cursor` string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusCursor {
    /// Hosts.
    pub hosts: Pos<String>,
    /// Active leases: after `(granted_at, lease_id)`.
    pub leases: Pos<(f64, String)>,
}

/// A `scheduler.status` cursor that this coordinator did not make.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cursor is not one this coordinator made (pass next_cursor back unchanged)")]
pub struct BadCursor;

impl StatusCursor {
    /// The cursor as sent: `<hosts>|<leases>`, each `s` (start), `d`
    /// (done) or `a` and the key (a lease key is the grant time's bits in
    /// hex, `:`, the lease id). Host ids hold no `|`.
    pub fn encode(&self) -> String {
        let h = match &self.hosts {
            Pos::Start => "s".to_string(),
            Pos::Done => "d".to_string(),
            Pos::After(id) => format!("a{id}"),
        };
        let l = match &self.leases {
            Pos::Start => "s".to_string(),
            Pos::Done => "d".to_string(),
            Pos::After((t, id)) => format!("a{:016x}:{id}", t.to_bits()),
        };
        format!("{h}|{l}")
    }

    /// Reads a cursor made by [`StatusCursor::encode`].
    pub fn decode(s: &str) -> Result<Self, BadCursor> {
        let (h, l) = s.split_once('|').ok_or(BadCursor)?;
        let hosts = match h {
            "s" => Pos::Start,
            "d" => Pos::Done,
            _ => match h.strip_prefix('a') {
                Some(id) if !id.is_empty() => Pos::After(id.to_string()),
                _ => return Err(BadCursor),
            },
        };
        let leases = match l {
            "s" => Pos::Start,
            "d" => Pos::Done,
            _ => {
                let rest = l.strip_prefix('a').ok_or(BadCursor)?;
                let (bits, id) = rest.split_once(':').ok_or(BadCursor)?;
                let bits = u64::from_str_radix(bits, 16).map_err(|_| BadCursor)?;
                let t = f64::from_bits(bits);
                if !t.is_finite() || id.is_empty() {
                    return Err(BadCursor);
                }
                Pos::After((t, id.to_string()))
            }
        };
        Ok(StatusCursor { hosts, leases })
    }
}

/// The paging key of an active lease.
fn lease_key(i: &LeaseInfo) -> (f64, &str) {
    (i.granted_at, i.lease_id.as_str())
}

impl Book {
    /// `scheduler.status` in one piece (every host and active lease).
    pub fn status(&self, now: f64) -> SchedulerStatus {
        self.status_page(now, usize::MAX, &StatusCursor::default())
    }

    /// One page of `scheduler.status`: at most `limit` hosts (by id) and
    /// `limit` active leases (by grant time) after `cursor`, with every
    /// recent lease, the per-addon decision summary, the queue length and
    /// the end of the grace period; `next_cursor` is set while either list
    /// has more.
    pub fn status_page(&self, now: f64, limit: usize, cursor: &StatusCursor) -> SchedulerStatus {
        let limit = limit.max(1);
        let mut active: Vec<&LeaseInfo> = match &cursor.leases {
            Pos::Done => Vec::new(),
            Pos::Start => self.leases.values().map(|l| &l.info).collect(),
            Pos::After((t, id)) => self
                .leases
                .values()
                .map(|l| &l.info)
                .filter(|i| lease_key(i) > (*t, id.as_str()))
                .collect(),
        };
        active.sort_by(|a, b| {
            a.granted_at
                .total_cmp(&b.granted_at)
                .then_with(|| a.lease_id.cmp(&b.lease_id))
        });
        let leases_more = active.len() > limit;
        active.truncate(limit);
        let after = match &cursor.hosts {
            Pos::Done => None,
            Pos::Start => Some(self.hosts.range::<str, _>(..)),
            Pos::After(h) => Some(self.hosts.range::<str, _>((
                std::ops::Bound::Excluded(h.as_str()),
                std::ops::Bound::Unbounded,
            ))),
        };
        let mut hosts: Vec<HostCapacity> = after
            .into_iter()
            .flatten()
            .take(limit.saturating_add(1))
            .map(|(_, h)| HostCapacity {
                host_id: h.host_id.clone(),
                state: h.state,
                quiet_score: h.quiet_score,
                capacity_units: h.capacity(&self.cfg),
                used_units: self.used_units(&h.host_id),
            })
            .collect();
        let hosts_more = hosts.len() > limit;
        hosts.truncate(limit);
        let next = StatusCursor {
            hosts: match hosts.last() {
                Some(h) if hosts_more => Pos::After(h.host_id.clone()),
                _ => Pos::Done,
            },
            leases: match active.last() {
                Some(l) if leases_more => Pos::After((l.granted_at, l.lease_id.clone())),
                _ => Pos::Done,
            },
        };
        SchedulerStatus {
            leases: LeaseLists {
                active: active.into_iter().cloned().collect(),
                recent: self.recent.iter().cloned().collect(),
            },
            hosts,
            addons: self.addon_decisions(),
            queue_length: self.queue.len() as u64,
            grace_until: self.grace_until.filter(|g| now < *g),
            next_cursor: (hosts_more || leases_more).then(|| next.encode()),
        }
    }

    /// The per-addon decision summary, sorted by addon id.
    pub fn addon_decisions(&self) -> Vec<AddonDecisions> {
        let mut v: Vec<AddonDecisions> =
            self.addons.values().map(|a| a.decisions.clone()).collect();
        v.sort_by(|a, b| a.addon_id.cmp(&b.addon_id));
        v
    }

    /// One addon's decision summary.
    pub fn addon_summary(&self, addon_id: &str) -> Option<&AddonDecisions> {
        self.addons.get(addon_id).map(|a| &a.decisions)
    }
}
