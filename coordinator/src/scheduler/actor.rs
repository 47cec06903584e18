//! The scheduler actor: owns the lease [`Book`] while this instance leads,
//! and the standby's [`Replica`] while it does not.
//!
//! - As leader it subscribes the lease endpoints (with a queue group of its
//!   own, so a paused former leader can never take requests away from it),
//!   checks its leadership deadline before every decision, publishes each
//!   decision's lease changes to the standbys *before* answering, ticks the
//!   book, and applies host views from the fleet.
//! - As standby it follows the leader's replication stream and keeps the
//!   latest host views, so that a takeover starts from the exact live set
//!   (see `takeover`).
//!
//! Events and audit records go to their own tasks without waiting. Queue
//! changes go to the queue writer, and the outputs of a batch that changed
//! the queue wait for its commit (see [`super::queue`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::stream::{SelectAll, StreamExt};
use futures::FutureExt;
use lull_common::runtime::now_unix;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::audit::{self, AuditConfig, AuditSink};
use super::events::{self, EventSink};
use super::follow::{Follower, Inbound, KeyLoader};
use super::queue::{self, Ack, Held, Pending, QueueConfig, QueueLog};
use super::replica::{RecordBuf, SealKey, SnapshotBody};
use crate::handoff::Views;
use crate::leader::Leadership;
use crate::scheduler::endpoints::{handle_as, status, DecisionLabels, LeaseOp, StatusLimits};
use crate::service::{encode_reply, HandlerResult, Meter, Request};
use lull_engine::lease::{Book, Effect, HostView};

mod views;

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
    /// At a takeover, how long to let the old leader's last replication
    /// records arrive before the barrier.
    pub takeover_settle: Duration,
    /// Most requests decided together (one replication record, then their
    /// answers).
    pub batch_max: usize,
    /// The queue writer.
    pub queue: QueueConfig,
    /// Page sizes of `scheduler.status`.
    pub lists: crate::config::ListsConfig,
    /// Most hosts with per-host lease gauges (`hosts.host_metrics_max`).
    pub host_metrics_max: usize,
}

/// Opens a fresh book for a leadership epoch (keys, tombstones), with the
/// seal keys of the replication stream (the current one first).
pub type BookOpener = std::sync::Arc<
    dyn Fn(u64) -> futures::future::BoxFuture<'static, anyhow::Result<(Book, Vec<SealKey>)>>
        + Send
        + Sync,
>;

/// What the scheduler is connected to.
pub struct SchedulerIo {
    /// Where the lease endpoints are registered while leading (a group with
    /// this instance's own queue group).
    pub group: async_nats::service::Group,
    /// Host views pushed by the fleet.
    pub views: mpsc::Receiver<Views>,
    /// Where lease events and replication records are published.
    pub client: async_nats::Client,
    /// Subject names.
    pub subjects: lull_proto::Subjects,
    /// Where audit rows and the wait queue are written (`None`: nowhere;
    /// the queue then lives in memory only).
    pub pool: Option<deadpool_postgres::Pool>,
    /// This instance's role.
    pub leadership: Leadership,
    /// Opens the book at a takeover.
    pub open_book: BookOpener,
    /// Loads seal keys for following.
    pub load_keys: KeyLoader,
}

/// Starts the scheduler. The task ends once `shutdown` is cancelled and
/// the buffered requests were answered (or `drain` has passed), after the
/// events and audit rows are flushed.
pub fn spawn(cfg: SchedulerConfig, io: SchedulerIo, shutdown: CancellationToken) -> JoinHandle<()> {
    let SchedulerIo {
        group,
        views,
        client,
        subjects,
        pool,
        leadership,
        open_book,
        load_keys,
    } = io;
    let (events, events_task) = events::spawn(client.clone(), subjects.clone(), cfg.events_queue);
    let (audit, audit_task) = audit::spawn(pool.clone(), cfg.audit.clone());
    let (queue_log, queue_task) = queue::spawn(pool.clone(), cfg.queue.clone());
    let follower = Follower::new(client.clone(), &subjects, load_keys);
    let meters = LeaseOp::ALL.map(|op| Meter::new(op.name(), client.clone()));
    let actor = Actor {
        lead: None,
        group,
        subjects: subjects.clone(),
        client,
        follower,
        leadership,
        open_book,
        record: RecordBuf::default(),
        latest_views: HashMap::new(),
        max_payload: cfg.max_payload,
        batch_max: cfg.batch_max.max(1),
        status: StatusLimits::new(cfg.max_payload, cfg.lists),
        meters,
        decisions: HashMap::new(),
        events,
        audit,
        gauges: super::gauges::LeaseGauges::new(cfg.host_metrics_max),
        pool,
        queue_log,
        held: Held::default(),
    };
    tokio::spawn(async move {
        actor.run(views, cfg, shutdown).await;
        let _ = events_task.await;
        let _ = audit_task.await;
        let _ = queue_task.await;
    })
}

type Incoming = SelectAll<futures::stream::BoxStream<'static, (LeaseOp, Request)>>;

/// A decided request waiting to be answered.
type Answer = (LeaseOp, Request, HandlerResult, Instant);

/// What only the leader has.
struct Lead {
    book: Book,
    epoch: u64,
    /// Last replication position published.
    seq: u64,
    seal: SealKey,
    incoming: Incoming,
    subject: async_nats::Subject,
}

struct Actor {
    lead: Option<Lead>,
    group: async_nats::service::Group,
    /// To read the addon id of `lease.request.<addon_id>` subjects.
    subjects: lull_proto::Subjects,
    client: async_nats::Client,
    follower: Follower,
    leadership: Leadership,
    open_book: BookOpener,
    /// The replication record being written (reused).
    record: RecordBuf,
    /// The latest view of every host, kept in both roles.
    latest_views: HashMap<String, HostView>,
    max_payload: usize,
    batch_max: usize,
    /// Request size and page sizes of `scheduler.status`.
    status: StatusLimits,
    /// One per [`LeaseOp`], in [`LeaseOp::ALL`] order.
    meters: [Meter; 7],
    /// `lull_lease_decisions_total` handles by result and reason.
    decisions: HashMap<DecisionLabels, metrics::Counter>,
    events: EventSink,
    audit: AuditSink,
    /// Hosts with gauges set, so vanished ones can be zeroed.
    gauges: super::gauges::LeaseGauges,
    /// Where the wait queue is loaded from at a takeover.
    pool: Option<deadpool_postgres::Pool>,
    /// The queue writer.
    queue_log: QueueLog,
    /// Outputs waiting for the queue writer.
    held: Held<Answer>,
}

async fn next_request(lead: &mut Option<Lead>) -> Option<(LeaseOp, Request)> {
    match lead {
        Some(l) => l.incoming.next().await,
        None => std::future::pending().await,
    }
}

impl Actor {
    async fn run(
        mut self,
        mut views: mpsc::Receiver<Views>,
        cfg: SchedulerConfig,
        shutdown: CancellationToken,
    ) {
        let mut role = self.leadership.watch();
        let mut tick = tokio::time::interval(cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gauges = tokio::time::interval(cfg.gauges);
        gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut views_open = true;
        self.follower.start().await;
        loop {
            tokio::select! {
                r = next_request(&mut self.lead) => match r {
                    Some(first) => self.serve(first).await,
                    // The service stopped.
                    None => self.step_down("endpoints closed"),
                },
                v = views.recv(), if views_open => match v {
                    Some(v) => self.on_views(v).await,
                    None => views_open = false,
                },
                msg = self.follower.next() => self.on_follow(msg).await,
                _ = role.changed() => self.on_role(&cfg).await,
                _ = tick.tick() => self.on_tick().await,
                _ = gauges.tick() => self.gauges(),
                Some(ack) = self.queue_log.acks.recv() => self.on_ack(ack).await,
                _ = shutdown.cancelled() => break,
            }
        }
        // Answer what was already received; the streams end once the
        // service has unsubscribed them.
        let deadline = tokio::time::Instant::now() + cfg.drain;
        while self.lead.is_some() {
            match tokio::time::timeout_at(deadline, next_request(&mut self.lead)).await {
                Ok(Some(first)) => self.serve(first).await,
                _ => break,
            }
        }
        // Answers that wait for the queue writer still go out once written.
        while !self.held.is_empty() {
            match tokio::time::timeout_at(deadline, self.queue_log.acks.recv()).await {
                Ok(Some(ack)) => self.on_ack(ack).await,
                _ => break,
            }
        }
        self.queue_log.close();
        self.gauges();
    }

    /// Whether this instance still leads in `epoch` now; steps down if not.
    fn still_leading(&mut self) -> bool {
        let Some(epoch) = self.lead.as_ref().map(|l| l.epoch) else {
            return false;
        };
        if self.leadership.epoch_now() == Some(epoch) {
            return true;
        }
        self.step_down("leadership deadline passed");
        false
    }

    async fn on_role(&mut self, cfg: &SchedulerConfig) {
        let now_epoch = self.leadership.epoch_now();
        match (&self.lead, now_epoch) {
            (None, Some(epoch)) => self.take_over(epoch, cfg).await,
            (Some(l), e) if e != Some(l.epoch) => self.step_down("lost leadership"),
            _ => {}
        }
    }

    /// Becomes the leader of `epoch`: settles and drains the replication
    /// stream, opens a book, re-admits the replica's leases, skips the
    /// grace period when the replica was exact, and subscribes the lease
    /// endpoints.
    async fn take_over(&mut self, epoch: u64, cfg: &SchedulerConfig) {
        let started = Instant::now();
        tokio::time::sleep(cfg.takeover_settle).await;
        self.follower.barrier(Duration::from_secs(1)).await;
        let exact = self.follower.replica.exact_for(epoch);
        let (mut book, keys) = loop {
            if self.leadership.epoch_now() != Some(epoch) {
                return;
            }
            match (self.open_book)(epoch).await {
                Ok(b) => break b,
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "cannot open the lease book; retrying"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        book.set_epoch(epoch);
        let now = now_unix();
        let views: Vec<HostView> = self.latest_views.values().cloned().collect();
        let mut fx = book.on_hosts_changed(views, now);
        let live = std::mem::take(&mut self.follower.replica.leases);
        let mut adopted = 0usize;
        for (lease_id, token) in live {
            let h = lull_proto::msg::lease::LeaseHandle { lease_id, token };
            if let Ok(o) = book.heartbeat(&h, now) {
                adopted += usize::from(o.reply.ok);
                fx.extend(o.effects);
            }
        }
        // The waiters of the previous leader (or of this one before a
        // restart), after the re-admissions so a granted id stays granted.
        if let Some(pool) = self.pool.clone() {
            let leadership = self.leadership.clone();
            let leading = move || leadership.epoch_now() == Some(epoch);
            match queue::restore(&pool, &mut book, now, leading).await {
                Some(restored) => fx.extend(restored),
                None => return,
            }
        }
        if exact {
            book.skip_grace();
        }
        let Some(seal) = keys.first().cloned() else {
            tracing::error!("no seal key; not leading");
            return;
        };
        self.follower.set_keys(keys);
        let mut incoming: Incoming = SelectAll::new();
        for op in LeaseOp::ALL {
            match self.group.endpoint(op.name()).await {
                Ok(ep) => incoming.push(ep.map(move |r| (op, r)).boxed()),
                Err(e) => {
                    tracing::error!(error = %e, endpoint = op.name(), "cannot subscribe a lease endpoint");
                    return;
                }
            }
        }
        // `lease.request.<addon_id>`: the addon named by the subject (which
        // the NATS permissions bind to a user), checked against the payload.
        let by_addon = format!("{}.*", LeaseOp::Request.name());
        match self
            .group
            .endpoint_builder()
            .name("lease.request.by_addon")
            .add(&by_addon)
            .await
        {
            Ok(ep) => incoming.push(ep.map(|r| (LeaseOp::Request, r)).boxed()),
            Err(e) => {
                tracing::error!(error = %e, endpoint = by_addon, "cannot subscribe a lease endpoint");
                return;
            }
        }
        let subject = async_nats::Subject::from(self.follower.subject());
        self.lead = Some(Lead {
            book,
            epoch,
            seq: 0,
            seal,
            incoming,
            subject,
        });
        self.emit(fx).await;
        super::metrics::takeover(exact, started.elapsed());
        tracing::info!(
            epoch,
            exact,
            adopted,
            took_ms = started.elapsed().as_millis() as u64,
            "took over the lease book"
        );
    }

    /// Stops leading: unsubscribes the endpoints (requests still buffered
    /// are dropped unanswered: the new leader has them too) and keeps the
    /// live set as an inexact replica.
    fn step_down(&mut self, why: &str) {
        let Some(l) = self.lead.take() else {
            return;
        };
        let live = live_tokens(&l.book);
        self.follower.demote(l.epoch, live);
        let dropped = self.held.clear();
        tracing::warn!(
            epoch = l.epoch,
            why,
            unanswered = dropped,
            "stopped leading: lease endpoints unsubscribed"
        );
    }

    async fn on_tick(&mut self) {
        if !self.still_leading() {
            self.follower.maybe_sync().await;
            return;
        }
        if let Some(l) = self.lead.as_mut() {
            let fx = l.book.tick(now_unix());
            self.emit(fx).await;
        }
    }

    async fn on_follow(&mut self, msg: Option<Inbound>) {
        let Some(msg) = msg else { return };
        if let Some(l) = &self.lead {
            if let Inbound::SyncRequest(msg) = &msg {
                let snap = SnapshotBody {
                    epoch: l.epoch,
                    seq: l.seq,
                    leases: live_tokens(&l.book),
                };
                if let Some(reply) = msg.reply.clone() {
                    let _ = self.client.publish(reply, l.seal.seal(&snap).into()).await;
                }
            }
            return;
        }
        self.follower.handle(msg).await;
    }

    /// Answers `first` and every request already waiting behind it (up to
    /// `batch_max`): decides them in order, publishes their lease changes
    /// to the standbys in one record, then answers them all. The record
    /// leaves before any of the answers, so a standby never knows less than
    /// a holder; under load one record covers many decisions.
    async fn serve(&mut self, first: (LeaseOp, Request)) {
        if !self.still_leading() {
            return;
        }
        let Some(l) = self.lead.as_mut() else { return };
        let mut batch = vec![first];
        while batch.len() < self.batch_max {
            match l.incoming.next().now_or_never() {
                Some(Some(r)) => batch.push(r),
                _ => break,
            }
        }
        let mut answers = Vec::with_capacity(batch.len());
        let mut effects = Vec::new();
        for (op, request) in batch {
            let started = Instant::now();
            if op == LeaseOp::Status {
                // Built here, encoded (it can be large) on a task of its own.
                let meter = self.meters[op as usize].clone();
                let st = status(&l.book, &request.message.payload, &self.status, now_unix());
                tokio::spawn(async move {
                    let reply = st.and_then(|st| encode_reply(&st));
                    meter.respond(request, reply, started).await;
                });
                continue;
            }
            let addon = self
                .subjects
                .addon_of_lease_request(request.message.subject.as_str());
            if op == LeaseOp::Request && addon.is_none() {
                let old = crate::deprecated::Old::LeaseRequest;
                crate::deprecated::seen(old, request.message.subject.as_str());
            }
            let h = handle_as(
                &mut l.book,
                op,
                addon,
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
            effects.extend(h.effects);
            answers.push((op, request, h.reply, started));
        }
        self.conclude(answers, effects).await;
    }

    /// Sends a decided batch's outputs, or holds them until its queue
    /// changes (and every earlier one) are written.
    async fn conclude(&mut self, answers: Vec<Answer>, mut effects: Vec<Effect>) {
        let changes = queue::take_changes(&mut effects);
        if changes.is_empty() && self.held.is_empty() {
            self.send_out(answers, effects).await;
            return;
        }
        let Some(epoch) = self.lead.as_ref().map(|l| l.epoch) else {
            return;
        };
        let upto = if changes.is_empty() {
            self.queue_log.last()
        } else {
            self.queue_log.submit(epoch, changes).await
        };
        let p = Pending {
            upto,
            answers,
            effects,
        };
        self.held.push(epoch, p);
    }

    /// The standbys learn of the changes before the holders do: the
    /// replication record, then the answers, then events and audit.
    async fn send_out(&mut self, answers: Vec<Answer>, effects: Vec<Effect>) {
        self.replicate(&effects).await;
        for (op, request, reply, started) in answers {
            self.meters[op as usize]
                .respond(request, reply, started)
                .await;
        }
        self.hand_over(effects);
    }

    /// The queue writer committed (or was fenced).
    async fn on_ack(&mut self, ack: Ack) {
        if let Ack::Fenced { epoch } = ack {
            if self.lead.as_ref().is_some_and(|l| l.epoch == epoch) {
                self.step_down("queue write fenced: another coordinator leads");
            }
            return;
        }
        if !self.still_leading() {
            return;
        }
        for p in self.held.release(ack) {
            self.send_out(p.answers, p.effects).await;
        }
    }

    /// Publishes the lease changes among `effects` to the standbys: grants
    /// and re-admissions make a lease live, every end event ends it.
    async fn replicate(&mut self, effects: &[Effect]) {
        let Some(l) = self.lead.as_mut() else { return };
        let rec = &mut self.record;
        rec.begin(l.epoch, l.seq + 1);
        rec.add_effects(&l.book, effects);
        if rec.is_empty() {
            return;
        }
        l.seq += 1;
        let sealed = rec.finish(&l.seal);
        if let Err(e) = self.client.publish(l.subject.clone(), sealed).await {
            tracing::warn!(error = %e, "publishing a replication record");
        }
    }

    /// Replicates, then hands effects to the events and audit tasks (once
    /// their queue changes are written).
    async fn emit(&mut self, effects: Vec<Effect>) {
        self.conclude(Vec::new(), effects).await;
    }

    fn hand_over(&self, effects: Vec<Effect>) {
        for fx in effects {
            match fx {
                Effect::Publish(ev) => self.events.send(ev),
                Effect::Audit(rec) => self.audit.send(rec),
                // Taken out before (`conclude`).
                Effect::Queue(_) => {}
            }
        }
    }

    fn gauges(&mut self) {
        let book = self.lead.as_ref().map(|l| &l.book);
        self.gauges.update(book, lull_common::runtime::now_unix());
    }
}

/// Every live lease of the book with its token.
fn live_tokens(book: &Book) -> Vec<(String, String)> {
    book.active_leases()
        .filter_map(|i| {
            book.token_of(&i.lease_id)
                .map(|t| (i.lease_id.clone(), t.to_string()))
        })
        .collect()
}
