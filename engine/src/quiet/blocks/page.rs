//! Pages of `hosts.blocks`: the blocks in force (the fleet-wide one first,
//! then hosts by id), then the maintenance windows by id, `limit` items at
//! a time. A host's blocks are never split across pages.

use lull_proto::msg::hosts::{BlockInfo, BlockScope, WindowInfo};

use super::Blocks;

/// Where a page of blocks starts: the opaque `cursor` of `hosts.blocks`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BlockCursor {
    /// The first page.
    #[default]
    Start,
    /// After the blocks of this target (`""`: the fleet-wide one).
    AfterTarget(String),
    /// After the window with this id (every block already listed).
    AfterWindow(i64),
}

/// A `hosts.blocks` cursor that this coordinator did not make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not one this coordinator made (pass next_cursor back unchanged)")]
pub struct BadBlockCursor;

impl BlockCursor {
    /// The wire form: `b:<host>` (`b:` for the fleet) or `w:<id>`.
    pub fn encode(&self) -> Option<String> {
        match self {
            BlockCursor::Start => None,
            BlockCursor::AfterTarget(t) => Some(format!("b:{t}")),
            BlockCursor::AfterWindow(id) => Some(format!("w:{id}")),
        }
    }

    /// Reads a cursor made by [`BlockCursor::encode`].
    pub fn decode(s: &str) -> Result<Self, BadBlockCursor> {
        match s.split_once(':') {
            Some(("b", t)) => Ok(BlockCursor::AfterTarget(t.to_string())),
            Some(("w", id)) => id
                .parse()
                .map(BlockCursor::AfterWindow)
                .map_err(|_| BadBlockCursor),
            _ => Err(BadBlockCursor),
        }
    }
}

/// One page of blocks and windows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlocksPage {
    /// Blocks in force, the fleet-wide one first, then hosts by id.
    pub blocks: Vec<BlockInfo>,
    /// Windows by id, once every block has been listed.
    pub windows: Vec<WindowInfo>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<BlockCursor>,
}

/// One target's blocks or one window: what a page never splits.
enum Group {
    Target(String, Vec<BlockInfo>),
    Window(WindowInfo),
}

impl Blocks {
    /// The page after `cursor` at `now`: groups (a target's blocks, or one
    /// window) are added until the page holds at least `limit` items (at
    /// least one group per page).
    pub fn page(&self, now: f64, cursor: &BlockCursor, limit: usize) -> BlocksPage {
        let limit = limit.max(1);
        let mut page = BlocksPage::default();
        let mut groups = self.groups(now, cursor).peekable();
        let mut last = None;
        for g in groups.by_ref() {
            last = Some(match g {
                Group::Target(t, infos) => {
                    page.blocks.extend(infos);
                    BlockCursor::AfterTarget(t)
                }
                Group::Window(w) => {
                    let id = w.id;
                    page.windows.push(w);
                    BlockCursor::AfterWindow(id)
                }
            });
            if page.blocks.len() + page.windows.len() >= limit {
                break;
            }
        }
        if groups.peek().is_some() {
            page.next = last;
        }
        page
    }

    /// Every non-empty group after `cursor`, in page order.
    fn groups<'a>(&'a self, now: f64, cursor: &BlockCursor) -> impl Iterator<Item = Group> + 'a {
        let (after_target, after_window) = match cursor {
            BlockCursor::Start => (None, None),
            BlockCursor::AfterTarget(t) => (Some(t.clone()), None),
            BlockCursor::AfterWindow(id) => (None, Some(*id)),
        };
        let targets_done = after_window.is_some();
        let hosts = self.blocked_hosts();
        let targets = std::iter::once("")
            .chain(hosts)
            .filter(move |t| !targets_done && after_target.as_deref().is_none_or(|a| *t > a));
        let blocks = targets.filter_map(move |t| {
            let host = (!t.is_empty()).then_some(t);
            let scope = if host.is_some() {
                BlockScope::Host
            } else {
                BlockScope::Fleet
            };
            let infos: Vec<BlockInfo> = self
                .candidates(host)
                .iter()
                .filter(|c| c.scope == scope)
                .filter_map(|c| c.info(host, now))
                .collect();
            (!infos.is_empty()).then(|| Group::Target(t.to_string(), infos))
        });
        let from = after_window.map_or(i64::MIN, |id| id.saturating_add(1));
        let windows = self
            .windows
            .range(from..)
            .map(move |(id, _)| *id)
            .filter(move |id| after_window.is_none_or(|a| *id > a))
            .filter_map(move |id| self.window_info(id, now).map(Group::Window));
        blocks.chain(windows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quiet::blocks::Block;

    fn block(at: f64) -> Block {
        Block {
            reason: Some("r".into()),
            until: None,
            blocked_at: at,
        }
    }

    #[test]
    fn pages_list_every_block_once_in_order() {
        let mut b = Blocks::default();
        b.set(None, block(1.0));
        for h in ["c", "a", "b"] {
            b.set(Some(h.into()), block(2.0));
        }
        let whole = b.list(10.0);
        let mut seen = Vec::new();
        let mut cursor = BlockCursor::Start;
        for _ in 0..10 {
            let p = b.page(10.0, &cursor, 2);
            assert!(p.blocks.len() <= 2);
            seen.extend(p.blocks);
            match p.next {
                Some(c) => {
                    let wire = c.encode().unwrap();
                    cursor = BlockCursor::decode(&wire).unwrap();
                }
                None => break,
            }
        }
        assert_eq!(seen, whole);
        assert_eq!(seen[0].scope, BlockScope::Fleet);
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        for c in [
            BlockCursor::AfterTarget(String::new()),
            BlockCursor::AfterTarget("web:1".into()),
            BlockCursor::AfterWindow(-3),
        ] {
            assert_eq!(BlockCursor::decode(&c.encode().unwrap()), Ok(c));
        }
        for bad in ["", "x", "w:", "w:1.5", "q:web"] {
            assert_eq!(BlockCursor::decode(bad), Err(BadBlockCursor));
        }
        assert_eq!(BlockCursor::Start.encode(), None);
    }

    #[test]
    fn windows_follow_the_blocks_and_a_host_is_never_split() {
        let mut b = Blocks::default();
        b.set(Some("a".into()), block(1.0));
        for id in [7, 3] {
            let w = crate::quiet::maintenance::Window {
                id,
                reason: None,
                from: 5.0,
                until: Some(50.0),
                weekly: None,
                created_at: 0.0,
            };
            b.add_window(Some("a".into()), w);
        }
        // At 10 host a has its block and both windows open: one group of 3.
        let p = b.page(10.0, &BlockCursor::Start, 1);
        assert_eq!(p.blocks.len(), 3);
        assert!(p.windows.is_empty());
        assert_eq!(p.next, Some(BlockCursor::AfterTarget("a".into())));
        let p = b.page(10.0, &p.next.unwrap(), 1);
        assert_eq!(p.windows.iter().map(|w| w.id).collect::<Vec<_>>(), [3]);
        let p = b.page(10.0, &p.next.unwrap(), 1);
        assert_eq!(p.windows.iter().map(|w| w.id).collect::<Vec<_>>(), [7]);
        assert_eq!(p.next, None);
    }

    #[test]
    fn the_window_index_follows_every_change() {
        let w = |id, until| crate::quiet::maintenance::Window {
            id,
            reason: None,
            from: 0.0,
            until: Some(until),
            weekly: None,
            created_at: 0.0,
        };
        let mut b = Blocks::default();
        b.add_window(Some("a".into()), w(1, 100.0));
        b.add_window(Some("a".into()), w(2, 20.0));
        b.add_window(None, w(3, 100.0));
        assert_eq!((b.window_count(false), b.window_count(true)), (2, 1));
        // Window 1 moves to host b: a keeps only window 2.
        assert!(b.add_window(Some("b".into()), w(1, 100.0)));
        assert_eq!(b.of("a", 10.0).unwrap().window_id, Some(2));
        assert_eq!(b.of("b", 10.0).unwrap().window_id, Some(1));
        // Window 2 ends at 20: a is left with the fleet's window 3.
        b.expire(30.0);
        assert_eq!(b.of("a", 30.0).unwrap().window_id, Some(3));
        assert_eq!(b.remove_windows_of(&Some("b".into())), [1]);
        assert!(b.remove_window(3));
        assert_eq!((b.window_count(false), b.window_count(true)), (0, 0));
        assert!(b.of("b", 30.0).is_none());
        assert_eq!(b, Blocks::default(), "nothing left behind in the index");
    }

    #[test]
    fn an_empty_set_is_one_empty_last_page() {
        let p = Blocks::default().page(0.0, &BlockCursor::Start, 5);
        assert_eq!(p, BlocksPage::default());
    }
}
