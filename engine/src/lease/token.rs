//! Restart-safe lease tokens: a token carries the lease's terms (id, host,
//! addon, job type, cost, priority, when it was issued, TTL) under an
//! HMAC-SHA256 tag made with a coordinator key. Any coordinator holding the
//! key (the shell keeps it in Postgres) can check a token it has never seen
//! and learn the lease's terms from it, which is how holders re-assert their
//! leases after a restart. Pure: no clock, no randomness (the key comes from
//! the caller).
//!
//! Format: `v1.<payload>.<tag>`, both parts unpadded base64url. The payload
//! is a compact binary encoding of [`LeaseTerms`] (fields are length-
//! prefixed, so no escaping can make a token grow); the tag is
//! `HMAC-SHA256(key, "lull-lease-v1" || payload)`, checked in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use lull_proto::msg::lease::Priority;
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Token format version prefix.
const VERSION: &str = "v1";
/// Domain separation of the MAC input.
const DOMAIN: &[u8] = b"lull-lease-v1";
/// Longest string field in a token, bytes (ids are validated to 128).
const MAX_FIELD: usize = 1024;

/// A token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Not of the form `v1.<payload>.<tag>`, or not base64url.
    #[error("malformed lease token")]
    Malformed,
    /// A version this coordinator does not know.
    #[error("unsupported lease token version")]
    UnsupportedVersion,
    /// The tag does not match: forged, tampered with, or made with another key.
    #[error("lease token signature does not match")]
    BadSignature,
    /// The signature matched but the terms inside could not be read.
    #[error("lease token terms are unreadable")]
    BadTerms,
    /// The key is too short to be safe.
    #[error("lease token key must be at least {min} bytes, got {got}")]
    WeakKey {
        /// Minimum length.
        min: usize,
        /// Given length.
        got: usize,
    },
    /// A hex-encoded key is not hex.
    #[error("lease token key is not valid hex")]
    BadKeyHex,
}

/// The secret key tokens are signed with. Its `Debug` output never shows
/// the bytes.
#[derive(Clone)]
pub struct LeaseKey {
    bytes: Vec<u8>,
    /// HMAC state keyed once, cloned per use.
    mac: HmacSha256,
}

impl PartialEq for LeaseKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for LeaseKey {}

impl LeaseKey {
    /// Shortest accepted key, bytes.
    pub const MIN_LEN: usize = 32;

    /// A key from raw bytes (at least [`LeaseKey::MIN_LEN`]; generate 32
    /// random bytes once and persist them).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_LEN {
            return Err(TokenError::WeakKey {
                min: Self::MIN_LEN,
                got: bytes.len(),
            });
        }
        let mac = HmacSha256::new_from_slice(&bytes).map_err(|_| TokenError::WeakKey {
            min: Self::MIN_LEN,
            got: bytes.len(),
        })?;
        Ok(LeaseKey { bytes, mac })
    }

    /// A key from its hex form (as persisted).
    pub fn from_hex(s: &str) -> Result<Self, TokenError> {
        let bytes = hex::decode(s.trim()).map_err(|_| TokenError::BadKeyHex)?;
        Self::from_bytes(bytes)
    }

    /// The hex form, for persisting.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

impl std::fmt::Debug for LeaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseKey(<redacted>)")
    }
}

/// The terms of a lease, as carried by its token.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseTerms {
    /// Public lease id.
    pub lease_id: String,
    /// Host of the lease; `None` in the ticket of a queued request that
    /// asked the coordinator to place it.
    pub host_id: Option<String>,
    /// Holder addon.
    pub addon_id: String,
    /// Job type.
    pub job_type: String,
    /// Cost, units.
    pub cost_units: u32,
    /// Priority.
    pub priority: Priority,
    /// `true` for a granted lease; `false` for the ticket of a queued
    /// request (it identifies the waiter but proves no grant, so it can
    /// never re-assert a lease after a restart).
    pub granted: bool,
    /// Unix seconds when the token was issued (the grant time for a lease).
    pub issued_at: f64,
    /// Heartbeat TTL the lease was granted with, seconds.
    pub ttl_sec: f64,
    /// The holder's expected duration, seconds.
    pub expected_duration_sec: Option<f64>,
    /// The leadership epoch (fencing term) of the coordinator that issued
    /// the token; `None` in tokens from before leader election.
    pub epoch: Option<u64>,
}

const F_GRANTED: u8 = 1;
const F_HOST: u8 = 2;
const F_EXPECTED: u8 = 4;
const F_EPOCH: u8 = 8;

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Ids are validated to 128 bytes; the cut only guards the u16 length.
    let b = &s.as_bytes()[..s.len().min(MAX_FIELD)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn encode_terms(t: &LeaseTerms) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + t.lease_id.len() + t.addon_id.len() + t.job_type.len());
    let mut flags = 0u8;
    if t.granted {
        flags |= F_GRANTED;
    }
    if t.host_id.is_some() {
        flags |= F_HOST;
    }
    if t.expected_duration_sec.is_some() {
        flags |= F_EXPECTED;
    }
    if t.epoch.is_some() {
        flags |= F_EPOCH;
    }
    out.push(flags);
    put_str(&mut out, &t.lease_id);
    put_str(&mut out, &t.addon_id);
    put_str(&mut out, &t.job_type);
    if let Some(h) = &t.host_id {
        put_str(&mut out, h);
    }
    out.extend_from_slice(&t.cost_units.to_le_bytes());
    out.push(match t.priority {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
    });
    out.extend_from_slice(&t.issued_at.to_le_bytes());
    out.extend_from_slice(&t.ttl_sec.to_le_bytes());
    if let Some(d) = t.expected_duration_sec {
        out.extend_from_slice(&d.to_le_bytes());
    }
    if let Some(e) = t.epoch {
        out.extend_from_slice(&e.to_le_bytes());
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if self.buf.len() < n {
            return Err(TokenError::BadTerms);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, TokenError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, TokenError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f64(&mut self) -> Result<f64, TokenError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        let v = f64::from_le_bytes(a);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(TokenError::BadTerms)
        }
    }
    fn string(&mut self) -> Result<String, TokenError> {
        let len = self.take(2)?;
        let len = u16::from_le_bytes([len[0], len[1]]) as usize;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| TokenError::BadTerms)
    }
}

fn decode_terms(buf: &[u8]) -> Result<LeaseTerms, TokenError> {
    let mut r = Reader { buf };
    let flags = r.u8()?;
    if flags & !(F_GRANTED | F_HOST | F_EXPECTED | F_EPOCH) != 0 {
        return Err(TokenError::BadTerms);
    }
    let lease_id = r.string()?;
    let addon_id = r.string()?;
    let job_type = r.string()?;
    let host_id = if flags & F_HOST != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let cost_units = r.u32()?;
    let priority = match r.u8()? {
        0 => Priority::Low,
        1 => Priority::Normal,
        2 => Priority::High,
        _ => return Err(TokenError::BadTerms),
    };
    let issued_at = r.f64()?;
    let ttl_sec = r.f64()?;
    let expected_duration_sec = if flags & F_EXPECTED != 0 {
        Some(r.f64()?)
    } else {
        None
    };
    let epoch = if flags & F_EPOCH != 0 {
        let b = r.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    } else {
        None
    };
    if !r.buf.is_empty() {
        return Err(TokenError::BadTerms);
    }
    Ok(LeaseTerms {
        lease_id,
        host_id,
        addon_id,
        job_type,
        cost_units,
        priority,
        granted: flags & F_GRANTED != 0,
        issued_at,
        ttl_sec,
        expected_duration_sec,
        epoch,
    })
}

/// Signs `terms` with `key` and returns the token string.
pub fn mint(terms: &LeaseTerms, key: &LeaseKey) -> String {
    let payload = encode_terms(terms);
    let mut mac = key.mac();
    mac.update(DOMAIN);
    mac.update(&payload);
    let tag = mac.finalize().into_bytes();
    format!("{VERSION}.{}.{}", b64_encode(&payload), b64_encode(&tag))
}

/// Checks a token's signature (in constant time) and returns its terms.
pub fn verify(token: &str, key: &LeaseKey) -> Result<LeaseTerms, TokenError> {
    let mut parts = token.split('.');
    let (Some(version), Some(payload), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if version != VERSION {
        return if version.starts_with('v') {
            Err(TokenError::UnsupportedVersion)
        } else {
            Err(TokenError::Malformed)
        };
    }
    let payload = b64_decode(payload).ok_or(TokenError::Malformed)?;
    let tag = b64_decode(tag).ok_or(TokenError::Malformed)?;
    let mut mac = key.mac();
    mac.update(DOMAIN);
    mac.update(&payload);
    mac.verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    decode_terms(&payload)
}

/// Unpadded base64url.
fn b64_encode(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Strict unpadded base64url: no padding, and the bits past the last whole
/// byte must be zero, so every token has exactly one spelling.
fn b64_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LeaseKey {
        LeaseKey::from_bytes(vec![7u8; 32]).unwrap()
    }

    fn terms() -> LeaseTerms {
        LeaseTerms {
            lease_id: "L-ab12-1".into(),
            host_id: Some("web-1".into()),
            addon_id: "indexer".into(),
            job_type: "reindex \"all\" ✓".into(),
            cost_units: 30,
            priority: Priority::High,
            granted: true,
            issued_at: 1_763_026_000.25,
            ttl_sec: 30.0,
            expected_duration_sec: Some(600.0),
            epoch: None,
        }
    }

    #[test]
    fn round_trip() {
        let t = terms();
        let tok = mint(&t, &key());
        assert!(tok.starts_with("v1."));
        assert_eq!(verify(&tok, &key()).unwrap(), t);
        let ticket = LeaseTerms {
            host_id: None,
            granted: false,
            expected_duration_sec: None,
            priority: Priority::Low,
            ..terms()
        };
        let tok = mint(&ticket, &key());
        assert_eq!(verify(&tok, &key()).unwrap(), ticket);
    }

    #[test]
    fn the_epoch_rides_in_the_token_and_old_tokens_still_verify() {
        let t = LeaseTerms {
            epoch: Some(42),
            ..terms()
        };
        let tok = mint(&t, &key());
        assert_eq!(verify(&tok, &key()).unwrap().epoch, Some(42));
        // A token minted without an epoch (before elections) decodes as None.
        assert_eq!(verify(&mint(&terms(), &key()), &key()).unwrap().epoch, None);
        // The epoch is signed: changing it breaks the token.
        let other = mint(
            &LeaseTerms {
                epoch: Some(43),
                ..t.clone()
            },
            &key(),
        );
        assert_ne!(tok, other);
    }

    #[test]
    fn typical_token_is_short_and_url_safe() {
        let tok = mint(&terms(), &key());
        assert!(tok.len() < 200, "{} bytes", tok.len());
        assert!(tok
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
    }

    #[test]
    fn longest_ids_stay_under_the_wire_limit() {
        let long = "x".repeat(128);
        let t = LeaseTerms {
            lease_id: long.clone(),
            host_id: Some(long.clone()),
            addon_id: long.clone(),
            job_type: "✓".repeat(42), // 126 bytes
            ..terms()
        };
        let tok = mint(&t, &key());
        assert!(tok.len() <= 1024, "{} bytes", tok.len());
        assert_eq!(verify(&tok, &key()).unwrap(), t);
    }

    #[test]
    fn tampering_is_detected() {
        let tok = mint(&terms(), &key());
        let (head, tag) = tok.rsplit_once('.').unwrap();
        let (_, payload) = head.split_once('.').unwrap();
        // Flip each payload character in turn.
        for i in 0..payload.len() {
            let mut p: Vec<u8> = payload.bytes().collect();
            p[i] = if p[i] == b'A' { b'B' } else { b'A' };
            let forged = format!("v1.{}.{tag}", String::from_utf8(p).unwrap());
            let e = verify(&forged, &key()).unwrap_err();
            assert!(
                matches!(e, TokenError::BadSignature | TokenError::Malformed),
                "{i}: {e:?}"
            );
        }
        // A different cost under the old tag.
        let cheaper = LeaseTerms {
            cost_units: 1,
            ..terms()
        };
        let other = mint(&cheaper, &key());
        let (other_head, _) = other.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&format!("{other_head}.{tag}"), &key()),
            Err(TokenError::BadSignature)
        );
        // Truncated tag.
        assert!(verify(&format!("{head}.{}", &tag[..20]), &key()).is_err());
    }

    #[test]
    fn other_key_is_rejected() {
        let tok = mint(&terms(), &key());
        let other = LeaseKey::from_bytes(vec![8u8; 32]).unwrap();
        assert_eq!(verify(&tok, &other), Err(TokenError::BadSignature));
    }

    #[test]
    fn malformed_tokens() {
        let k = key();
        for bad in [
            "",
            "v1",
            "v1.",
            "v1..",
            "v1.abc",
            "v1.a.b.c",
            "v1.!!!!.AAAA",
            "v1.AAAA.AAAA=",
            "x1.AAAA.AAAA",
            "L1",
        ] {
            assert!(verify(bad, &k).is_err(), "{bad:?}");
        }
        assert_eq!(
            verify("v9.AAAA.AAAA", &k),
            Err(TokenError::UnsupportedVersion)
        );
    }

    #[test]
    fn signed_garbage_is_bad_terms() {
        // A correctly signed payload that is not a terms encoding.
        let k = key();
        let payload = vec![1u8, 200, 0];
        let mut mac = k.mac();
        mac.update(DOMAIN);
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        let tok = format!("v1.{}.{}", b64_encode(&payload), b64_encode(&tag));
        assert_eq!(verify(&tok, &k), Err(TokenError::BadTerms));
        // Trailing bytes after valid terms.
        let mut payload = encode_terms(&terms());
        payload.push(0);
        let mut mac = k.mac();
        mac.update(DOMAIN);
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        let tok = format!("v1.{}.{}", b64_encode(&payload), b64_encode(&tag));
        assert_eq!(verify(&tok, &k), Err(TokenError::BadTerms));
    }

    #[test]
    fn keys() {
        assert_eq!(
            LeaseKey::from_bytes(vec![1u8; 16]),
            Err(TokenError::WeakKey { min: 32, got: 16 })
        );
        let k = key();
        assert_eq!(LeaseKey::from_hex(&k.to_hex()).unwrap(), k);
        assert_eq!(LeaseKey::from_hex("zz"), Err(TokenError::BadKeyHex));
        assert_eq!(format!("{k:?}"), "LeaseKey(<redacted>)");
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        let vectors: [(&str, &str); 7] = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in vectors {
            assert_eq!(b64_encode(plain.as_bytes()), enc);
            assert_eq!(b64_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(b64_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        // Non-canonical trailing bits and impossible lengths.
        assert!(b64_decode("Zh").is_none());
        assert!(b64_decode("Z").is_none());
        assert!(b64_decode("Zg==").is_none());
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(b64_decode(&b64_encode(&data)).unwrap(), data);
        }
    }
}
