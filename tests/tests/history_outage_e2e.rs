//! End-to-end: history survives a Postgres outage. Snapshots keep flowing
//! while the harness's Postgres is stopped for several seconds; the
//! coordinator holds what it could not write (and, having lost the
//! leadership with Postgres, keeps holding it), then writes it in order
//! once Postgres is back and it leads again. The stored quiet samples have
//! no hole over the outage, and nothing is counted lost.

mod support;

use std::time::Duration;

use lull_common::runtime::now_unix;
use lull_tests::{scrape, wait_until, Infra};
use support::*;

const HOST: &str = "steady-1";

/// Every stored quiet sample time of `HOST`, sorted.
async fn sample_times(infra: &Infra) -> Vec<f64> {
    let Ok(db) = infra.pg.client().await else {
        return Vec::new();
    };
    let Ok(rows) = db
        .query(
            "SELECT t, dts FROM quiet_samples WHERE host_id = $1",
            &[&HOST],
        )
        .await
    else {
        return Vec::new();
    };
    let mut out: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            let t: f64 = r.get(0);
            let dts: Vec<f32> = r.get(1);
            dts.into_iter().map(move |d| t + f64::from(d))
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

async fn metric_value(url: &str, name: &str) -> Option<f64> {
    scrape(url).await.ok().and_then(|t| metric(&t, name, &[]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hole_in_history_across_a_postgres_outage() {
    let mut infra = Infra::start().await.expect("infra");
    let c = start_coordinator(
        &infra,
        &[
            ("LULL_HISTORY__QUIET_EVERY_SEC", "1"),
            ("LULL_HISTORY__FLUSH_SEC", "1"),
            ("LULL_HISTORY__RETRY_EVERY_SEC", "0.5"),
            ("LULL_HA__LEADER_TTL_SEC", "2"),
            ("LULL_HA__RENEW_SEC", "0.3"),
            ("LULL_HA__DRIFT_MARGIN_SEC", "0.4"),
            ("LULL_HA__RETRY_SEC", "0.3"),
        ],
    )
    .await;
    let url = c.metrics_url.clone();
    let client = infra.nats.connect().await.expect("connect");
    let feeder = Feeder::start(client.clone(), Duration::from_millis(500));
    feeder.set(HOST, Load::idle(4));

    let written = wait_until(Duration::from_secs(30), || {
        let infra = &infra;
        async move { sample_times(infra).await.len() >= 3 }
    })
    .await;
    assert!(
        written.is_ok(),
        "no quiet samples written:\n{}",
        c.svc.logs()
    );

    // Postgres down for at least 8 s while snapshots keep coming; the
    // coordinator holds the history it cannot write.
    let down_at = now_unix();
    infra.pg.stop().await.unwrap();
    let held = wait_until(Duration::from_secs(60), || {
        let url = url.clone();
        async move {
            now_unix() - down_at >= 8.0
                && metric_value(&url, "lull_history_backlog_rows")
                    .await
                    .is_some_and(|n| n > 0.0)
        }
    })
    .await;
    assert!(
        held.is_ok(),
        "nothing held during the outage:\n{}",
        c.svc.logs()
    );
    infra.pg.start_again().await.unwrap();
    let up_at = now_unix();

    // Back: the coordinator leads again and writes what it held.
    let caught_up = wait_until(Duration::from_secs(60), || {
        let (url, infra) = (url.clone(), &infra);
        async move {
            metric_value(&url, "lull_history_backlog_rows").await == Some(0.0)
                && sample_times(infra)
                    .await
                    .last()
                    .is_some_and(|t| *t > up_at + 2.0)
        }
    })
    .await;
    assert!(
        caught_up.is_ok(),
        "history never caught up:\n{}",
        c.svc.logs()
    );

    let times = sample_times(&infra).await;
    let span: Vec<f64> = times
        .iter()
        .copied()
        .filter(|t| *t >= down_at - 3.0 && *t <= up_at + 2.0)
        .collect();
    assert!(span.first().is_some_and(|t| *t <= down_at), "{span:?}");
    let worst = span.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(
        worst < 3.0,
        "a {worst:.1} s hole in history over the outage ({down_at:.1}..{up_at:.1}): {span:?}\n{}",
        c.svc.logs()
    );
    // Written once: no sample twice.
    let mut dedup = span.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), span.len(), "samples written twice: {span:?}");
    let text = scrape(&url).await.unwrap();
    assert_eq!(
        metric(&text, "lull_history_lost_rows_total", &[]),
        None,
        "rows lost"
    );
    drop(feeder);
}
