//! Paging of the fleet-wide worker replies (`learning.system`,
//! `data_quality.summary`): the per-worker lists hold the workers of one
//! page, by name after the cursor, while the totals count every worker.

use std::collections::HashSet;

use super::aggregate::WorkerAggregate;

/// Which workers a fleet-wide reply lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerPage<'a> {
    /// The workers named after this one (the previous page's cursor).
    pub after: Option<&'a str>,
    /// At most this many workers.
    pub limit: usize,
}

impl WorkerPage<'_> {
    /// Every worker, on one page.
    pub fn all() -> WorkerPage<'static> {
        WorkerPage {
            after: None,
            limit: usize::MAX,
        }
    }

    /// The names of this page's workers among `aggs`, and the cursor of the
    /// next page when more remain (the page's last name).
    pub fn select<'b>(&self, aggs: &'b [WorkerAggregate]) -> Listed<'b> {
        let names = aggs.iter().map(|a| a.worker_name.as_str());
        let page = crate::page::after(names, |n| *n, self.after.as_ref(), self.limit);
        let next_cursor = page
            .more
            .then(|| page.items.last().map(|n| n.to_string()))
            .flatten();
        Listed {
            names: page.items.into_iter().collect(),
            next_cursor,
        }
    }
}

/// The workers of one page.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<'a> {
    names: HashSet<&'a str>,
    /// The cursor of the next page, when more workers remain.
    pub next_cursor: Option<String>,
}

impl Listed<'_> {
    /// Whether the worker is on this page.
    pub fn has(&self, worker_name: &str) -> bool {
        self.names.contains(worker_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_name() {
        let aggs: Vec<WorkerAggregate> = ["c", "a", "b"]
            .iter()
            .map(|n| WorkerAggregate::new(n))
            .collect();
        let p = WorkerPage {
            after: None,
            limit: 2,
        }
        .select(&aggs);
        assert!(p.has("a") && p.has("b") && !p.has("c"));
        assert_eq!(p.next_cursor.as_deref(), Some("b"));
        let p = WorkerPage {
            after: Some("b"),
            limit: 2,
        }
        .select(&aggs);
        assert!(p.has("c") && !p.has("a"));
        assert_eq!(p.next_cursor, None);
        let all = WorkerPage::all().select(&aggs);
        assert!(all.has("a") && all.has("c") && all.next_cursor.is_none());
    }
}
