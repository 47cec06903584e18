//! The `addon_dirs` collector: each addon's runtime-dir size from a walk
//! with a time and entry budget that stays on one file system; a walk
//! that runs out keeps the previous size. Its output is merged into the
//! snapshot by the `addons` part.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lull_proto::msg::stats::SystemStatsSnapshot;

use super::config::{AddonConfig, AddonSettings};
use crate::collect::{
    blocking, same_part, CollectError, CollectFuture, Collected, Collector, Fresh, Output, Part,
};

/// The `addon_dirs` collector's output: runtime-dir bytes by addon id
/// (merged by [`FactsPart`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DirsPart(pub BTreeMap<String, u64>);

impl Part for DirsPart {
    fn fill(&self, _: &mut SystemStatsSnapshot, _: &Fresh<'_>) {}

    fn same(&self, other: &dyn Part) -> bool {
        same_part(self, other)
    }
}

/// Result of a bounded directory walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Walked everything: disk usage in bytes.
    Done(u64),
    /// Ran out of time or entries after counting this many bytes.
    OutOfBudget(u64),
}

/// Disk usage of `root` (allocated blocks, like `du -sx`), staying on its
/// file system and not following symlinks, within `budget` and
/// `max_entries`. Unreadable entries are skipped.
pub fn walk(root: &Path, budget: Duration, max_entries: u64) -> std::io::Result<Walk> {
    let started = Instant::now();
    let meta = std::fs::symlink_metadata(root)?;
    let dev = meta.dev();
    let mut total = meta.blocks().saturating_mul(512);
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut seen: u64 = 0;
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            seen += 1;
            if seen >= max_entries || (seen.is_multiple_of(256) && started.elapsed() >= budget) {
                return Ok(Walk::OutOfBudget(total));
            }
            let Ok(m) = entry.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            total = total.saturating_add(m.blocks().saturating_mul(512));
            if m.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    if started.elapsed() >= budget {
        return Ok(Walk::OutOfBudget(total));
    }
    Ok(Walk::Done(total))
}

struct DirsState {
    dirs: Vec<(String, PathBuf)>,
    budget: Duration,
    max_entries: u64,
    sizes: BTreeMap<String, u64>,
}

impl DirsState {
    fn run(&mut self) -> Result<Collected, CollectError> {
        let mut warnings = Vec::new();
        for (id, dir) in &self.dirs {
            match walk(dir, self.budget, self.max_entries) {
                Ok(Walk::Done(n)) => {
                    self.sizes.insert(id.clone(), n);
                }
                Ok(Walk::OutOfBudget(n)) => warnings.push(format!(
                    "addon {id}: walk of {} ran out of budget after {n} bytes; keeping the previous size",
                    dir.display()
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.sizes.remove(id);
                }
                Err(e) => warnings.push(format!("addon {id}: {}: {e}", dir.display())),
            }
        }
        Ok(Collected {
            output: Output::new(DirsPart(self.sizes.clone())),
            warnings,
        })
    }
}

/// The `addon_dirs` collector.
pub struct AddonDirsCollector {
    state: Arc<Mutex<DirsState>>,
}

impl AddonDirsCollector {
    /// Sizes the runtime dirs of `addons`.
    pub fn new(addons: &[AddonConfig], settings: &AddonSettings) -> Self {
        AddonDirsCollector {
            state: Arc::new(Mutex::new(DirsState {
                dirs: addons
                    .iter()
                    .filter_map(|a| Some((a.id.clone(), a.runtime_dir.clone()?)))
                    .collect(),
                budget: Duration::from_millis(settings.dir_walk_budget_ms),
                max_entries: settings.dir_walk_max_entries.max(1),
                sizes: BTreeMap::new(),
            })),
        }
    }
}

impl Collector for AddonDirsCollector {
    fn name(&self) -> &'static str {
        "addon_dirs"
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        blocking(&self.state, DirsState::run)
    }
}
