//! Operator blocks (pure): a block on one host or on the whole fleet, with
//! an optional reason and an optional end, in force from the moment it is
//! set; and maintenance windows ([`Window`]), scheduled ahead, once or
//! recurring, on a host or the fleet. The fleet actor keeps one [`Blocks`]
//! and asks it whether a host is blocked, until when, and when the answer
//! next changes; the clock is passed in, nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

use lull_proto::msg::hosts::{BlockInfo, BlockScope, WindowInfo};

use super::maintenance::{merge, Span, Window, LOOKAHEAD_SEC};

mod page;
pub use page::{BadBlockCursor, BlockCursor, BlocksPage};

/// One block.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Why, when the operator said.
    pub reason: Option<String>,
    /// Unix seconds when it lifts by itself.
    pub until: Option<f64>,
    /// Unix seconds when it was set.
    pub blocked_at: f64,
}

impl Block {
    /// Whether the block is still in force at `now`.
    pub fn active(&self, now: f64) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// What a block applies to: one host, or the fleet (`None`).
pub type Target = Option<String>;

/// Every block in force: at most one fleet-wide block and one per host,
/// and any number of maintenance windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blocks {
    fleet: Option<Block>,
    hosts: BTreeMap<String, Block>,
    windows: BTreeMap<i64, (Target, Window)>,
    /// The ids in `windows` by target (`None`: the fleet's), so that a
    /// host's question never scans every window.
    by_target: BTreeMap<Target, BTreeSet<i64>>,
}

impl Blocks {
    /// Blocks and windows loaded from storage; those already over at `now`
    /// are skipped.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (Target, Block)>,
        windows: impl IntoIterator<Item = (Target, Window)>,
        now: f64,
    ) -> Self {
        let mut b = Blocks::default();
        for (target, block) in rows {
            if block.active(now) {
                b.set(target, block);
            }
        }
        for (target, w) in windows {
            if !w.over(now) {
                b.add_window(target, w);
            }
        }
        b
    }

    /// Sets (or replaces) the block of `target`. Returns whether anything
    /// changed.
    pub fn set(&mut self, target: Target, block: Block) -> bool {
        let slot = match target {
            None => &mut self.fleet,
            Some(h) => {
                let old = self.hosts.insert(h, block.clone());
                return old.as_ref() != Some(&block);
            }
        };
        let changed = slot.as_ref() != Some(&block);
        *slot = Some(block);
        changed
    }

    /// Lifts the block of `target`; returns whether there was one.
    pub fn clear(&mut self, target: &Target) -> bool {
        match target {
            None => self.fleet.take().is_some(),
            Some(h) => self.hosts.remove(h).is_some(),
        }
    }

    /// Adds (or replaces, by id) a maintenance window on `target`.
    /// Returns whether anything changed.
    pub fn add_window(&mut self, target: Target, w: Window) -> bool {
        let id = w.id;
        let entry = (target, w);
        let old = self.windows.insert(id, entry.clone());
        if let Some((t, _)) = &old {
            self.unindex(t, id);
        }
        self.by_target.entry(entry.0).or_default().insert(id);
        old.as_ref() != Some(&self.windows[&id])
    }

    /// Removes the window `id`; returns whether there was one.
    pub fn remove_window(&mut self, id: i64) -> bool {
        match self.windows.remove(&id) {
            Some((t, _)) => {
                self.unindex(&t, id);
                true
            }
            None => false,
        }
    }

    fn unindex(&mut self, target: &Target, id: i64) {
        if let Some(ids) = self.by_target.get_mut(target) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_target.remove(target);
            }
        }
    }

    /// Removes every window of `target`; returns their ids.
    pub fn remove_windows_of(&mut self, target: &Target) -> Vec<i64> {
        let ids: Vec<i64> = self
            .by_target
            .remove(target)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        for id in &ids {
            self.windows.remove(id);
        }
        ids
    }

    /// The windows of `target`, by id.
    fn windows_of<'a>(&'a self, target: &Target) -> impl Iterator<Item = &'a Window> + 'a {
        self.by_target
            .get(target)
            .into_iter()
            .flatten()
            .filter_map(|id| self.windows.get(id).map(|(_, w)| w))
    }

    /// The hosts that have a block or a window, sorted.
    fn blocked_hosts(&self) -> Vec<&str> {
        let mut hosts: Vec<&str> = self.hosts.keys().map(String::as_str).collect();
        hosts.extend(self.by_target.keys().filter_map(|t| t.as_deref()));
        hosts.sort_unstable();
        hosts.dedup();
        hosts
    }

    /// The target of the window `id`, if there is such a window.
    pub fn window_target(&self, id: i64) -> Option<&Target> {
        self.windows.get(&id).map(|(t, _)| t)
    }

    /// Everything that may block `host` (`None`: only the fleet's), most
    /// specific first: its own block, its windows, the fleet's block, the
    /// fleet's windows; in force at `now` or not.
    fn candidates(&self, host: Option<&str>) -> Vec<Candidate<'_>> {
        let mut out = Vec::new();
        let mut push = |scope, target: Option<&str>| {
            let block = match target {
                Some(h) => self.hosts.get(h),
                None => self.fleet.as_ref(),
            };
            out.extend(block.map(|b| Candidate {
                scope,
                source: Source::Block(b),
            }));
            if !self.by_target.is_empty() {
                let key: Target = target.map(str::to_string);
                out.extend(self.windows_of(&key).map(|w| Candidate {
                    scope,
                    source: Source::Window(w),
                }));
            }
        };
        if let Some(h) = host {
            push(BlockScope::Host, Some(h));
        }
        push(BlockScope::Fleet, None);
        out
    }

    /// The block in force on `host` at `now`: its own (or one of its
    /// windows), else the fleet's.
    pub fn of(&self, host: &str, now: f64) -> Option<BlockInfo> {
        self.candidates(Some(host))
            .iter()
            .find_map(|c| c.info(Some(host), now))
    }

    /// Whether `host` is blocked at `now`.
    pub fn is_blocked(&self, host: &str, now: f64) -> bool {
        self.of(host, now).is_some()
    }

    /// The fleet-wide block in force at `now` (the block or a window).
    pub fn fleet(&self, now: f64) -> Option<BlockInfo> {
        self.candidates(None).iter().find_map(|c| c.info(None, now))
    }

    /// The spans within `[from, to]` during which `host` is blocked,
    /// merged and in order (an open-ended block ends at infinity).
    pub fn spans_of(&self, host: &str, from: f64, to: f64) -> Vec<Span> {
        merge(
            self.candidates(Some(host))
                .iter()
                .flat_map(|c| c.spans(from, to))
                .collect(),
        )
    }

    /// When `host`, blocked at `now`, is free of every block again (looking
    /// a week ahead; chained blocks and windows count as one). `None`: not
    /// until an operator lifts a block.
    pub fn free_at(&self, host: &str, now: f64) -> Option<f64> {
        let spans = self.spans_of(host, now, now + LOOKAHEAD_SEC);
        match spans.first() {
            Some(&(s, e)) if s <= now => e.is_finite().then_some(e),
            _ => Some(now),
        }
    }

    /// Removes the blocks that ended by `now` and the windows with nothing
    /// left; returns the targets of the blocks removed.
    pub fn expire(&mut self, now: f64) -> Vec<Target> {
        let mut gone = Vec::new();
        if self.fleet.as_ref().is_some_and(|b| !b.active(now)) {
            self.fleet = None;
            gone.push(None);
        }
        let ended: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, b)| !b.active(now))
            .map(|(h, _)| h.clone())
            .collect();
        for h in ended {
            self.hosts.remove(&h);
            gone.push(Some(h));
        }
        let over: Vec<i64> = self
            .windows
            .iter()
            .filter(|(_, (_, w))| w.over(now))
            .map(|(id, _)| *id)
            .collect();
        for id in over {
            self.remove_window(id);
        }
        gone
    }

    /// The next time after `now` at which any block lifts or any window
    /// opens or closes, so the caller knows when to look again.
    pub fn next_change(&self, now: f64) -> Option<f64> {
        let ends = self
            .fleet
            .iter()
            .chain(self.hosts.values())
            .filter_map(|b| b.until)
            .filter(|u| *u > now);
        let windows = self
            .windows
            .values()
            .filter_map(|(_, w)| w.next_change(now));
        ends.chain(windows).min_by(f64::total_cmp)
    }

    /// Number of host blocks (the fleet block not counted).
    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// Number of maintenance windows of the fleet (`None`) or of hosts.
    pub fn window_count(&self, fleet: bool) -> usize {
        self.by_target
            .iter()
            .filter(|(t, _)| t.is_none() == fleet)
            .map(|(_, ids)| ids.len())
            .sum()
    }

    /// Every block in force at `now`, the fleet's first, then hosts by id;
    /// windows open now are listed as blocks with their `window_id`.
    pub fn list(&self, now: f64) -> Vec<BlockInfo> {
        let hosts = self.blocked_hosts();
        let mut out: Vec<BlockInfo> = self
            .candidates(None)
            .iter()
            .filter_map(|c| c.info(None, now))
            .collect();
        for h in hosts {
            out.extend(
                self.candidates(Some(h))
                    .iter()
                    .filter(|c| c.scope == BlockScope::Host)
                    .filter_map(|c| c.info(Some(h), now)),
            );
        }
        out
    }

    /// Every maintenance window, by id, as seen at `now`.
    pub fn windows(&self, now: f64) -> Vec<WindowInfo> {
        self.windows
            .keys()
            .filter_map(|id| self.window_info(*id, now))
            .collect()
    }

    /// The window `id` as seen at `now`, if there is one.
    fn window_info(&self, id: i64, now: f64) -> Option<WindowInfo> {
        let (t, w) = self.windows.get(&id)?;
        let next = w.current_or_next(now);
        Some(WindowInfo {
            id: w.id,
            scope: if t.is_some() {
                BlockScope::Host
            } else {
                BlockScope::Fleet
            },
            host_id: t.clone(),
            reason: w.reason.clone(),
            from: w.from,
            until: w.until,
            recurrence: w.weekly.as_ref().map(|r| r.recurrence()),
            created_at: w.created_at,
            open: next.is_some_and(|(s, _)| s <= now),
            next_start: next.map(|(s, _)| s),
            next_end: next.map(|(_, e)| e).filter(|e| e.is_finite()),
        })
    }
}

/// A block or a window that may apply to a host.
#[derive(Clone, Copy)]
enum Source<'a> {
    Block(&'a Block),
    Window(&'a Window),
}

/// A [`Source`] with the scope it comes from.
#[derive(Clone, Copy)]
struct Candidate<'a> {
    scope: BlockScope,
    source: Source<'a>,
}

impl Candidate<'_> {
    /// The wire form of this block when it is in force at `now`.
    fn info(&self, host: Option<&str>, now: f64) -> Option<BlockInfo> {
        let host_id = (self.scope == BlockScope::Host)
            .then(|| host.map(str::to_string))
            .flatten();
        match self.source {
            Source::Block(b) => b.active(now).then(|| BlockInfo {
                scope: self.scope,
                host_id,
                reason: b.reason.clone(),
                until: b.until,
                blocked_at: b.blocked_at,
                window_id: None,
            }),
            Source::Window(w) => w.at(now).map(|(s, e)| BlockInfo {
                scope: self.scope,
                host_id,
                reason: w.reason.clone(),
                until: e.is_finite().then_some(e),
                blocked_at: s,
                window_id: Some(w.id),
            }),
        }
    }

    /// The spans it covers within `[from, to]`.
    fn spans(&self, from: f64, to: f64) -> Vec<Span> {
        match self.source {
            Source::Block(b) => match b.until {
                Some(u) if u <= from => Vec::new(),
                u => vec![(f64::NEG_INFINITY, u.unwrap_or(f64::INFINITY))],
            },
            Source::Window(w) => w.spans(from, to),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(reason: &str, until: Option<f64>) -> Block {
        Block {
            reason: Some(reason.into()),
            until,
            blocked_at: 100.0,
        }
    }

    #[test]
    fn host_block_wins_over_fleet_block_and_both_can_lift() {
        let mut b = Blocks::default();
        assert!(b.of("a", 100.0).is_none());
        assert!(b.set(None, block("fleet maintenance", None)));
        assert!(b.set(Some("a".into()), block("disk swap", None)));
        let blk = b.of("a", 100.0).unwrap();
        assert_eq!(blk.scope, BlockScope::Host);
        assert_eq!(blk.reason.as_deref(), Some("disk swap"));
        assert_eq!(b.of("b", 100.0).unwrap().scope, BlockScope::Fleet);
        assert!(b.clear(&None));
        assert!(!b.clear(&None), "second clear changes nothing");
        assert!(b.of("b", 100.0).is_none());
        assert!(b.of("a", 100.0).is_some());
        assert!(b.clear(&Some("a".into())));
        assert!(b.of("a", 100.0).is_none());
    }

    #[test]
    fn setting_the_same_block_again_is_no_change() {
        let mut b = Blocks::default();
        assert!(b.set(Some("a".into()), block("x", None)));
        assert!(!b.set(Some("a".into()), block("x", None)));
        assert!(b.set(Some("a".into()), block("y", None)));
        assert!(b.set(None, block("x", Some(5.0))));
        assert!(!b.set(None, block("x", Some(5.0))));
    }

    #[test]
    fn maintenance_windows_end_by_themselves() {
        let mut b = Blocks::default();
        b.set(None, block("window", Some(200.0)));
        b.set(Some("a".into()), block("short", Some(150.0)));
        b.set(Some("c".into()), block("forever", None));
        assert_eq!(b.next_change(100.0), Some(150.0));
        assert!(b.of("a", 149.9).is_some());
        // After its end a block no longer applies, even before expire().
        assert_eq!(b.of("a", 150.0).unwrap().scope, BlockScope::Fleet);
        assert!(b.of("z", 200.0).is_none());
        assert_eq!(b.list(160.0).len(), 2);
        let gone = b.expire(160.0);
        assert_eq!(gone, vec![Some("a".to_string())]);
        let gone = b.expire(250.0);
        assert_eq!(gone, vec![None]);
        assert_eq!(b.next_change(250.0), None);
        assert_eq!(b.host_count(), 1);
    }

    #[test]
    fn loading_skips_ended_blocks_and_lists_fleet_first() {
        let b = Blocks::from_rows(
            [
                (Some("b".to_string()), block("x", None)),
                (Some("old".to_string()), block("over", Some(50.0))),
                (None, block("all", None)),
                (Some("a".to_string()), block("y", Some(500.0))),
            ],
            [],
            100.0,
        );
        let l = b.list(100.0);
        let names: Vec<Option<&str>> = l.iter().map(|i| i.host_id.as_deref()).collect();
        assert_eq!(names, vec![None, Some("a"), Some("b")]);
        assert_eq!(l[0].scope, BlockScope::Fleet);
        let i = b.of("zz", 100.0).unwrap();
        assert_eq!((i.scope, i.host_id), (BlockScope::Fleet, None));
        let i = b.of("a", 100.0).unwrap();
        assert_eq!(i.host_id.as_deref(), Some("a"));
        assert_eq!(i.until, Some(500.0));
    }

    fn window(id: i64, from: f64, until: Option<f64>) -> Window {
        Window {
            id,
            reason: Some(format!("window {id}")),
            from,
            until,
            weekly: None,
            created_at: 0.0,
        }
    }

    #[test]
    fn windows_block_in_their_spans_and_chain_with_blocks() {
        let mut b = Blocks::default();
        assert!(b.add_window(Some("a".into()), window(1, 200.0, Some(300.0))));
        assert!(!b.add_window(Some("a".into()), window(1, 200.0, Some(300.0))));
        b.add_window(None, window(2, 280.0, Some(400.0)));
        // Before the windows: free; a's next change is its window's start.
        assert!(!b.is_blocked("a", 150.0));
        assert_eq!(b.free_at("a", 150.0), Some(150.0));
        assert_eq!(b.next_change(150.0), Some(200.0));
        // Inside a's window: blocked by it, free once the fleet's window
        // that overlaps it ends too.
        let i = b.of("a", 250.0).unwrap();
        assert_eq!(
            (i.scope, i.window_id, i.until),
            (BlockScope::Host, Some(1), Some(300.0))
        );
        assert_eq!(i.blocked_at, 200.0);
        assert_eq!(b.free_at("a", 250.0), Some(400.0));
        assert_eq!(b.free_at("b", 250.0), Some(250.0));
        assert_eq!(b.of("b", 290.0).unwrap().scope, BlockScope::Fleet);
        assert_eq!(b.spans_of("a", 0.0, 1000.0), vec![(200.0, 400.0)]);
        assert_eq!(b.spans_of("b", 0.0, 1000.0), vec![(280.0, 400.0)]);
        // An open-ended block in force: no end in sight.
        b.set(Some("b".into()), block("forever", None));
        assert_eq!(b.free_at("b", 290.0), None);
        assert_eq!(
            b.spans_of("b", 0.0, 10.0),
            vec![(f64::NEG_INFINITY, f64::INFINITY)]
        );
        // Lists: the fleet's window first, then the hosts' blocks and windows.
        let l = b.list(290.0);
        let ids: Vec<(Option<&str>, Option<i64>)> = l
            .iter()
            .map(|i| (i.host_id.as_deref(), i.window_id))
            .collect();
        assert_eq!(
            ids,
            vec![(None, Some(2)), (Some("a"), Some(1)), (Some("b"), None)]
        );
        let w = b.windows(250.0);
        assert_eq!(w.len(), 2);
        assert!(w[0].open && !w[1].open);
        assert_eq!((w[1].next_start, w[1].next_end), (Some(280.0), Some(400.0)));
        assert_eq!(w[0].host_id.as_deref(), Some("a"));
        assert_eq!((b.window_count(true), b.window_count(false)), (1, 1));
        // Windows over are dropped by expire and by loading.
        b.expire(350.0);
        assert_eq!(b.window_target(1), None);
        assert_eq!(b.window_target(2), Some(&None));
        assert_eq!(b.remove_windows_of(&None), vec![2]);
        assert!(!b.remove_window(2));
        let loaded = Blocks::from_rows([], [(None, window(3, 0.0, Some(10.0)))], 20.0);
        assert_eq!(loaded, Blocks::default());
    }
}
