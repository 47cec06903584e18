//! lullctl's exit codes tell "busy, ask later" (75) from "could not ask"
//! (69), as docs/sdk.md documents, against a real nats-server: NATS down,
//! and NATS up with no coordinator behind it. The codes for a denial (75), a
//! failing command (its code) and a revoke (the command's code after
//! SIGTERM) are covered with a coordinator in lease_clients_e2e.rs.

use std::time::Duration;

use lull_tests::{free_port, NatsServer, Service};

/// Runs lullctl with `env` and `args`; returns (code, stderr).
async fn lullctl(env: &[(&str, String)], args: &[&str]) -> (Option<i32>, String) {
    let f = Service::builder("lullctl")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args.iter().copied())
        .run(Duration::from_secs(30))
        .await
        .expect("lullctl finished");
    (f.status.code(), f.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_is_69_for_every_command() {
    // Nothing listens on this port.
    let url = format!("nats://127.0.0.1:{}", free_port().unwrap());
    let env = [("LULL_NATS_URL", url.clone())];
    for args in [
        &["run", "--cost", "10", "--", "true"][..],
        &["run", "--cost", "10", "--wait-timeout", "2", "--", "true"][..],
        &["hosts"][..],
        &["status"][..],
    ] {
        let (code, err) = lullctl(&env, args).await;
        assert_eq!(code, Some(69), "{args:?}: {err}");
        assert!(
            err.contains("lullctl: error: cannot reach NATS"),
            "{args:?}: {err}"
        );
        assert!(err.contains(&url), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_coordinator_is_69_not_75() {
    let nats = NatsServer::start().await.expect("nats-server");
    let env = [("LULL_NATS_URL", nats.url())];
    // Asked once, and asked again until a 2 s wait ran out: nobody answered
    // either time, so it is "could not ask", not "busy".
    for args in [
        &["run", "--cost", "10", "--wait-timeout", "0", "--", "true"][..],
        &["run", "--cost", "10", "--wait-timeout", "2", "--", "true"][..],
        &[
            "run",
            "--cost",
            "10",
            "--queue",
            "--wait-timeout",
            "2",
            "--",
            "true",
        ][..],
        &["--timeout", "1", "hosts"][..],
        &["--timeout", "1", "status"][..],
    ] {
        let (code, err) = lullctl(&env, args).await;
        assert_eq!(code, Some(69), "{args:?}: {err}");
        assert!(err.starts_with("lullctl: "), "{args:?}: {err}");
    }
}
