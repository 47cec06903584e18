//! `lull.v1.lease.decisions`: recent lease decisions (grants, denials,
//! queued requests) read back from the lease audit trail, so an operator
//! can see why an addon was denied, with the reason code and the numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::msg::lease::{DenyReason, Priority};
use crate::validate::{self as v, Validate};

/// Rows a reply holds when the request names no limit.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most rows a reply may hold.
pub const MAX_LIMIT: u32 = 1000;
/// How far back a request looks when it names no `since`, seconds.
pub const DEFAULT_LOOKBACK_SEC: f64 = 3600.0;

/// What a decision was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// A lease was granted.
    Granted,
    /// A request was denied (or gave up waiting in the queue).
    Denied,
    /// A request was parked in the queue.
    Queued,
}

impl DecisionKind {
    /// The stored name (the audit trail's `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Granted => "granted",
            DecisionKind::Denied => "denied",
            DecisionKind::Queued => "queued",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<DecisionKind> {
        match s {
            "granted" => Some(DecisionKind::Granted),
            "denied" => Some(DecisionKind::Denied),
            "queued" => Some(DecisionKind::Queued),
            _ => None,
        }
    }
}

/// Request of `lull.v1.lease.decisions`. Every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionsRequest {
    /// Only decisions of this kind; all three when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DecisionKind>,
    /// Only this addon's requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon_id: Option<String>,
    /// Only requests for this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// Unix seconds: decisions at or after this time; an hour ago when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<f64>,
    /// Most rows, newest first (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page: the rows older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Where a page of decisions continues (newest first): the rows at or
/// before `at`, less the first `skip` of those exactly at `at` (already
/// listed; rows at one time are listed in a fixed order of their fields).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionCursor {
    /// Unix seconds of the last row of the previous page.
    pub at: f64,
    /// Rows at exactly `at` already listed.
    pub skip: u32,
}

impl DecisionCursor {
    /// The cursor after a page whose rows have times `at` (newest first),
    /// read from `prev`; `None` for an empty page.
    pub fn after(prev: Option<DecisionCursor>, at: &[f64]) -> Option<DecisionCursor> {
        let last = *at.last()?;
        let tied = at.iter().filter(|t| **t == last).count();
        let carried = prev.filter(|p| p.at == last).map_or(0, |p| p.skip as usize);
        let skip = u32::try_from(tied + carried).unwrap_or(u32::MAX);
        Some(DecisionCursor { at: last, skip })
    }

    /// The wire form, `<at>|<skip>`.
    pub fn encode(&self) -> String {
        format!("{}|{}", self.at, self.skip)
    }

    /// Reads a cursor made by [`DecisionCursor::encode`].
    pub fn decode(s: &str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::Invalid {
            field: "cursor".into(),
            reason: "is not one this coordinator made (pass next_cursor back unchanged)".into(),
        };
        let (at, skip) = s.split_once('|').ok_or_else(bad)?;
        let at: f64 = at.parse().map_err(|_| bad())?;
        let skip: u32 = skip.parse().map_err(|_| bad())?;
        if !at.is_finite() {
            return Err(bad());
        }
        Ok(DecisionCursor { at, skip })
    }
}

impl Validate for DecisionsRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        if let Some(a) = &self.addon_id {
            v::id("addon_id", a)?;
        }
        if let Some(h) = &self.host_id {
            v::subject_token("host_id", h)?;
        }
        if let Some(s) = self.since {
            v::non_negative("since", s)?;
        }
        if let Some(l) = self.limit {
            v::int_range("limit", i64::from(l), 1, i64::from(MAX_LIMIT))?;
        }
        if let Some(c) = &self.cursor {
            v::text("cursor", c, super::page::MAX_CURSOR_LEN)?;
            DecisionCursor::decode(c)?;
        }
        Ok(())
    }
}

/// One decision of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Unix seconds of the decision.
    pub at: f64,
    /// Granted, denied or queued.
    pub kind: DecisionKind,
    /// The addon that asked.
    pub addon_id: String,
    /// Its job type.
    pub job_type: String,
    /// The host asked for, when named.
    #[serde(default)]
    pub host_id: Option<String>,
    /// Units asked for.
    pub cost_units: u32,
    /// Priority.
    pub priority: Priority,
    /// The lease, for a grant.
    #[serde(default)]
    pub lease_id: Option<String>,
    /// Denial code (denials and queued requests).
    #[serde(default)]
    pub reason_code: Option<DenyReason>,
    /// The reason with its numbers (`quiet_score=42.0 < 60.0`, ...).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Reply of `lull.v1.lease.decisions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionsReply {
    /// Unix seconds the listing starts at.
    pub since: f64,
    /// Matching decisions, newest first, at most `limit`.
    pub decisions: Vec<Decision>,
    /// More decisions matched than were returned (older ones: see
    /// `next_cursor`).
    pub truncated: bool,
    /// Matching decisions per reason code (`none` for grants), over the
    /// whole range, not only the rows returned.
    pub counts: BTreeMap<String, u64>,
    /// Pass it as `cursor` (with the same filters) for the next, older
    /// page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::decode;

    #[test]
    fn ties_at_the_last_time_are_counted_across_pages() {
        assert_eq!(DecisionCursor::after(None, &[]), None);
        let c = DecisionCursor::after(None, &[9.0, 8.0, 8.0]).unwrap();
        assert_eq!(c, DecisionCursor { at: 8.0, skip: 2 });
        // The next page is all at 8.0 too: those skipped stay skipped.
        let c2 = DecisionCursor::after(Some(c), &[8.0]).unwrap();
        assert_eq!(c2, DecisionCursor { at: 8.0, skip: 3 });
        let c3 = DecisionCursor::after(Some(c2), &[8.0, 7.0]).unwrap();
        assert_eq!(c3, DecisionCursor { at: 7.0, skip: 1 });
    }

    #[test]
    fn cursors_read_back_and_foreign_ones_are_refused() {
        let c = DecisionCursor {
            at: 1_796_312_000.25,
            skip: 42,
        };
        assert_eq!(DecisionCursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "42", "x|1", "1|x", "inf|1", "1|2|3", "1|-1"] {
            let body = format!(r#"{{"cursor":"{bad}"}}"#);
            let e = decode::<DecisionsRequest>(body.as_bytes(), 1 << 12).unwrap_err();
            assert!(e.to_string().contains("cursor"), "{bad}: {e}");
        }
    }

    #[test]
    fn requests_are_optional_and_validated() {
        let r: DecisionsRequest = decode(b"{}", 1 << 12).unwrap();
        assert_eq!(r, DecisionsRequest::default());
        let r: DecisionsRequest = decode(
            br#"{"kind":"denied","addon_id":"indexer","since":1.0,"limit":5}"#,
            1 << 12,
        )
        .unwrap();
        assert_eq!(r.kind, Some(DecisionKind::Denied));
        for bad in [
            r#"{"kind":"maybe"}"#,
            r#"{"limit":0}"#,
            r#"{"limit":5000}"#,
            r#"{"since":-1}"#,
            r#"{"host_id":"a.b"}"#,
        ] {
            assert!(
                decode::<DecisionsRequest>(bad.as_bytes(), 1 << 12).is_err(),
                "{bad}"
            );
        }
        assert_eq!(DecisionKind::parse("queued"), Some(DecisionKind::Queued));
        assert_eq!(DecisionKind::parse("released"), None);
    }
}
