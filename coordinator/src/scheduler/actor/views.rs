//! The scheduler actor's side of the fleet hand-off: host views (kept in
//! both roles, applied to the book while leading) and the operator's
//! `hosts.forget`, which the book refuses while the host holds leases.

use lull_common::runtime::now_unix;

use super::Actor;
use crate::handoff::{Forget, Views};

impl Actor {
    /// Takes host views from the fleet (kept in both roles), and answers
    /// an operator change once the book decides with them.
    pub(super) async fn on_views(&mut self, mut update: Views) {
        if let Some(f) = update.forget.take() {
            self.forget(f);
        }
        update.keep_latest(&mut self.latest_views);
        if self.still_leading() {
            if let Some(l) = self.lead.as_mut() {
                update.removed.iter().for_each(|id| l.book.remove_host(id));
                let fx = l.book.on_hosts_changed(update.views, now_unix());
                self.emit(fx).await;
            }
        }
        if let Some(a) = update.applied {
            let _ = a.send(());
        }
    }

    /// Lets a host go (`hosts.forget`) unless the book holds leases on it.
    fn forget(&mut self, f: Forget) {
        let leading = self.still_leading();
        let r = match self.lead.as_mut().filter(|_| leading) {
            Some(l) => l.book.forget_host(&f.host_id),
            None => Ok(()),
        };
        if r.is_ok() {
            self.latest_views.remove(&f.host_id);
        }
        let _ = f.reply.send(r);
    }
}
