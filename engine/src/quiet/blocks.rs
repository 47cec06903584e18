//! Operator blocks (pure): a block on one host or on the whole fleet, with
//! an optional reason and an optional end (a maintenance window). The fleet
//! actor keeps one [`Blocks`] and asks it whether a host is blocked; the
//! clock is passed in, nothing here does I/O.

use std::collections::BTreeMap;

use lull_proto::msg::hosts::{BlockInfo, BlockScope};

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

/// Every block in force: at most one fleet-wide block and one per host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blocks {
    fleet: Option<Block>,
    hosts: BTreeMap<String, Block>,
}

impl Blocks {
    /// Blocks loaded from storage; those already over at `now` are skipped.
    pub fn from_rows(rows: impl IntoIterator<Item = (Target, Block)>, now: f64) -> Self {
        let mut b = Blocks::default();
        for (target, block) in rows {
            if block.active(now) {
                b.set(target, block);
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

    /// The block in force on `host` at `now`: its own, else the fleet's.
    pub fn of(&self, host: &str, now: f64) -> Option<(BlockScope, &Block)> {
        if let Some(b) = self.hosts.get(host).filter(|b| b.active(now)) {
            return Some((BlockScope::Host, b));
        }
        self.fleet
            .as_ref()
            .filter(|b| b.active(now))
            .map(|b| (BlockScope::Fleet, b))
    }

    /// The fleet-wide block in force at `now`.
    pub fn fleet(&self, now: f64) -> Option<&Block> {
        self.fleet.as_ref().filter(|b| b.active(now))
    }

    /// Removes the blocks that ended by `now`; returns their targets.
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
        gone
    }

    /// The earliest end of any block, so the caller knows when to expire.
    pub fn next_end(&self) -> Option<f64> {
        self.fleet
            .iter()
            .chain(self.hosts.values())
            .filter_map(|b| b.until)
            .min_by(f64::total_cmp)
    }

    /// Number of host blocks (the fleet block not counted).
    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// Every block in force at `now`, the fleet's first, then hosts by id.
    pub fn list(&self, now: f64) -> Vec<BlockInfo> {
        let fleet = self.fleet(now).map(|b| info(BlockScope::Fleet, None, b));
        fleet
            .into_iter()
            .chain(
                self.hosts
                    .iter()
                    .filter(|(_, b)| b.active(now))
                    .map(|(h, b)| info(BlockScope::Host, Some(h.clone()), b)),
            )
            .collect()
    }

    /// The wire form of the block in force on `host`.
    pub fn info_of(&self, host: &str, now: f64) -> Option<BlockInfo> {
        self.of(host, now).map(|(scope, b)| {
            let id = (scope == BlockScope::Host).then(|| host.to_string());
            info(scope, id, b)
        })
    }
}

fn info(scope: BlockScope, host_id: Option<String>, b: &Block) -> BlockInfo {
    BlockInfo {
        scope,
        host_id,
        reason: b.reason.clone(),
        until: b.until,
        blocked_at: b.blocked_at,
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
        let (scope, blk) = b.of("a", 100.0).unwrap();
        assert_eq!(scope, BlockScope::Host);
        assert_eq!(blk.reason.as_deref(), Some("disk swap"));
        let (scope, _) = b.of("b", 100.0).unwrap();
        assert_eq!(scope, BlockScope::Fleet);
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
        assert_eq!(b.next_end(), Some(150.0));
        assert!(b.of("a", 149.9).is_some());
        // After its end a block no longer applies, even before expire().
        assert_eq!(b.of("a", 150.0).unwrap().0, BlockScope::Fleet);
        assert!(b.of("z", 200.0).is_none());
        assert_eq!(b.list(160.0).len(), 2);
        let gone = b.expire(160.0);
        assert_eq!(gone, vec![Some("a".to_string())]);
        let gone = b.expire(250.0);
        assert_eq!(gone, vec![None]);
        assert_eq!(b.next_end(), None);
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
            100.0,
        );
        let l = b.list(100.0);
        let names: Vec<Option<&str>> = l.iter().map(|i| i.host_id.as_deref()).collect();
        assert_eq!(names, vec![None, Some("a"), Some("b")]);
        assert_eq!(l[0].scope, BlockScope::Fleet);
        let i = b.info_of("zz", 100.0).unwrap();
        assert_eq!((i.scope, i.host_id), (BlockScope::Fleet, None));
        let i = b.info_of("a", 100.0).unwrap();
        assert_eq!(i.host_id.as_deref(), Some("a"));
        assert_eq!(i.until, Some(500.0));
    }
}
