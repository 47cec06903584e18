//! The scheduler actor: owns the [`Book`], serialises every lease operation,
//! ticks it on its own timer (expiry, queue deadlines, end of the grace
//! period), takes host views from the fleet, and hands the book's effects
//! to the effects task without waiting on NATS or Postgres.

use std::collections::HashMap;
use std::time::Duration;

use lull_common::msg::lease::HeavyLeaseResponse;
use lull_common::runtime::now_unix;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::effects::{self, EffectsConfig};
use super::{Command, SchedulerHandle};
use crate::lease::{Book, Effect, HostView};

/// Tunables of the scheduler shell.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Capacity of the command channel.
    pub queue: usize,
    /// Period of the book's timer (expiry is noticed within this).
    pub tick: Duration,
    /// Period of the capacity gauges.
    pub gauges: Duration,
    /// Effects task settings.
    pub effects: EffectsConfig,
}

/// Starts the scheduler around `book`. Host views arrive on `views`.
/// Returns its handle and its task, which ends (after the effects are
/// flushed) once `shutdown` is cancelled.
pub fn spawn(
    book: Book,
    cfg: SchedulerConfig,
    views: mpsc::Receiver<Vec<HostView>>,
    client: async_nats::Client,
    subjects: lull_common::Subjects,
    pool: Option<deadpool_postgres::Pool>,
    shutdown: CancellationToken,
) -> (SchedulerHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(cfg.queue.max(16));
    let (etx, erx) = mpsc::channel(cfg.effects.queue.max(16));
    let effects_task = tokio::spawn(effects::run(
        erx,
        client,
        subjects,
        pool,
        cfg.effects.clone(),
    ));
    let actor = Actor {
        book,
        effects: etx,
        host_gauges: HashMap::new(),
    };
    let task = tokio::spawn(actor.run(rx, views, cfg, shutdown, effects_task));
    (SchedulerHandle { tx }, task)
}

struct Actor {
    book: Book,
    effects: mpsc::Sender<Effect>,
    /// Hosts with gauges set, so vanished ones can be zeroed.
    host_gauges: HashMap<String, ()>,
}

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        mut views: mpsc::Receiver<Vec<HostView>>,
        cfg: SchedulerConfig,
        shutdown: CancellationToken,
        effects_task: JoinHandle<()>,
    ) {
        let mut tick = tokio::time::interval(cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gauges = tokio::time::interval(cfg.gauges);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                v = views.recv() => if let Some(v) = v {
                    let fx = self.book.on_hosts_changed(v, now_unix());
                    self.emit(fx);
                },
                _ = tick.tick() => {
                    let fx = self.book.tick(now_unix());
                    self.emit(fx);
                }
                _ = gauges.tick() => self.gauges(),
                _ = shutdown.cancelled() => break,
            }
        }
        // Answer what is already queued, then let the effects drain.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            self.handle(cmd);
        }
        drop(self.effects);
        let _ = effects_task.await;
    }

    fn handle(&mut self, cmd: Command) {
        let now = now_unix();
        match cmd {
            Command::Request(req, reply) => {
                let out = self.book.request(*req, now);
                count_decision(&out.reply);
                self.emit(out.effects);
                let _ = reply.send(out.reply);
            }
            Command::Heartbeat(h, reply) => {
                let r = self.book.heartbeat(&h, now).map(|o| {
                    self.emit(o.effects);
                    o.reply
                });
                let _ = reply.send(r);
            }
            Command::Release(r, reply) => {
                let r = self.book.release(&r, now).map(|o| {
                    self.emit(o.effects);
                    o.reply
                });
                let _ = reply.send(r);
            }
            Command::Report(r, reply) => {
                let r = self.book.report(&r, now).map(|o| {
                    self.emit(o.effects);
                    o.reply
                });
                let _ = reply.send(r);
            }
            Command::Revoke(r, reply) => {
                let r = self.book.revoke(&r, now).map(|o| {
                    self.emit(o.effects);
                    o.reply
                });
                let _ = reply.send(r);
            }
            Command::Cancel(r, reply) => {
                let r = self.book.cancel(&r, now).map(|o| {
                    self.emit(o.effects);
                    o.reply
                });
                let _ = reply.send(r);
            }
            Command::Status(reply) => {
                let _ = reply.send(self.book.status(now));
            }
        }
    }

    /// Hands effects over without waiting. The effects task only publishes
    /// and forwards, so its queue drains at NATS speed; if it is full anyway
    /// the effect is dropped and counted (lease state never depends on it,
    /// and a holder still learns the state from its next heartbeat).
    fn emit(&self, effects: Vec<Effect>) {
        for fx in effects {
            let event = match &fx {
                Effect::Publish(ev) => Some(ev.event_label()),
                Effect::Audit(_) => None,
            };
            if self.effects.try_send(fx).is_err() {
                metrics::counter!("lull_lease_effects_dropped_total").increment(1);
            } else if let Some(label) = event {
                metrics::counter!("lull_lease_events_total", "event" => label).increment(1);
            }
        }
    }

    fn gauges(&mut self) {
        let cfg = self.book.config().clone();
        let mut seen = HashMap::with_capacity(self.book.hosts().len());
        for (id, view) in self.book.hosts() {
            let used = self.book.used_units(id);
            metrics::gauge!("lull_lease_capacity_units", "host" => id.clone())
                .set(view.capacity(&cfg) as f64);
            metrics::gauge!("lull_lease_used_units", "host" => id.clone()).set(used as f64);
            seen.insert(id.clone(), ());
        }
        let mut per_host: HashMap<&str, u64> = HashMap::new();
        for l in self.book.active_leases() {
            *per_host.entry(l.host_id.as_str()).or_default() += 1;
        }
        for id in seen.keys() {
            metrics::gauge!("lull_lease_active", "host" => id.clone())
                .set(per_host.get(id.as_str()).copied().unwrap_or(0) as f64);
        }
        for gone in self.host_gauges.keys().filter(|k| !seen.contains_key(*k)) {
            metrics::gauge!("lull_lease_active", "host" => gone.clone()).set(0.0);
        }
        self.host_gauges = seen;
        metrics::gauge!("lull_lease_queue_length").set(self.book.queue_len() as f64);
        metrics::gauge!("lull_leases_active").set(self.book.active_len() as f64);
        metrics::gauge!("lull_lease_grace_period").set(if self.book.in_grace(now_unix()) {
            1.0
        } else {
            0.0
        });
    }
}

fn count_decision(r: &HeavyLeaseResponse) {
    let (result, reason) = if r.approved {
        ("granted", "none")
    } else if r.queued {
        (
            "queued",
            r.reason_code.map(|c| c.as_str()).unwrap_or("none"),
        )
    } else {
        (
            "denied",
            r.reason_code.map(|c| c.as_str()).unwrap_or("none"),
        )
    };
    metrics::counter!("lull_lease_decisions_total", "result" => result, "reason" => reason)
        .increment(1);
}

/// Metric label of a lease event kind.
trait EventLabel {
    fn event_label(&self) -> &'static str;
}

impl EventLabel for lull_common::msg::lease::LeaseEvent {
    fn event_label(&self) -> &'static str {
        use lull_common::msg::lease::LeaseEventKind as K;
        match self.event {
            K::Granted => "granted",
            K::Revoked => "revoked",
            K::Expired => "expired",
            K::Released => "released",
        }
    }
}
