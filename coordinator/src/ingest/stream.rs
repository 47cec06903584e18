//! The `LULL_REPORTS` stream: created at start when missing, and brought to
//! the configured limits (`[ingest] reports_stream_max_age_sec`,
//! `reports_stream_max_bytes`, discard policy `old`) and replica count when
//! it exists with other settings (an agent may have created it, or an older
//! coordinator without limits).

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, stream};
use lull_proto::Subjects;

use crate::config::{CoordinatorConfig, IngestConfig};

/// Applies the configured retention limits to a stream configuration:
/// `max_age` and `max_bytes` (0 in the config is no limit) with the
/// `old` discard policy (when a limit is hit the oldest reports go, so
/// publishers are never refused).
pub fn with_limits(mut c: stream::Config, ingest: &IngestConfig) -> stream::Config {
    c.max_age = Duration::from_secs(ingest.reports_stream_max_age_sec);
    c.max_bytes = match ingest.reports_stream_max_bytes {
        0 => -1,
        n => i64::try_from(n).unwrap_or(i64::MAX),
    };
    c.discard = stream::DiscardPolicy::Old;
    c
}

/// Whether `c` has the configured limits already.
fn has_limits(c: &stream::Config, ingest: &IngestConfig) -> bool {
    let wanted = with_limits(c.clone(), ingest);
    wanted.max_age == c.max_age && wanted.max_bytes == c.max_bytes && wanted.discard == c.discard
}

/// Creates the `LULL_REPORTS` stream on `<prefix>.report.>` if it is missing,
/// with the configured limits and `ingest.reports_replicas` replicas
/// (automatic: min(3, servers this connection knows of)).
///
/// An existing stream with other limits is updated to them; that update
/// must succeed. An existing stream with another replica count is updated
/// to it (in automatic mode only upwards: a connection may not know every
/// server yet); when the server refuses, the stream is used as it is and
/// the refusal is logged.
pub async fn ensure_reports_stream(
    client: &async_nats::Client,
    subjects: &Subjects,
    cfg: &CoordinatorConfig,
) -> anyhow::Result<()> {
    let name = lull_proto::subjects::REPORTS_STREAM;
    let ingest = &cfg.ingest;
    // A clustered server announces every client URL of the cluster, its own
    // included; a single server announces none.
    let known_servers = client.server_info().connect_urls.len().max(1);
    let replicas = ingest.reports_replicas_for(known_servers);
    let js = jetstream::new(client.clone());
    let created = with_limits(
        stream::Config {
            name: name.to_string(),
            subjects: vec![subjects.reports_all()],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(ingest.reports_duplicate_window_sec),
            num_replicas: replicas,
            ..Default::default()
        },
        ingest,
    );
    let stream = js
        .get_or_create_stream(created)
        .await
        .with_context(|| format!("creating the {name} stream"))?;
    let mut current = stream.cached_info().config.clone();

    if !has_limits(&current, ingest) {
        let wanted = with_limits(current.clone(), ingest);
        js.update_stream(&wanted).await.with_context(|| {
            format!(
                "updating the {name} stream to max_age {}s, max_bytes {} \
                 (ingest.reports_stream_max_age_sec, ingest.reports_stream_max_bytes)",
                ingest.reports_stream_max_age_sec, ingest.reports_stream_max_bytes
            )
        })?;
        tracing::info!(
            stream = name,
            from_max_age_sec = current.max_age.as_secs(),
            from_max_bytes = current.max_bytes,
            to_max_age_sec = wanted.max_age.as_secs(),
            to_max_bytes = wanted.max_bytes,
            "reports stream limits changed"
        );
        current = wanted;
    }

    let has = current.num_replicas.max(1);
    let automatic = ingest.reports_replicas == 0;
    if has == replicas || (automatic && has > replicas) {
        tracing::info!(
            stream = name,
            replicas = has,
            known_servers,
            max_age_sec = current.max_age.as_secs(),
            max_bytes = current.max_bytes,
            "reports stream ready"
        );
        return Ok(());
    }
    let wanted = stream::Config {
        num_replicas: replicas,
        ..current
    };
    match js.update_stream(&wanted).await {
        Ok(_) => tracing::info!(
            stream = name,
            from = has,
            to = replicas,
            "reports stream replicas changed"
        ),
        Err(e) => tracing::warn!(
            stream = name,
            has,
            wanted = replicas,
            error = %e,
            "the reports stream keeps its replica count: updating it failed \
             (set ingest.reports_replicas to match, or change it with `nats stream edit`)"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_config() {
        let ingest = IngestConfig::default();
        let c = with_limits(stream::Config::default(), &ingest);
        assert_eq!(c.max_age, Duration::from_secs(7 * 86_400));
        assert_eq!(c.max_bytes, 1 << 30);
        assert_eq!(c.discard, stream::DiscardPolicy::Old);
        assert!(has_limits(&c, &ingest));
        assert!(!has_limits(&stream::Config::default(), &ingest));
        let unlimited = IngestConfig {
            reports_stream_max_age_sec: 0,
            reports_stream_max_bytes: 0,
            ..IngestConfig::default()
        };
        let c = with_limits(c, &unlimited);
        assert_eq!(c.max_age, Duration::ZERO);
        assert_eq!(c.max_bytes, -1);
    }
}
