//! The fleet actor's side of operator blocks and maintenance windows: the
//! block commands, each host's `blocked` flag (and until when) kept up to
//! date with the blocks, and the wake-up at the next time a window opens
//! or closes, when the changed views go to the lease book at once.

use std::time::Duration;

use lull_engine::quiet::blocks::BlockCursor;
use lull_proto::msg::hosts::BlockReply;

use super::super::metrics as m;
use super::super::{Applied, Command};
use super::Fleet;
use lull_common::runtime::now_unix;

/// Sleeps until the Unix time `at` (forever when `None`; the caller guards
/// the branch).
pub(super) async fn wake(at: Option<f64>) {
    match at {
        Some(t) => {
            let left = (t - now_unix()).clamp(0.0, 86_400.0);
            tokio::time::sleep(Duration::from_secs_f64(left)).await;
        }
        None => std::future::pending().await,
    }
}

impl Fleet {
    /// Handles a block command.
    pub(super) fn block_command(&mut self, cmd: Command) {
        let now = now_unix();
        match cmd {
            Command::Block(target, block, reply) => {
                let changed = self.blocks.set(target.clone(), block);
                tracing::info!(
                    target = target.as_deref().unwrap_or("*"),
                    changed,
                    "block set"
                );
                let _ = reply.send(self.blocks_changed(changed, now));
            }
            Command::Unblock(target, windows, reply) => {
                let mut changed = self.blocks.clear(&target);
                if windows {
                    changed |= !self.blocks.remove_windows_of(&target).is_empty();
                }
                tracing::info!(
                    target = target.as_deref().unwrap_or("*"),
                    changed,
                    windows,
                    "block lifted"
                );
                let _ = reply.send(self.blocks_changed(changed, now));
            }
            Command::AddWindow(target, w, reply) => {
                let id = w.id;
                let changed = self.blocks.add_window(target.clone(), w);
                tracing::info!(
                    target = target.as_deref().unwrap_or("*"),
                    window = id,
                    "maintenance window added"
                );
                let _ = reply.send(self.blocks_changed(changed, now));
            }
            Command::RemoveWindow(id, reply) => {
                let changed = self.blocks.remove_window(id);
                tracing::info!(window = id, changed, "maintenance window removed");
                let _ = reply.send(self.blocks_changed(changed, now));
            }
            Command::Blocks(cursor, limit, reply) => {
                let _ = reply.send(self.block_page(false, now, &cursor, limit));
            }
            Command::BlocksNow(reply) => {
                let _ = reply.send(self.blocks.clone());
            }
            Command::ReplaceBlocks(blocks, reply) => {
                let changed = self.blocks != blocks;
                self.blocks = blocks;
                let _ = reply.send(self.blocks_changed(changed, now));
            }
            _ => {}
        }
    }

    /// The reply to an operator change: the first page of blocks.
    fn block_reply(&self, changed: bool, now: f64) -> BlockReply {
        let limit = self.cfg.lists.default_limit;
        self.block_page(changed, now, &BlockCursor::Start, limit)
    }

    fn block_page(
        &self,
        changed: bool,
        now: f64,
        cursor: &BlockCursor,
        limit: usize,
    ) -> BlockReply {
        let page = self.blocks.page(now, cursor, limit);
        BlockReply {
            ok: true,
            changed,
            blocks: page.blocks,
            windows: page.windows,
            drain: None,
            next_cursor: page.next.and_then(|c| c.encode()),
        }
    }

    /// After an operator change to the blocks: flags and gauges follow, the
    /// changed views go to the lease book at once, and the reply waits for
    /// the book's confirmation.
    fn blocks_changed(&mut self, changed: bool, now: f64) -> Applied<BlockReply> {
        self.refresh_blocked(now);
        self.block_wake = self.blocks.next_change(now);
        let applied = self.push_views_now(now);
        (self.block_reply(changed, now), applied)
    }

    /// A window opened or closed, or a block ended (or the actor started):
    /// flags follow and changed views go to the lease book at once.
    pub(super) fn blocks_tick(&mut self, now: f64) {
        self.blocks.expire(now);
        self.refresh_blocked(now);
        self.block_wake = self.blocks.next_change(now);
        if !self.changed.is_empty() {
            // Nobody waits for this one: the book has it within moments.
            drop(self.push_views_now(now));
        }
    }

    /// Brings every host's `blocked` flag, its end and the gauge up to date
    /// with the blocks at `now`; hosts whose flag or end changed get their
    /// view pushed.
    pub(super) fn refresh_blocked(&mut self, now: f64) {
        let mut blocked = 0u64;
        for (id, e) in &mut self.hosts {
            let b = self.blocks.is_blocked(id, now);
            let until = b.then(|| self.blocks.free_at(id, now)).flatten();
            if b != e.blocked || until != e.blocked_until {
                if let Some(g) = e.gauges.as_ref().filter(|_| b != e.blocked) {
                    g.blocked.set(if b { 1.0 } else { 0.0 });
                }
                e.blocked = b;
                e.blocked_until = until;
                self.changed.insert(id.clone());
            }
            if b {
                blocked += 1;
            }
        }
        metrics::gauge!(m::HOSTS_BLOCKED.name).set(blocked as f64);
        let fleet = if self.blocks.fleet(now).is_some() {
            1.0
        } else {
            0.0
        };
        metrics::gauge!(m::BLOCKS.name, "scope" => "fleet").set(fleet);
        metrics::gauge!(m::BLOCKS.name, "scope" => "host").set(self.blocks.host_count() as f64);
        for (scope, fleet) in [("fleet", true), ("host", false)] {
            metrics::gauge!(m::MAINTENANCE_WINDOWS.name, "scope" => scope)
                .set(self.blocks.window_count(fleet) as f64);
        }
    }
}
