//! End-to-end: the lease clients against a real coordinator, NATS and
//! Postgres. The Rust SDK guard heartbeats a lease past its TTL, reports,
//! learns of a revoke at once, releases explicitly and on drop, and waits
//! for a grant by retrying or through the queue; `lullctl run` runs a
//! command to completion, stops it on a revoke (SIGTERM, then SIGKILL),
//! forwards SIGTERM, waits while denied and exits with the command's code;
//! `lullctl status/leases/revoke/report` work; and the Python example addon
//! runs, heartbeats and handles a revoke.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lull_client::lease::{AcquireError, LeaseClient, LeaseEnd, LeaseGuard};
use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{
    DenyReason, HeavyLeaseRequest, LeaseInfo, LeaseState, SchedulerStatus,
};
use lull_proto::Subjects;
use lull_tests::{wait_for, Infra, Service};
use nix::sys::signal::Signal;
use support::*;

const HOST: &str = "lc-host";

fn lease_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LULL_LEASE__HEARTBEAT_TTL_SEC", "2"),
        ("LULL_LEASE__RATE_PER_SEC", "100"),
        ("LULL_LEASE__BURST", "100"),
        ("LULL_LEASE__RETRY__MIN_SEC", "0.5"),
    ]
}

/// NATS, Postgres, a coordinator with a 2 s TTL, and one synthetic idle
/// 8-core host that has reached QUIET.
struct Setup {
    infra: Infra,
    coord: Coordinator,
    client: async_nats::Client,
    _feeder: Feeder,
}

async fn setup() -> Setup {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &lease_env()).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set(HOST, Load::idle(8));
    wait_state(&client, HOST, QuietState::Quiet).await;
    // Let the fleet push its view to the scheduler, and any grace end.
    let lc = LeaseClient::new(client.clone(), Subjects::default());
    let ready = wait_for(Duration::from_secs(15), || {
        let lc = lc.clone();
        async move {
            let st = lc.status().await.ok()?;
            let now = lull_common::runtime::now_unix();
            let host = st.hosts.iter().find(|h| h.host_id == HOST)?;
            (host.capacity_units > 100 && st.grace_until.is_none_or(|g| g <= now)).then_some(())
        }
    })
    .await;
    assert!(
        ready.is_ok(),
        "scheduler never saw {HOST}\n{}",
        coord.svc.logs()
    );
    Setup {
        infra,
        coord,
        client,
        _feeder: feeder,
    }
}

fn req(addon: &str, cost: i64) -> HeavyLeaseRequest {
    HeavyLeaseRequest {
        addon_id: addon.into(),
        job_type: "e2e".into(),
        host_id: Some(HOST.into()),
        cost_units: Some(cost),
        cost_class: None,
        expected_duration_sec: None,
        priority: Default::default(),
        constraints: Default::default(),
        wait: false,
        wait_timeout_sec: None,
    }
}

async fn status(lc: &LeaseClient) -> SchedulerStatus {
    lc.status().await.expect("scheduler.status")
}

/// Waits until lease `id` is in the recent list and returns it.
async fn ended(lc: &LeaseClient, id: &str) -> LeaseInfo {
    let r = wait_for(Duration::from_secs(10), || {
        let lc = lc.clone();
        let id = id.to_string();
        async move {
            let st = lc.status().await.ok()?;
            st.leases.recent.into_iter().find(|l| l.lease_id == id)
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("lease {id} never ended"))
}

fn is_active(st: &SchedulerStatus, id: &str) -> bool {
    st.leases.active.iter().any(|l| l.lease_id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_guard_heartbeats_reports_revokes_and_releases() {
    let s = setup().await;
    let lc = LeaseClient::new(s.client.clone(), Subjects::default());

    // The guard keeps the lease alive well past the 2 s TTL.
    let g = lc.acquire(req("sdk", 10)).await.expect("grant");
    assert_eq!(g.host_id(), HOST);
    assert_eq!(g.limits().unwrap().heartbeat_ttl_sec, 2.0);
    let first_expiry = g.expires_at().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        g.ended().is_none(),
        "{:?}\n{}",
        g.ended(),
        s.coord.svc.logs()
    );
    assert!(is_active(&status(&lc).await, g.lease_id()));
    assert!(g.expires_at().unwrap() > first_expiry + 2.0);

    // Progress reports reach the status.
    let r = g
        .report(Some(40.0), Some("reindexing".into()), None)
        .await
        .unwrap();
    assert!(r.ok);
    let st = status(&lc).await;
    let info = st
        .leases
        .active
        .iter()
        .find(|l| l.lease_id == g.lease_id())
        .unwrap();
    assert_eq!(info.progress_pct, Some(40.0));
    // Out of range is refused before sending.
    assert!(g.report(Some(140.0), None, None).await.is_err());

    // A revoke reaches the guard at once: the future and the token fire.
    let token = g.cancellation_token();
    let t0 = Instant::now();
    let ok = lc
        .revoke(g.lease_id(), Some("maintenance".into()))
        .await
        .unwrap();
    assert!(ok.ok);
    let end = tokio::time::timeout(Duration::from_secs(2), g.revoked())
        .await
        .expect("revoke delivered within 2 s");
    assert_eq!(
        end,
        LeaseEnd::Revoked {
            reason: Some("maintenance".into())
        }
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    tokio::time::timeout(Duration::from_secs(1), token.cancelled())
        .await
        .expect("cancellation token fired");
    // Releasing a revoked lease is answered ok: false.
    let rel = g.release("late").await.unwrap();
    assert!(!rel.ok);

    // Explicit release with an outcome.
    let g = lc.acquire(req("sdk", 10)).await.expect("grant");
    let id = g.lease_id().to_string();
    assert!(g.release("success").await.unwrap().ok);
    let info = ended(&lc, &id).await;
    assert_eq!(info.state, LeaseState::Released);
    assert_eq!(info.outcome.as_deref(), Some("success"));

    // Drop releases (best effort, in the background).
    let g = lc.acquire(req("sdk", 10)).await.expect("grant");
    let id = g.lease_id().to_string();
    drop(g);
    let info = ended(&lc, &id).await;
    assert_eq!(info.state, LeaseState::Released);
    assert_eq!(info.outcome.as_deref(), Some("dropped"));

    // Without heartbeats a lease expires: the guard would have kept it, so
    // this shows the TTL is real. A raw grant, never heartbeated:
    let raw = lc.request_raw(&req("sdk", 10)).await.unwrap();
    assert!(raw.approved);
    let info = ended(&lc, raw.lease_id.as_deref().unwrap()).await;
    assert_eq!(info.state, LeaseState::Expired);

    // A denial is an error carrying the code and retry hint.
    let big = lc.acquire(req("sdk", 100)).await.expect("grant");
    match lc.acquire(req("sdk2", 100)).await {
        Err(AcquireError::Denied(d)) => {
            assert_eq!(d.reason_code, Some(DenyReason::CapacityExceeded), "{d}");
            assert!(d.reason.contains("used=100"), "{d}");
            assert!(d.retry_after_sec.is_some_and(|r| r > 0.0), "{d}");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    // Invalid requests never leave the client.
    assert!(matches!(
        lc.acquire(req("bad addon", 10)).await,
        Err(AcquireError::Invalid(_))
    ));

    // acquire_wait by retrying: granted once the big lease is released.
    let t0 = Instant::now();
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        big.release("done").await.unwrap()
    });
    let g = lc
        .acquire_wait(req("sdk2", 100), Duration::from_secs(20))
        .await
        .expect("granted after the release");
    assert!(releaser.await.unwrap().ok);
    assert!(t0.elapsed() >= Duration::from_millis(1400));
    assert!(t0.elapsed() < Duration::from_secs(12), "{:?}", t0.elapsed());

    // acquire_wait gives up at the deadline with the last denial.
    let t0 = Instant::now();
    match lc
        .acquire_wait(req("sdk3", 100), Duration::from_millis(1500))
        .await
    {
        Err(AcquireError::TimedOut { last: Some(d) }) => {
            assert_eq!(d.reason_code, Some(DenyReason::CapacityExceeded));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(5));

    // acquire_wait through the queue: the GRANTED event arrives after the
    // release, and the granted guard (whose queue ticket is replaced at its
    // first heartbeat) keeps the lease past the TTL.
    let mut qreq = req("sdk4", 100);
    qreq.wait = true;
    let lc2 = lc.clone();
    let waiter = tokio::spawn(async move { lc2.acquire_wait(qreq, Duration::from_secs(20)).await });
    let queued = wait_for(Duration::from_secs(5), || {
        let lc = lc.clone();
        async move { (lc.status().await.ok()?.queue_length == 1).then_some(()) }
    })
    .await;
    assert!(queued.is_ok(), "request never queued");
    let t0 = Instant::now();
    assert!(g.release("done").await.unwrap().ok);
    let q = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("queued grant in time")
        .unwrap()
        .expect("granted from the queue");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(q.host_id(), HOST);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(q.ended().is_none(), "{:?}", q.ended());
    assert!(is_active(&status(&lc).await, q.lease_id()));

    // A queued wait that times out withdraws its request.
    let mut qreq = req("sdk5", 100);
    qreq.wait = true;
    match lc.acquire_wait(qreq, Duration::from_millis(1500)).await {
        Err(AcquireError::TimedOut { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    let st = status(&lc).await;
    assert_eq!(st.queue_length, 0, "{st:?}");
    let id = q.lease_id().to_string();
    assert!(q.release("success").await.unwrap().ok);
    assert_eq!(ended(&lc, &id).await.outcome.as_deref(), Some("success"));
}

// ----- lullctl ---------------------------------------------------------------

fn lullctl(s: &Setup, args: &[&str]) -> lull_tests::ServiceBuilder {
    Service::builder("lullctl")
        .envs(s.infra.lull_env())
        .args(args.iter().copied())
}

async fn lullctl_out(s: &Setup, args: &[&str]) -> lull_tests::Finished {
    lullctl(s, args)
        .run(Duration::from_secs(30))
        .await
        .expect("lullctl finished")
}

/// Waits until `path` exists and returns its trimmed content.
async fn file_text(path: &Path, svc: &Service) -> String {
    let r = wait_for(Duration::from_secs(15), || {
        let p = path.to_path_buf();
        async move {
            std::fs::read_to_string(&p)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("{} never written\n{}", path.display(), svc.logs()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lullctl_run_status_revoke_and_report() {
    let s = setup().await;
    let lc = LeaseClient::new(s.client.clone(), Subjects::default());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();

    // A command runs under a lease; its exit code passes through, and the
    // lease is released with the outcome.
    let f = lullctl_out(
        &s,
        &[
            "run",
            "--cost",
            "10",
            "--host",
            HOST,
            "--job-type",
            "exit7",
            "--",
            "sh",
            "-c",
            "echo $LULL_LEASE_ID > \"$0\"; exit 7",
            &format!("{d}/id1"),
        ],
    )
    .await;
    assert_eq!(f.status.code(), Some(7), "{}\n{}", f.stdout, f.stderr);
    let id = std::fs::read_to_string(dir.path().join("id1")).unwrap();
    let info = ended(&lc, id.trim()).await;
    assert_eq!(info.state, LeaseState::Released);
    assert_eq!(info.outcome.as_deref(), Some("exit_7"));
    assert_eq!(info.job_type, "exit7");
    assert_eq!(info.addon_id, "lullctl");

    // A command that is not found: 127, and the lease is released.
    let f = lullctl_out(&s, &["run", "--cost", "10", "--", "/nonexistent/cmd"]).await;
    assert_eq!(f.status.code(), Some(127), "{}", f.stderr);

    // Revoked: the command gets SIGTERM (its trap writes a file and exits
    // 42), lullctl exits with the command's code. The command runs past the
    // 2 s TTL first, so heartbeats are working.
    let script = "echo $LULL_LEASE_ID > \"$0\"; trap 'echo term > \"$0.term\"; exit 42' TERM; \
                  sleep 60 & wait";
    let mut svc = lullctl(
        &s,
        &[
            "run",
            "--cost",
            "10",
            "--host",
            HOST,
            "--",
            "sh",
            "-c",
            script,
            &format!("{d}/id2"),
        ],
    )
    .start()
    .unwrap();
    let id = file_text(&dir.path().join("id2"), &svc).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(svc.is_running(), "{}", svc.logs());
    assert!(is_active(&status(&lc).await, &id), "{}", svc.logs());
    let f = lullctl_out(&s, &["revoke", &id, "--reason", "operator says stop"]).await;
    assert_eq!(f.status.code(), Some(0), "{}{}", f.stdout, f.stderr);
    assert!(f.stdout.contains("revoked"), "{}", f.stdout);
    let st = svc
        .wait(Duration::from_secs(10))
        .await
        .expect("lullctl exits");
    assert_eq!(st.code(), Some(42), "{}", svc.logs());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("id2.term"))
            .unwrap()
            .trim(),
        "term"
    );
    assert!(svc.stderr().contains("revoked"), "{}", svc.logs());
    let info = ended(&lc, &id).await;
    assert_eq!(info.state, LeaseState::Revoked);
    // Revoking again: already ended, exit 1.
    let f = lullctl_out(&s, &["revoke", &id]).await;
    assert_eq!(f.status.code(), Some(1), "{}{}", f.stdout, f.stderr);

    // Revoked, and the command ignores SIGTERM: SIGKILL after --kill-after;
    // lullctl exits 128 + 9.
    let script = "trap '' TERM; echo $LULL_LEASE_ID > \"$0\"; sleep 60";
    let mut svc = lullctl(
        &s,
        &[
            "run",
            "--cost",
            "10",
            "--host",
            HOST,
            "--kill-after",
            "1",
            "--",
            "sh",
            "-c",
            script,
            &format!("{d}/id3"),
        ],
    )
    .start()
    .unwrap();
    let id = file_text(&dir.path().join("id3"), &svc).await;
    assert!(lc.revoke(&id, None).await.unwrap().ok);
    let t0 = Instant::now();
    let st = svc
        .wait(Duration::from_secs(10))
        .await
        .expect("lullctl exits");
    assert_eq!(st.code(), Some(137), "{}", svc.logs());
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t0.elapsed()
    );
    assert!(svc.stderr().contains("SIGKILL"), "{}", svc.logs());

    // SIGTERM to lullctl is forwarded to the command; the lease is released
    // with the command's outcome.
    let script = "echo $LULL_LEASE_ID > \"$0\"; trap 'exit 5' TERM; sleep 60 & wait";
    let mut svc = lullctl(
        &s,
        &[
            "run",
            "--cost",
            "10",
            "--",
            "sh",
            "-c",
            script,
            &format!("{d}/id4"),
        ],
    )
    .start()
    .unwrap();
    let id = file_text(&dir.path().join("id4"), &svc).await;
    svc.signal(Signal::SIGTERM);
    let st = svc
        .wait(Duration::from_secs(10))
        .await
        .expect("lullctl exits");
    assert_eq!(st.code(), Some(5), "{}", svc.logs());
    let info = ended(&lc, &id).await;
    assert_eq!(info.state, LeaseState::Released);
    assert_eq!(info.outcome.as_deref(), Some("exit_5"));

    // Waiting while denied, then running once the capacity frees up.
    let big = lc.acquire(req("holder", 100)).await.expect("grant");
    let f = lullctl_out(
        &s,
        &[
            "run",
            "--cost",
            "100",
            "--host",
            HOST,
            "--wait-timeout",
            "0",
            "--",
            "true",
        ],
    )
    .await;
    assert_eq!(f.status.code(), Some(75), "{}", f.stderr);
    assert!(f.stderr.contains("capacity_exceeded"), "{}", f.stderr);
    let mut svc = lullctl(
        &s,
        &[
            "run",
            "--cost",
            "100",
            "--host",
            HOST,
            "--wait-timeout",
            "30",
            "--",
            "sh",
            "-c",
            "echo $LULL_LEASE_ID > \"$0\"; exit 3",
            &format!("{d}/id5"),
        ],
    )
    .start()
    .unwrap();
    // On a terminal (a pty from util-linux `script`), the wait is one live
    // line redrawn in place, with a countdown.
    let on_tty = terminal_run(
        &s,
        &format!("run --cost 100 --host {HOST} --wait-timeout 30 -- sh -c 'exit 4'"),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(svc.is_running(), "{}", svc.logs());
    assert!(!dir.path().join("id5").exists());
    assert!(
        svc.stderr().contains("waiting for a lease") && svc.stderr().contains("capacity_exceeded"),
        "{}",
        svc.logs()
    );
    // The operator views show the holder.
    let f = lullctl_out(&s, &["status"]).await;
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    for want in [
        "HOSTS",
        HOST,
        "ACTIVE LEASES",
        big.lease_id(),
        "ADDONS",
        "holder",
    ] {
        assert!(f.stdout.contains(want), "{want} missing:\n{}", f.stdout);
    }
    let f = lullctl_out(&s, &["--json", "leases"]).await;
    // One shape with or without --recent; times as RFC 3339.
    let v: serde_json::Value = serde_json::from_str(&f.stdout).expect("leases --json");
    let active = v["active"].as_array().expect("active leases");
    assert!(v["recent"].as_array().is_some_and(|r| r.is_empty()), "{v}");
    let mine = active
        .iter()
        .find(|l| l["lease_id"] == big.lease_id())
        .expect("the big lease is listed");
    assert!(
        mine["granted_at"].as_str().is_some_and(|t| t.contains('T')),
        "{mine}"
    );
    let f = lullctl_out(&s, &["leases", "--recent"]).await;
    assert!(
        f.stdout.contains("RECENT") && f.stdout.contains("exit_7"),
        "{}",
        f.stdout
    );
    let f = lullctl_out(&s, &["--json", "status"]).await;
    let st: serde_json::Value = serde_json::from_str(&f.stdout).expect("status --json");
    assert!(st["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .any(|h| h["host_id"] == HOST && h["used_units"] == 100));

    if let Some(tty) = &on_tty {
        let out = tty.stdout();
        assert!(
            out.contains("\r\x1b[2Kwaiting for a lease:") && out.contains("[capacity_exceeded]"),
            "{out:?}"
        );
        assert!(
            out.contains("- retry in ") && out.contains("giving up in "),
            "{out:?}"
        );
    }
    assert!(big.release("done").await.unwrap().ok);
    let st = svc
        .wait(Duration::from_secs(15))
        .await
        .expect("lullctl exits");
    assert_eq!(st.code(), Some(3), "{}", svc.logs());
    if let Some(mut tty) = on_tty {
        let st = tty
            .wait(Duration::from_secs(15))
            .await
            .expect("script exits");
        assert_eq!(st.code(), Some(4), "{}", tty.logs());
        assert!(tty.stdout().contains("granted on"), "{}", tty.logs());
    }
    let id = std::fs::read_to_string(dir.path().join("id5")).unwrap();
    assert_eq!(
        ended(&lc, id.trim()).await.outcome.as_deref(),
        Some("exit_3")
    );

    // The same through the coordinator's queue.
    let big = lc.acquire(req("holder", 100)).await.expect("grant");
    let mut svc = lullctl(
        &s,
        &[
            "run",
            "--cost",
            "100",
            "--host",
            HOST,
            "--queue",
            "--wait-timeout",
            "30",
            "--",
            "true",
        ],
    )
    .start()
    .unwrap();
    let queued = wait_for(Duration::from_secs(10), || {
        let lc = lc.clone();
        async move { (lc.status().await.ok()?.queue_length == 1).then_some(()) }
    })
    .await;
    assert!(queued.is_ok(), "{}", svc.logs());
    assert!(svc.stderr().contains("queued"), "{}", svc.logs());
    // A second waiter interrupted while queued withdraws its request and
    // exits 130.
    let mut quitter = lullctl(
        &s,
        &[
            "run", "--cost", "100", "--host", HOST, "--queue", "--", "true",
        ],
    )
    .start()
    .unwrap();
    let queued = wait_for(Duration::from_secs(10), || {
        let lc = lc.clone();
        async move { (lc.status().await.ok()?.queue_length == 2).then_some(()) }
    })
    .await;
    assert!(queued.is_ok(), "{}", quitter.logs());
    quitter.signal(Signal::SIGINT);
    let st = quitter
        .wait(Duration::from_secs(10))
        .await
        .expect("lullctl exits");
    assert_eq!(st.code(), Some(130), "{}", quitter.logs());
    assert_eq!(status(&lc).await.queue_length, 1);
    assert!(big.release("done").await.unwrap().ok);
    let st = svc
        .wait(Duration::from_secs(15))
        .await
        .expect("lullctl exits");
    assert_eq!(st.code(), Some(0), "{}", svc.logs());

    // Bad requests are usage errors.
    let f = lullctl_out(&s, &["run", "--cost", "0", "--", "true"]).await;
    assert_eq!(f.status.code(), Some(2), "{}", f.stderr);

    // Reports: validated, published with the record id, resend deduplicated.
    let rep = lull_proto::msg::worker::example_report(
        "lc-exec-1",
        "lc_worker",
        lull_common::runtime::now_unix() - 10.0,
        1500.0,
    );
    let path = dir.path().join("report.json");
    std::fs::write(&path, serde_json::to_vec(&rep).unwrap()).unwrap();
    let p = path.display().to_string();
    let f = lullctl_out(&s, &["--json", "report", "worker", &p]).await;
    assert_eq!(f.status.code(), Some(0), "{}{}", f.stdout, f.stderr);
    let v: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    assert_eq!(v["subject"], "lull.report.worker.web-1.lc_worker");
    assert_eq!(v["stream"], "LULL_REPORTS");
    assert_eq!(v["duplicate"], false);
    let f = lullctl_out(&s, &["report", "worker", &p]).await;
    assert_eq!(f.status.code(), Some(0), "{}{}", f.stdout, f.stderr);
    assert!(f.stdout.contains("duplicate"), "{}", f.stdout);
    let f = lullctl_out(&s, &["report", "build", &p]).await;
    assert_eq!(f.status.code(), Some(2), "{}", f.stderr);
}

/// Runs `lullctl ARGS` on a pseudo-terminal with util-linux `script`, or
/// returns `None` (with a printed reason) when `script` is not installed.
fn terminal_run(s: &Setup, args: &str) -> Option<Service> {
    let Some(script) = on_path("script") else {
        println!("terminal check skipped: util-linux `script` not found on PATH");
        return None;
    };
    let lullctl = lull_tests::bins::lull_binary("lullctl").expect("lullctl built");
    let cmd = format!("{} {args}", lullctl.display());
    Some(
        Service::builder("script")
            .binary(script)
            .envs(s.infra.lull_env())
            .args(["-qfec", &cmd, "/dev/null"])
            .start()
            .expect("script starts"),
    )
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

// ----- Python example addon ------------------------------------------------

fn python() -> Option<PathBuf> {
    on_path("python3")
}

/// Makes sure nats-py is importable, installing it with pip if needed.
fn ensure_nats_py(py: &Path) -> Result<(), String> {
    let has = |py: &Path| {
        std::process::Command::new(py)
            .args(["-c", "import nats"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if has(py) {
        return Ok(());
    }
    let out = std::process::Command::new(py)
        .args(["-m", "pip", "install", "--quiet", "nats-py"])
        .output()
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if has(py) {
        Ok(())
    } else {
        Err(format!(
            "pip install nats-py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn addon_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/python_addon/lull_addon.py")
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example_addon() {
    let Some(py) = python() else {
        println!("SKIPPED python_example_addon: python3 not found on PATH");
        return;
    };
    if let Err(why) = ensure_nats_py(&py) {
        println!("SKIPPED python_example_addon: {why}");
        return;
    }
    let s = setup().await;
    let lc = LeaseClient::new(s.client.clone(), Subjects::default());
    let script = addon_script();
    let addon = |extra: &[&str]| {
        let mut args = vec![
            script.display().to_string(),
            "--nats-url".into(),
            s.infra.nats.url(),
            "--host".into(),
            HOST.into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        Service::builder("python3").binary(&py).args(args)
    };

    // Work that lasts longer than the TTL: heartbeats keep the lease, the
    // progress reports land, and the lease is released as success.
    let f = addon(&["--work-sec", "4", "--steps", "4", "--cost", "20"])
        .run(Duration::from_secs(60))
        .await
        .expect("addon finished");
    assert_eq!(f.status.code(), Some(0), "{}\n{}", f.stdout, f.stderr);
    let lines = json_lines(&f.stdout);
    let granted = lines
        .iter()
        .find(|l| l["event"] == "granted")
        .expect("granted line");
    assert_eq!(granted["host_id"], HOST);
    let id = granted["lease_id"].as_str().unwrap().to_string();
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "progress").count(),
        4,
        "{}",
        f.stdout
    );
    assert!(lines
        .iter()
        .any(|l| l["event"] == "released" && l["ok"] == true));
    let info = ended(&lc, &id).await;
    assert_eq!(info.state, LeaseState::Released);
    assert_eq!(info.outcome.as_deref(), Some("success"));
    assert_eq!(info.progress_pct, Some(100.0));
    assert_eq!(info.addon_id, "python_example");

    // A revoke stops the work at once; the addon exits 3.
    let mut svc = addon(&["--work-sec", "60", "--steps", "60"])
        .start()
        .unwrap();
    let id = wait_for(Duration::from_secs(20), || {
        let out = svc.stdout();
        async move {
            json_lines(&out)
                .into_iter()
                .find(|l| l["event"] == "granted")
                .and_then(|l| l["lease_id"].as_str().map(str::to_string))
        }
    })
    .await
    .unwrap_or_else(|_| panic!("addon never granted\n{}", svc.logs()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(is_active(&status(&lc).await, &id), "{}", svc.logs());
    assert!(lc.revoke(&id, Some("make room".into())).await.unwrap().ok);
    let st = svc
        .wait(Duration::from_secs(10))
        .await
        .expect("addon exits");
    assert_eq!(st.code(), Some(3), "{}", svc.logs());
    let lines = json_lines(&svc.stdout());
    let rev = lines
        .iter()
        .find(|l| l["event"] == "revoked")
        .expect("revoked line");
    assert_eq!(rev["state"], "REVOKED");
    assert_eq!(rev["reason"], "make room");

    // Denied until the holder releases, then granted (retry_after honoured).
    let big = lc.acquire(req("holder", 100)).await.expect("grant");
    let mut svc = addon(&["--work-sec", "0.5", "--steps", "1", "--cost", "100"])
        .start()
        .unwrap();
    let denied = wait_for(Duration::from_secs(10), || {
        let out = svc.stdout();
        async move {
            json_lines(&out)
                .into_iter()
                .find(|l| l["event"] == "denied")
        }
    })
    .await
    .unwrap_or_else(|_| panic!("addon never denied\n{}", svc.logs()));
    assert_eq!(denied["reason_code"], "capacity_exceeded");
    hold(big).await;
    let st = svc
        .wait(Duration::from_secs(20))
        .await
        .expect("addon exits");
    assert_eq!(st.code(), Some(0), "{}", svc.logs());
}

async fn hold(g: LeaseGuard) {
    assert!(g.release("done").await.unwrap().ok);
}
