//! Paging of list endpoints: the `limit` and `cursor` a request may carry,
//! and the `next_cursor` a reply carries when there is more. A cursor is
//! opaque to clients: they pass back the `next_cursor` of the previous
//! page, unchanged, until it is absent.

use serde::{Deserialize, Serialize};

use super::hosts::HostSummary;
use crate::validate::{self as v, Validate};
use crate::ValidationError;

/// Largest `limit` a request may ask for (a coordinator may lower it).
pub const MAX_LIMIT: u32 = 100_000;

/// Longest cursor accepted, bytes.
pub const MAX_CURSOR_LEN: usize = 512;

/// The paging fields of a list request (`{}` asks for the first page of
/// the default size).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Most items in the reply (1..=100000); absent: the coordinator's
    /// default page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; absent: the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl PageRequest {
    /// Whether the request names `limit` or `cursor` (a paging client).
    pub fn is_paged(&self) -> bool {
        self.limit.is_some() || self.cursor.is_some()
    }

    /// The page size: `limit` within `1..=max`, else `default`.
    pub fn size(&self, default: usize, max: usize) -> usize {
        self.limit
            .map_or(default, |l| l as usize)
            .clamp(1, max.max(1))
    }
}

impl Validate for PageRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        if let Some(l) = self.limit {
            v::int_range("limit", i64::from(l), 1, i64::from(MAX_LIMIT))?;
        }
        v::text_opt("cursor", self.cursor.as_deref(), MAX_CURSOR_LEN)
    }
}

/// A page of `lull.v1.hosts.list`, the answer to a request that names
/// `limit` or `cursor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostPage {
    /// Hosts, sorted by id.
    pub hosts: Vec<HostSummary>,
    /// Pass it as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The reply of `lull.v1.hosts.list`: a bare array to a request without
/// `limit` and `cursor` (the original shape; at most the default page), a
/// [`HostPage`] otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HostListReply {
    /// `[HostSummary…]`.
    Plain(Vec<HostSummary>),
    /// `{hosts, next_cursor}`.
    Page(HostPage),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::decode;

    #[test]
    fn limits_and_cursors_are_checked() {
        let r: PageRequest = decode(b"{}", 4096).unwrap();
        assert!(!r.is_paged());
        assert_eq!(r.size(1000, 5000), 1000);
        let r: PageRequest = decode(br#"{"limit":20000,"cursor":"h1"}"#, 4096).unwrap();
        assert!(r.is_paged());
        assert_eq!(r.size(1000, 5000), 5000);
        assert!(decode::<PageRequest>(br#"{"limit":0}"#, 4096).is_err());
        assert!(decode::<PageRequest>(br#"{"limit":-1}"#, 4096).is_err());
        let long = format!(r#"{{"cursor":"{}"}}"#, "x".repeat(MAX_CURSOR_LEN + 1));
        assert!(decode::<PageRequest>(long.as_bytes(), 4096).is_err());
    }

    #[test]
    fn both_reply_shapes_read_back() {
        let plain: HostListReply = serde_json::from_str("[]").unwrap();
        assert_eq!(plain, HostListReply::Plain(vec![]));
        let page: HostListReply =
            serde_json::from_str(r#"{"hosts":[],"next_cursor":"b"}"#).unwrap();
        assert_eq!(
            page,
            HostListReply::Page(HostPage {
                hosts: vec![],
                next_cursor: Some("b".into())
            })
        );
    }
}
