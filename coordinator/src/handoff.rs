//! Hand-offs between owners: a batch of decoded reports that the owning
//! actor answers once it has committed them (or failed to), so that the
//! JetStream consumer acks only what is stored; and host views from the
//! fleet to the lease book, answered once the book has them, so that an
//! operator's block is in force before its reply (and an operator's
//! forget, answered once the book has let the host go).

use lull_engine::lease::HostView;
use tokio::sync::oneshot;

/// Host views from the fleet to the scheduler.
#[derive(Debug)]
pub struct Views {
    /// The views of the hosts that changed.
    pub views: Vec<HostView>,
    /// Hosts the fleet forgot (evicted after being stale too long): their
    /// views go (active leases stay until they end).
    pub removed: Vec<String>,
    /// Answered once the lease book (or a standby's view store) has them,
    /// and every update sent before them.
    pub applied: Option<oneshot::Sender<()>>,
    /// An operator's `hosts.forget`: the book lets the host go unless it
    /// holds active leases, and answers why not.
    pub forget: Option<Forget>,
}

/// Asks the lease book to let a host go (it refuses while the host holds
/// active leases).
#[derive(Debug)]
pub struct Forget {
    /// The host.
    pub host_id: String,
    /// `Ok` once the book (and the standby view store) dropped the host,
    /// `Err` with the reason otherwise.
    pub reply: oneshot::Sender<Result<(), String>>,
}

impl Views {
    /// Brings a map of every host's latest view up to date: the views
    /// replace, the removed hosts go.
    pub fn keep_latest(&self, latest: &mut std::collections::HashMap<String, HostView>) {
        for view in &self.views {
            latest.insert(view.host_id.clone(), view.clone());
        }
        for id in &self.removed {
            latest.remove(id);
        }
    }
}

/// A batch handed to an owning actor; it answers on `done` after its commit.
#[derive(Debug)]
pub struct Batch<T> {
    /// The records, in stream order.
    pub items: Vec<T>,
    /// `Ok` once committed, `Err` with the reason otherwise.
    pub done: oneshot::Sender<Result<Committed, String>>,
}

/// What the owner did with a committed batch, beyond storing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// Positions in `items` of conflicting duplicates: records whose id was
    /// already stored, or came earlier in the batch, with other content.
    /// They were dropped; the first record of the id stays.
    pub conflicts: Vec<usize>,
    /// Positions in `items` of records refused because they would add a
    /// region or worker past its cap (`max_regions`, `max_workers`): not
    /// stored, to be terminated and counted.
    pub over_limit: Vec<usize>,
}

/// The records of a batch with one id each: the position of the first
/// record of every id (in order), and the positions of later records of an
/// id whose content differs from that first one (conflicts). Later
/// identical records are plain duplicates and in neither list.
pub fn first_of_each<T: PartialEq>(
    items: &[T],
    id: impl Fn(&T) -> &str,
) -> (Vec<usize>, Vec<usize>) {
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let (mut kept, mut conflicts) = (Vec::new(), Vec::new());
    for (i, item) in items.iter().enumerate() {
        match first.entry(id(item)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(i);
                kept.push(i);
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                if items[*o.get()] != *item {
                    conflicts.push(i);
                }
            }
        }
    }
    (kept, conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_of_each_tells_duplicates_from_conflicts() {
        let items = [("a", 1), ("b", 1), ("a", 1), ("a", 2), ("b", 3), ("c", 1)];
        let (kept, conflicts) = first_of_each(&items, |x| x.0);
        assert_eq!(kept, vec![0, 1, 5]);
        assert_eq!(conflicts, vec![3, 4]);
    }
}
