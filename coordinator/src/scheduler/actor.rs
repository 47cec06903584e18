//! The scheduler actor: owns the [`Book`] and serialises every lease
//! operation. It takes requests straight from the lease endpoints' streams
//! (answering each in place, so a decision costs no extra task or channel
//! hop), ticks the book on its own timer (expiry, queue deadlines, end of
//! the grace period), and applies host views from the fleet. Events and
//! audit records go to their own tasks without waiting.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use lull_common::runtime::now_unix;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::audit::{self, AuditConfig, AuditSink};
use super::events::{self, EventSink};
use crate::scheduler::endpoints::{handle, status, DecisionLabels, LeaseOp};
use crate::service::{encode_reply, Endpoint, Meter, Request};
use lull_engine::lease::{Book, Effect, HostView};

/// Tunables of the scheduler shell.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Period of the book's timer (expiry is noticed within this).
    pub tick: Duration,
    /// Period of the capacity gauges.
    pub gauges: Duration,
    /// Largest accepted request payload.
    pub max_payload: usize,
    /// Lease events waiting to be published.
    pub events_queue: usize,
    /// The audit writer.
    pub audit: AuditConfig,
    /// At shutdown, how long buffered requests are still answered.
    pub drain: Duration,
}

/// What the scheduler is connected to.
pub struct SchedulerIo {
    /// The lease endpoints' request streams.
    pub endpoints: Vec<(LeaseOp, Endpoint)>,
    /// Host views pushed by the fleet.
    pub views: mpsc::Receiver<Vec<HostView>>,
    /// Where lease events are published.
    pub client: async_nats::Client,
    /// Subject names.
    pub subjects: lull_proto::Subjects,
    /// Where audit rows are written (`None`: nowhere).
    pub pool: Option<deadpool_postgres::Pool>,
}

/// Starts the scheduler around `book`, answering the lease endpoints. The
/// task ends once `shutdown` is cancelled and the endpoint streams have
/// ended (the service was stopped) or `drain` has passed, after the events
/// and audit rows are flushed.
pub fn spawn(
    book: Book,
    cfg: SchedulerConfig,
    io: SchedulerIo,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let SchedulerIo {
        endpoints,
        views,
        client,
        subjects,
        pool,
    } = io;
    let (events, events_task) = events::spawn(client, subjects, cfg.events_queue);
    let (audit, audit_task) = audit::spawn(pool, cfg.audit.clone());
    let actor = Actor {
        book,
        max_payload: cfg.max_payload,
        meters: LeaseOp::ALL.map(|op| Meter::new(op.name())),
        decisions: HashMap::new(),
        events,
        audit,
        host_gauges: HashSet::new(),
    };
    tokio::spawn(async move {
        actor.run(endpoints, views, cfg, shutdown).await;
        let _ = events_task.await;
        let _ = audit_task.await;
    })
}

struct Actor {
    book: Book,
    max_payload: usize,
    /// One per [`LeaseOp`], in [`LeaseOp::ALL`] order.
    meters: [Meter; 7],
    /// `lull_lease_decisions_total` handles by result and reason.
    decisions: HashMap<DecisionLabels, metrics::Counter>,
    events: EventSink,
    audit: AuditSink,
    /// Hosts with gauges set, so vanished ones can be zeroed.
    host_gauges: HashSet<String>,
}

impl Actor {
    async fn run(
        mut self,
        endpoints: Vec<(LeaseOp, Endpoint)>,
        mut views: mpsc::Receiver<Vec<HostView>>,
        cfg: SchedulerConfig,
        shutdown: CancellationToken,
    ) {
        let mut incoming = stream::select_all(
            endpoints
                .into_iter()
                .map(|(op, ep)| ep.map(move |r| (op, r))),
        );
        let mut tick = tokio::time::interval(cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gauges = tokio::time::interval(cfg.gauges);
        gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut views_open = true;
        let mut serving = true;
        loop {
            tokio::select! {
                r = incoming.next(), if serving => match r {
                    Some((op, request)) => self.serve(op, request).await,
                    // The service stopped: keep expiring leases until told
                    // to stop.
                    None => serving = false,
                },
                v = views.recv(), if views_open => match v {
                    Some(v) => {
                        let fx = self.book.on_hosts_changed(v, now_unix());
                        self.emit(fx);
                    }
                    None => views_open = false,
                },
                _ = tick.tick() => {
                    let fx = self.book.tick(now_unix());
                    self.emit(fx);
                }
                _ = gauges.tick() => self.gauges(),
                _ = shutdown.cancelled() => break,
            }
        }
        // Answer what was already received; the streams end once the
        // service has unsubscribed them.
        let deadline = tokio::time::Instant::now() + cfg.drain;
        if serving {
            while let Ok(Some((op, request))) =
                tokio::time::timeout_at(deadline, incoming.next()).await
            {
                self.serve(op, request).await;
            }
        }
        self.gauges();
    }

    /// Answers one request and hands its effects over.
    async fn serve(&mut self, op: LeaseOp, request: Request) {
        let started = Instant::now();
        if op == LeaseOp::Status {
            // Built here, encoded (it can be large) on a task of its own.
            let meter = self.meters[op as usize].clone();
            match status(
                &self.book,
                &request.message.payload,
                self.max_payload,
                now_unix(),
            ) {
                Ok(st) => {
                    tokio::spawn(async move {
                        meter.respond(&request, encode_reply(&st), started).await;
                    });
                }
                Err(e) => meter.respond(&request, Err(e), started).await,
            }
            return;
        }
        let h = handle(
            &mut self.book,
            op,
            &request.message.payload,
            self.max_payload,
            now_unix(),
        );
        if let Some(d) = h.decision {
            self.decisions
                .entry(d)
                .or_insert_with(|| {
                    metrics::counter!(super::metrics::DECISIONS.name, "result" => d.result, "reason" => d.reason)
                })
                .increment(1);
        }
        self.meters[op as usize]
            .respond(&request, h.reply, started)
            .await;
        self.emit(h.effects);
    }

    /// Hands effects to the events and audit tasks without waiting.
    fn emit(&self, effects: Vec<Effect>) {
        for fx in effects {
            match fx {
                Effect::Publish(ev) => self.events.send(ev),
                Effect::Audit(rec) => self.audit.send(rec),
            }
        }
    }

    fn gauges(&mut self) {
        let cfg = self.book.config();
        let mut active: HashMap<&str, u64> = HashMap::new();
        for l in self.book.active_leases() {
            *active.entry(l.host_id.as_str()).or_default() += 1;
        }
        let mut seen = HashSet::with_capacity(self.book.hosts().len());
        for (id, view) in self.book.hosts() {
            let used = self.book.used_units(id);
            metrics::gauge!(super::metrics::CAPACITY_UNITS.name, "host" => id.clone())
                .set(view.capacity(cfg) as f64);
            metrics::gauge!(super::metrics::USED_UNITS.name, "host" => id.clone()).set(used as f64);
            metrics::gauge!(super::metrics::HOST_ACTIVE.name, "host" => id.clone())
                .set(active.get(id.as_str()).copied().unwrap_or(0) as f64);
            seen.insert(id.clone());
        }
        for gone in self.host_gauges.difference(&seen) {
            metrics::gauge!(super::metrics::HOST_ACTIVE.name, "host" => gone.clone()).set(0.0);
            metrics::gauge!(super::metrics::USED_UNITS.name, "host" => gone.clone()).set(0.0);
        }
        self.host_gauges = seen;
        metrics::gauge!(super::metrics::QUEUE_LENGTH.name).set(self.book.queue_len() as f64);
        metrics::gauge!(super::metrics::ACTIVE.name).set(self.book.active_len() as f64);
        metrics::gauge!(super::metrics::GRACE_PERIOD.name).set(if self.book.in_grace(now_unix()) {
            1.0
        } else {
            0.0
        });
    }
}
