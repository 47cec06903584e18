//! The standbys' replica of the live lease set.
//!
//! The leader publishes one sealed [`Record`] per lease change on
//! `<prefix>.ha.leases` *before* it answers the request that caused it, on
//! the same connection, so the NATS server has taken the record before the
//! holder can see its grant. Records carry the epoch and a sequence number;
//! a standby applies them in order, and asks the leader for a full
//! [`Snapshot`] (`<prefix>.ha.sync`) whenever it starts, sees a gap, or
//! sees a new epoch. A replica is *exact* for an epoch when it followed it
//! without a gap; only then may a takeover skip the grace period.
//!
//! Records and snapshots are sealed with an HMAC derived from the lease
//! signing key, which every coordinator shares through Postgres; anything
//! that does not verify, or belongs to an older epoch, changes nothing.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use lull_engine::lease::{AuditKind, Book, Effect};
use lull_proto::msg::lease::LeaseEventKind;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// One lease change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// The lease is live (granted or re-admitted) with this token.
    Live {
        /// Lease id.
        lease_id: String,
        /// Its current token.
        token: String,
    },
    /// The lease ended.
    Ended {
        /// Lease id.
        lease_id: String,
    },
}

/// The body of a record: what changed, in which epoch, at which position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// The leader's epoch.
    pub epoch: u64,
    /// Position in the epoch, from 1.
    pub seq: u64,
    /// The changes of one decision, in order.
    pub changes: Vec<Change>,
}

/// The full live set, as the leader answers `ha.sync`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotBody {
    /// The leader's epoch.
    pub epoch: u64,
    /// The last record's position included.
    pub seq: u64,
    /// Every live lease: id and token.
    pub leases: Vec<(String, String)>,
}

/// A sealed message: the body's JSON and its MAC (hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sealed {
    /// The body, as JSON text.
    pub body: String,
    /// HMAC-SHA256 of `body` under the replica key, hex.
    pub mac: String,
}

/// A record or snapshot that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// Not JSON of the expected shape.
    #[error("malformed replica message: {0}")]
    Malformed(String),
    /// The MAC does not verify under any known key.
    #[error("replica message does not verify")]
    BadMac,
}

impl ReplicaError {
    /// Bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ReplicaError::Malformed(_) => "malformed",
            ReplicaError::BadMac => "bad_mac",
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

/// The key that seals replica messages, derived from a lease signing key.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    /// Derives the seal key from a lease key's bytes.
    pub fn derive(lease_key: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(lease_key)
            .unwrap_or_else(|_| HmacSha256::new_from_slice(&[0u8; 32]).expect("fixed key"));
        mac.update(b"lull replica v1");
        SealKey(mac.finalize().into_bytes().into())
    }

    /// Derives the seal key from a lease key in hex.
    pub fn from_hex(lease_key_hex: &str) -> Option<Self> {
        hex::decode(lease_key_hex).ok().map(|b| SealKey::derive(&b))
    }

    /// The seal keys of lease keys in hex, in their order (unreadable ones
    /// are skipped).
    pub fn all_from_hex(lease_keys_hex: &[String]) -> Vec<SealKey> {
        lease_keys_hex
            .iter()
            .filter_map(|h| SealKey::from_hex(h))
            .collect()
    }

    fn mac(&self, body: &str) -> HmacSha256 {
        self.mac_bytes(body.as_bytes())
    }

    fn mac_bytes(&self, data: &[u8]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("32-byte key");
        m.update(data);
        m
    }

    /// Seals a body.
    pub fn seal<T: Serialize>(&self, body: &T) -> Vec<u8> {
        let body = serde_json::to_string(body).unwrap_or_default();
        let mac = hex::encode(self.mac(&body).finalize().into_bytes());
        serde_json::to_vec(&Sealed { body, mac }).unwrap_or_default()
    }
}

/// The binary replication record: `LR1\0`, epoch and seq (u64 LE), the
/// count of changes (u16 LE), each change as a kind byte (1 live, 2 ended)
/// with its lease id and, for a live lease, its token (u16 LE length and
/// bytes each), then the HMAC-SHA256 of all that (32 bytes). Written in
/// place on the leader's hot path by [`RecordBuf`].
const MAGIC: &[u8; 4] = b"LR1\0";
const HEADER: usize = 4 + 8 + 8 + 2;
const MAC_LEN: usize = 32;

/// A reusable buffer the leader writes one record into.
#[derive(Debug, Default)]
pub struct RecordBuf {
    buf: Vec<u8>,
    count: u16,
}

impl RecordBuf {
    /// Adds the lease changes among a batch's effects: grants and
    /// re-admissions make a lease live (with its token from `book`), every
    /// end event ends it; the rest changes nothing on a standby.
    pub fn add_effects(&mut self, book: &Book, effects: &[Effect]) {
        for fx in effects {
            match fx {
                Effect::Publish(ev) => match ev.event {
                    LeaseEventKind::Granted => {
                        if let Some(t) = book.token_of(&ev.lease_id) {
                            self.live(&ev.lease_id, t);
                        }
                    }
                    LeaseEventKind::Released
                    | LeaseEventKind::Expired
                    | LeaseEventKind::Revoked => self.ended(&ev.lease_id),
                },
                Effect::Audit(a) if a.kind == AuditKind::Reclaimed => {
                    if let Some(id) = a.lease_id.as_deref() {
                        if let Some(t) = book.token_of(id) {
                            self.live(id, t);
                        }
                    }
                }
                Effect::Audit(_) | Effect::Queue(_) => {}
            }
        }
    }

    /// Starts a record of `epoch` at position `seq`.
    pub fn begin(&mut self, epoch: u64, seq: u64) {
        self.buf.clear();
        self.buf.extend_from_slice(MAGIC);
        self.buf.extend_from_slice(&epoch.to_le_bytes());
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.extend_from_slice(&0u16.to_le_bytes());
        self.count = 0;
    }

    fn put(&mut self, s: &str) {
        let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
        self.buf.extend_from_slice(&(b.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(b);
    }

    /// Adds a live lease.
    pub fn live(&mut self, lease_id: &str, token: &str) {
        self.buf.push(1);
        self.put(lease_id);
        self.put(token);
        self.count = self.count.saturating_add(1);
    }

    /// Adds an ended lease.
    pub fn ended(&mut self, lease_id: &str) {
        self.buf.push(2);
        self.put(lease_id);
        self.count = self.count.saturating_add(1);
    }

    /// Whether nothing was added since [`RecordBuf::begin`].
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Seals the record and returns its bytes.
    pub fn finish(&mut self, key: &SealKey) -> bytes::Bytes {
        self.buf[HEADER - 2..HEADER].copy_from_slice(&self.count.to_le_bytes());
        let mac = key.mac_bytes(&self.buf).finalize().into_bytes();
        self.buf.extend_from_slice(&mac);
        bytes::Bytes::copy_from_slice(&self.buf)
    }
}

/// Encodes a whole record (tests and tools; the leader uses [`RecordBuf`]).
pub fn seal_record(key: &SealKey, body: &Body) -> bytes::Bytes {
    let mut r = RecordBuf::default();
    r.begin(body.epoch, body.seq);
    for c in &body.changes {
        match c {
            Change::Live { lease_id, token } => r.live(lease_id, token),
            Change::Ended { lease_id } => r.ended(lease_id),
        }
    }
    r.finish(key)
}

/// Opens a binary record with any of `keys`.
pub fn open_record(payload: &[u8], keys: &[SealKey]) -> Result<Body, ReplicaError> {
    let bad = |why: &str| ReplicaError::Malformed(why.to_string());
    if payload.len() < HEADER + MAC_LEN || &payload[..4] != MAGIC {
        return Err(bad("not a replication record"));
    }
    let (data, tag) = payload.split_at(payload.len() - MAC_LEN);
    if !keys
        .iter()
        .any(|k| k.mac_bytes(data).verify_slice(tag).is_ok())
    {
        return Err(ReplicaError::BadMac);
    }
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&data[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let epoch = u64_at(4);
    let seq = u64_at(12);
    let count = u16::from_le_bytes([data[20], data[21]]);
    let mut rest = &data[HEADER..];
    let take_str = |rest: &mut &[u8]| -> Result<String, ReplicaError> {
        if rest.len() < 2 {
            return Err(bad("truncated"));
        }
        let n = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + n {
            return Err(bad("truncated"));
        }
        let s = std::str::from_utf8(&rest[2..2 + n]).map_err(|_| bad("not UTF-8"))?;
        *rest = &rest[2 + n..];
        Ok(s.to_string())
    };
    let mut changes = Vec::with_capacity(usize::from(count).min(64));
    for _ in 0..count {
        let Some((&kind, tail)) = rest.split_first() else {
            return Err(bad("truncated"));
        };
        rest = tail;
        match kind {
            1 => {
                let lease_id = take_str(&mut rest)?;
                let token = take_str(&mut rest)?;
                changes.push(Change::Live { lease_id, token });
            }
            2 => changes.push(Change::Ended {
                lease_id: take_str(&mut rest)?,
            }),
            _ => return Err(bad("unknown change kind")),
        }
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(Body {
        epoch,
        seq,
        changes,
    })
}

/// Opens a sealed message with any of `keys`.
pub fn open<T: for<'de> Deserialize<'de>>(
    payload: &[u8],
    keys: &[SealKey],
) -> Result<T, ReplicaError> {
    let sealed: Sealed =
        serde_json::from_slice(payload).map_err(|e| ReplicaError::Malformed(e.to_string()))?;
    let tag = hex::decode(&sealed.mac).map_err(|_| ReplicaError::BadMac)?;
    if !keys
        .iter()
        .any(|k| k.mac(&sealed.body).verify_slice(&tag).is_ok())
    {
        return Err(ReplicaError::BadMac);
    }
    serde_json::from_str(&sealed.body).map_err(|e| ReplicaError::Malformed(e.to_string()))
}

/// What applying a record asks of the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied in order.
    Applied,
    /// Already seen (an older position of this epoch).
    Duplicate,
    /// From an epoch older than the one followed: ignored.
    StaleEpoch,
    /// A gap or a new epoch: the replica is not exact until a snapshot.
    NeedSync,
}

/// A standby's replica (pure state; the scheduler owns it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replica {
    /// The epoch followed.
    pub epoch: u64,
    /// The last position applied.
    pub seq: u64,
    /// Whether every record of `epoch` up to `seq` was applied.
    pub exact: bool,
    /// Live leases: id → token.
    pub leases: BTreeMap<String, String>,
}

impl Replica {
    /// Applies a record.
    pub fn apply(&mut self, b: Body) -> Applied {
        if b.epoch < self.epoch {
            return Applied::StaleEpoch;
        }
        if b.epoch > self.epoch || !self.exact {
            // Keep what we know (it is better than nothing for the grace
            // path) but follow the new epoch only after a snapshot.
            if b.epoch > self.epoch {
                self.epoch = b.epoch;
                self.seq = 0;
                self.exact = false;
            }
            self.apply_changes(b.changes);
            return Applied::NeedSync;
        }
        if b.seq <= self.seq {
            return Applied::Duplicate;
        }
        if b.seq != self.seq + 1 {
            self.exact = false;
            self.apply_changes(b.changes);
            return Applied::NeedSync;
        }
        self.seq = b.seq;
        self.apply_changes(b.changes);
        Applied::Applied
    }

    fn apply_changes(&mut self, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::Live { lease_id, token } => {
                    self.leases.insert(lease_id, token);
                }
                Change::Ended { lease_id } => {
                    self.leases.remove(&lease_id);
                }
            }
        }
    }

    /// Replaces the state with a snapshot of an epoch at least as new.
    /// Records already applied past the snapshot's position are kept by
    /// the caller re-applying its buffer.
    pub fn restore(&mut self, s: SnapshotBody) -> bool {
        if s.epoch < self.epoch {
            return false;
        }
        self.epoch = s.epoch;
        self.seq = s.seq;
        self.exact = true;
        self.leases = s.leases.into_iter().collect();
        true
    }

    /// Whether a takeover in `new_epoch` may trust this replica: it
    /// followed the epoch just before, exactly.
    pub fn exact_for(&self, new_epoch: u64) -> bool {
        self.exact && self.epoch + 1 == new_epoch && self.epoch > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(id: &str) -> Change {
        Change::Live {
            lease_id: id.into(),
            token: format!("t-{id}"),
        }
    }

    fn body(epoch: u64, seq: u64, changes: Vec<Change>) -> Body {
        Body {
            epoch,
            seq,
            changes,
        }
    }

    #[test]
    fn in_order_records_keep_the_replica_exact() {
        let mut r = Replica::default();
        assert!(r.restore(SnapshotBody {
            epoch: 3,
            seq: 0,
            leases: vec![],
        }));
        assert_eq!(r.apply(body(3, 1, vec![live("a")])), Applied::Applied);
        assert_eq!(r.apply(body(3, 2, vec![live("b")])), Applied::Applied);
        assert_eq!(
            r.apply(body(
                3,
                3,
                vec![Change::Ended {
                    lease_id: "a".into()
                }]
            )),
            Applied::Applied
        );
        assert_eq!(r.apply(body(3, 2, vec![live("zzz")])), Applied::Duplicate);
        assert_eq!(r.leases.keys().collect::<Vec<_>>(), vec!["b"]);
        assert!(r.exact_for(4));
        assert!(!r.exact_for(5));
    }

    #[test]
    fn a_gap_or_new_epoch_needs_a_snapshot_and_an_old_epoch_is_ignored() {
        let mut r = Replica::default();
        r.restore(SnapshotBody {
            epoch: 3,
            seq: 5,
            leases: vec![("x".into(), "t-x".into())],
        });
        assert_eq!(r.apply(body(3, 7, vec![live("c")])), Applied::NeedSync);
        assert!(!r.exact_for(4));
        assert_eq!(
            r.apply(body(
                2,
                99,
                vec![Change::Ended {
                    lease_id: "x".into()
                }]
            )),
            Applied::StaleEpoch
        );
        assert!(r.leases.contains_key("x"));
        assert_eq!(r.apply(body(4, 1, vec![live("d")])), Applied::NeedSync);
        assert_eq!(r.epoch, 4);
        assert!(r.restore(SnapshotBody {
            epoch: 4,
            seq: 1,
            leases: vec![("d".into(), "t-d".into())],
        }));
        assert!(r.exact_for(5));
        assert!(!r.restore(SnapshotBody {
            epoch: 3,
            seq: 9,
            leases: vec![],
        }));
    }

    #[test]
    fn binary_records_round_trip_and_refuse_tampering() {
        let k = SealKey::derive(&[3u8; 32]);
        let b = body(
            7,
            42,
            vec![
                live("a"),
                Change::Ended {
                    lease_id: "b".into(),
                },
            ],
        );
        let rec = seal_record(&k, &b);
        assert_eq!(open_record(&rec, std::slice::from_ref(&k)).unwrap(), b);
        let other = SealKey::derive(&[4u8; 32]);
        assert_eq!(open_record(&rec, &[other]), Err(ReplicaError::BadMac));
        let mut bent = rec.to_vec();
        bent[12] ^= 1; // the seq
        assert_eq!(
            open_record(&bent, std::slice::from_ref(&k)),
            Err(ReplicaError::BadMac)
        );
        assert!(matches!(
            open_record(b"LR1\0short", std::slice::from_ref(&k)),
            Err(ReplicaError::Malformed(_))
        ));
        assert!(matches!(
            open_record(b"{json}", &[k]),
            Err(ReplicaError::Malformed(_))
        ));
    }

    #[test]
    fn seals_verify_only_under_the_right_key() {
        let k1 = SealKey::derive(&[1u8; 32]);
        let k2 = SealKey::derive(&[2u8; 32]);
        let b = body(1, 1, vec![live("a")]);
        let sealed = k1.seal(&b);
        assert_eq!(open::<Body>(&sealed, &[k2.clone(), k1.clone()]).unwrap(), b);
        assert_eq!(
            open::<Body>(&sealed, std::slice::from_ref(&k2)),
            Err(ReplicaError::BadMac)
        );
        // Tampering with the body breaks the MAC.
        let mut s: Sealed = serde_json::from_slice(&sealed).unwrap();
        s.body = s.body.replace("\"seq\":1", "\"seq\":2");
        let forged = serde_json::to_vec(&s).unwrap();
        assert_eq!(
            open::<Body>(&forged, std::slice::from_ref(&k1)),
            Err(ReplicaError::BadMac)
        );
        assert!(matches!(
            open::<Body>(b"{not json", &[k1]),
            Err(ReplicaError::Malformed(_))
        ));
    }
}
