//! NATS subject names of PROTOCOL.md, built from the configurable prefix.

/// Default subject prefix.
pub const DEFAULT_PREFIX: &str = "lull";

/// Name of the JetStream stream that holds durable reports.
pub const REPORTS_STREAM: &str = "LULL_REPORTS";

/// Name of the NATS micro service of the coordinator.
pub const SERVICE_NAME: &str = "lull-coordinator";

/// Builds every subject from one prefix (default `lull`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Subjects::new(DEFAULT_PREFIX)
    }
}

impl Subjects {
    /// Subjects under `prefix` (trailing dots are trimmed).
    pub fn new(prefix: &str) -> Self {
        Subjects {
            prefix: prefix.trim_end_matches('.').to_string(),
        }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `lull.stats.<host_id>`: a host's stats snapshot.
    pub fn stats(&self, host_id: &str) -> String {
        format!("{}.stats.{host_id}", self.prefix)
    }

    /// `lull.stats.*`: every host's stats.
    pub fn stats_all(&self) -> String {
        format!("{}.stats.*", self.prefix)
    }

    /// `lull.agent.<host_id>.health`: the agent's loop health.
    pub fn agent_health(&self, host_id: &str) -> String {
        format!("{}.agent.{host_id}.health", self.prefix)
    }

    /// `lull.agent.<host_id>.failure`: the agent's loop failure.
    pub fn agent_failure(&self, host_id: &str) -> String {
        format!("{}.agent.{host_id}.failure", self.prefix)
    }

    /// `lull.agent.*.*`: every agent's health and failure messages.
    pub fn agent_all(&self) -> String {
        format!("{}.agent.*.*", self.prefix)
    }

    /// `lull.report.>`: the subjects captured by the reports stream.
    pub fn reports_all(&self) -> String {
        format!("{}.report.>", self.prefix)
    }

    /// `lull.report.<kind>.<host_id>.<key>`: a durable report published by
    /// `host_id` (the host's agent, or a program on that host). Under the
    /// generated NATS permissions an agent may publish only under its own
    /// host id, and the coordinator checks a worker report's `host_id`
    /// against it.
    pub fn report_by(&self, kind: &str, host_id: &str, key: &str) -> String {
        format!("{}.report.{kind}.{host_id}.{key}", self.prefix)
    }

    /// `lull.report.build.<host_id>.<region>`: a build record.
    pub fn report_build_by(&self, host_id: &str, region: &str) -> String {
        self.report_by("build", host_id, region)
    }

    /// `lull.report.fatigue.<host_id>.<region>`: a fatigue event.
    pub fn report_fatigue_by(&self, host_id: &str, region: &str) -> String {
        self.report_by("fatigue", host_id, region)
    }

    /// `lull.report.worker.<host_id>.<worker_name>`: a worker execution
    /// report.
    pub fn report_worker_by(&self, host_id: &str, worker: &str) -> String {
        self.report_by("worker", host_id, worker)
    }

    /// `lull.report.build.<region>`: the legacy subject without the
    /// publishing host, still accepted during the deprecation period (see
    /// docs/deploy-nats.md); new publishers use [`Self::report_build_by`].
    pub fn report_build(&self, region: &str) -> String {
        format!("{}.report.build.{region}", self.prefix)
    }

    /// `lull.report.fatigue.<region>`: legacy, see [`Self::report_build`].
    pub fn report_fatigue(&self, region: &str) -> String {
        format!("{}.report.fatigue.{region}", self.prefix)
    }

    /// `lull.report.worker.<worker_name>`: legacy, see
    /// [`Self::report_build`].
    pub fn report_worker(&self, worker: &str) -> String {
        format!("{}.report.worker.{worker}", self.prefix)
    }

    /// `lull.lease.events.<lease_id>`: lifecycle events of one lease.
    pub fn lease_events(&self, lease_id: &str) -> String {
        format!("{}.lease.events.{lease_id}", self.prefix)
    }

    /// `lull.v1.<endpoint>`: a request-reply endpoint, for example
    /// `endpoint("lease.request")`.
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}.v1.{name}", self.prefix)
    }

    /// `lull.v1.lease.request.<addon_id>`: a lease request on behalf of
    /// `addon_id`. The generated NATS permissions let an addon user publish
    /// only under its own id, and the coordinator refuses a payload whose
    /// `addon_id` differs from the subject's. The bare
    /// `lull.v1.lease.request` stays accepted (deprecated) for deployments
    /// without per-user permissions.
    pub fn lease_request_as(&self, addon_id: &str) -> String {
        format!("{}.v1.{}.{addon_id}", self.prefix, endpoints::LEASE_REQUEST)
    }

    /// The addon id of a subject `lull.v1.lease.request.<addon_id>`; `None`
    /// for the bare (legacy) subject or any other shape.
    pub fn addon_of_lease_request<'a>(&self, subject: &'a str) -> Option<&'a str> {
        let rest = subject
            .strip_prefix(&self.prefix)?
            .strip_prefix(".v1.")?
            .strip_prefix(endpoints::LEASE_REQUEST)?
            .strip_prefix('.')?;
        (!rest.is_empty() && !rest.contains('.')).then_some(rest)
    }

    /// The subject of the micro service group (`lull.v1`).
    pub fn service_group(&self) -> String {
        format!("{}.v1", self.prefix)
    }

    /// Splits a subject `lull.stats.<host>` into its host id.
    pub fn host_of_stats<'a>(&self, subject: &'a str) -> Option<&'a str> {
        let rest = subject
            .strip_prefix(&self.prefix)?
            .strip_prefix(".stats.")?;
        (!rest.is_empty() && !rest.contains('.')).then_some(rest)
    }

    /// Splits a subject `lull.agent.<host>.<kind>` into host id and kind.
    pub fn host_of_agent<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = subject
            .strip_prefix(&self.prefix)?
            .strip_prefix(".agent.")?;
        let (host, kind) = rest.split_once('.')?;
        (!host.is_empty() && !kind.contains('.')).then_some((host, kind))
    }

    /// Splits a report subject into kind and key, in either shape
    /// (`lull.report.<kind>.<host>.<key>` or the legacy
    /// `lull.report.<kind>.<key>`).
    pub fn report_parts<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        self.report_address(subject).map(|a| (a.kind, a.key))
    }

    /// Parses a report subject: `lull.report.<kind>.<host>.<key>` (the
    /// publishing host named) or the legacy `lull.report.<kind>.<key>`
    /// (`host` is `None`).
    pub fn report_address<'a>(&self, subject: &'a str) -> Option<ReportAddress<'a>> {
        let rest = subject
            .strip_prefix(&self.prefix)?
            .strip_prefix(".report.")?;
        let mut tokens = rest.split('.');
        let kind = tokens.next()?;
        let (host, key) = match (tokens.next(), tokens.next(), tokens.next()) {
            (Some(key), None, None) => (None, key),
            (Some(host), Some(key), None) => (Some(host), key),
            _ => return None,
        };
        let empty = kind.is_empty() || key.is_empty() || host.is_some_and(str::is_empty);
        (!empty).then_some(ReportAddress { kind, host, key })
    }
}

/// The parts of a report subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportAddress<'a> {
    /// `build`, `fatigue` or `worker` (anything else is the caller's to
    /// refuse).
    pub kind: &'a str,
    /// The publishing host, `None` on a legacy subject.
    pub host: Option<&'a str>,
    /// The region or worker name.
    pub key: &'a str,
}

/// Names of the request-reply endpoints under `lull.v1.`.
pub mod endpoints {
    /// `lull.v1.hosts.list`.
    pub const HOSTS_LIST: &str = "hosts.list";
    /// `lull.v1.hosts.get`.
    pub const HOSTS_GET: &str = "hosts.get";
    /// `lull.v1.hosts.block`.
    pub const HOSTS_BLOCK: &str = "hosts.block";
    /// `lull.v1.hosts.unblock`.
    pub const HOSTS_UNBLOCK: &str = "hosts.unblock";
    /// `lull.v1.hosts.blocks` (the active blocks).
    pub const HOSTS_BLOCKS: &str = "hosts.blocks";
    /// `lull.v1.hosts.forget` (delete a host that no longer reports).
    pub const HOSTS_FORGET: &str = "hosts.forget";
    /// `lull.v1.hosts.rejected` (senders whose snapshots are rejected).
    pub const HOSTS_REJECTED: &str = "hosts.rejected";
    /// `lull.v1.stats.history`.
    pub const STATS_HISTORY: &str = "stats.history";
    /// `lull.v1.stats.health`.
    pub const STATS_HEALTH: &str = "stats.health";
    /// `lull.v1.quiet.streaks`.
    pub const QUIET_STREAKS: &str = "quiet.streaks";
    /// `lull.v1.quiet.forecast`.
    pub const QUIET_FORECAST: &str = "quiet.forecast";
    /// `lull.v1.lease.request`.
    pub const LEASE_REQUEST: &str = "lease.request";
    /// `lull.v1.lease.heartbeat`.
    pub const LEASE_HEARTBEAT: &str = "lease.heartbeat";
    /// `lull.v1.lease.release`.
    pub const LEASE_RELEASE: &str = "lease.release";
    /// `lull.v1.lease.report`.
    pub const LEASE_REPORT: &str = "lease.report";
    /// `lull.v1.lease.revoke`.
    pub const LEASE_REVOKE: &str = "lease.revoke";
    /// `lull.v1.lease.cancel` (cancel a queued request).
    pub const LEASE_CANCEL: &str = "lease.cancel";
    /// `lull.v1.lease.decisions` (recent decisions from the audit trail).
    pub const LEASE_DECISIONS: &str = "lease.decisions";
    /// `lull.v1.scheduler.status`.
    pub const SCHEDULER_STATUS: &str = "scheduler.status";
    /// `lull.v1.coordinator.leader` (every instance answers).
    pub const COORDINATOR_LEADER: &str = "coordinator.leader";
    /// `lull.v1.regions.stats`.
    pub const REGIONS_STATS: &str = "regions.stats";
    /// `lull.v1.regions.select`.
    pub const REGIONS_SELECT: &str = "regions.select";
    /// `lull.v1.regions.insights`.
    pub const REGIONS_INSIGHTS: &str = "regions.insights";
    /// `lull.v1.regions.pardon` (lift a region's outlaw).
    pub const REGIONS_PARDON: &str = "regions.pardon";
    /// `lull.v1.regions.import` (a campaign stats document, whole or in parts).
    pub const REGIONS_IMPORT: &str = "regions.import";
    /// `lull.v1.workers.executions`.
    pub const WORKERS_EXECUTIONS: &str = "workers.executions";
    /// `lull.v1.workers.stats`.
    pub const WORKERS_STATS: &str = "workers.stats";
    /// `lull.v1.workers.learning`.
    pub const WORKERS_LEARNING: &str = "workers.learning";
    /// `lull.v1.learning.system`.
    pub const LEARNING_SYSTEM: &str = "learning.system";
    /// `lull.v1.data_quality.summary`.
    pub const DATA_QUALITY_SUMMARY: &str = "data_quality.summary";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_use_the_prefix() {
        let s = Subjects::new("acme.lull.");
        assert_eq!(s.stats("web1"), "acme.lull.stats.web1");
        assert_eq!(s.agent_health("web1"), "acme.lull.agent.web1.health");
        assert_eq!(
            s.report_build("us-west2"),
            "acme.lull.report.build.us-west2"
        );
        assert_eq!(s.endpoint("lease.request"), "acme.lull.v1.lease.request");
        assert_eq!(s.lease_events("L1"), "acme.lull.lease.events.L1");
        let d = Subjects::default();
        assert_eq!(d.stats_all(), "lull.stats.*");
        assert_eq!(d.reports_all(), "lull.report.>");
    }

    #[test]
    fn subjects_parse_back() {
        let s = Subjects::default();
        assert_eq!(s.host_of_stats("lull.stats.web1"), Some("web1"));
        assert_eq!(s.host_of_stats("lull.stats."), None);
        assert_eq!(s.host_of_stats("other.stats.web1"), None);
        assert_eq!(
            s.host_of_agent("lull.agent.web1.health"),
            Some(("web1", "health"))
        );
        assert_eq!(
            s.report_parts("lull.report.worker.sse_guardian"),
            Some(("worker", "sse_guardian"))
        );
        assert_eq!(s.report_parts("lull.report.worker"), None);
    }

    #[test]
    fn report_subjects_name_the_publishing_host() {
        let s = Subjects::default();
        assert_eq!(
            s.report_worker_by("web1", "sse_guardian"),
            "lull.report.worker.web1.sse_guardian"
        );
        assert_eq!(
            s.report_build_by("web1", "us-west2"),
            "lull.report.build.web1.us-west2"
        );
        assert_eq!(
            s.report_fatigue_by("web1", "us-west2"),
            "lull.report.fatigue.web1.us-west2"
        );
        let a = s
            .report_address("lull.report.worker.web1.sse_guardian")
            .unwrap();
        assert_eq!(
            (a.kind, a.host, a.key),
            ("worker", Some("web1"), "sse_guardian")
        );
        assert_eq!(
            s.report_parts("lull.report.build.web1.us-west2"),
            Some(("build", "us-west2"))
        );
        // The legacy shape has no host.
        let a = s.report_address("lull.report.build.us-west2").unwrap();
        assert_eq!((a.kind, a.host, a.key), ("build", None, "us-west2"));
        for bad in [
            "lull.report.worker.a.b.c",
            "lull.report.worker..w",
            "lull.report.worker.h.",
            "lull.report..h.w",
            "lull.report.worker",
            "other.report.worker.h.w",
        ] {
            assert_eq!(s.report_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn lease_requests_name_the_addon() {
        let s = Subjects::new("acme.lull");
        assert_eq!(
            s.lease_request_as("indexer"),
            "acme.lull.v1.lease.request.indexer"
        );
        assert_eq!(
            s.addon_of_lease_request("acme.lull.v1.lease.request.indexer"),
            Some("indexer")
        );
        for other in [
            "acme.lull.v1.lease.request",
            "acme.lull.v1.lease.request.",
            "acme.lull.v1.lease.request.a.b",
            "acme.lull.v1.lease.requests.x",
            "lull.v1.lease.request.indexer",
        ] {
            assert_eq!(s.addon_of_lease_request(other), None, "{other}");
        }
    }
}
