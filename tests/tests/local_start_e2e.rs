//! The README's first-run path: `deploy/local/run.sh --demo` starts NATS,
//! Postgres, a coordinator and an agent, writes lullctl's context file, and
//! the README's first lease (`lullctl run --cost 10 -- sleep 3`) is granted
//! with no `LULL_NATS_URL` exported. Ctrl-C (SIGTERM here) stops it all
//! with exit 0 and removes the context file. The build step is skipped
//! (`LULL_LOCAL_BIN_DIR`): a cargo build inside `cargo test` would wait on
//! the build directory's lock.

use std::path::Path;
use std::time::Duration;

use lull_tests::{free_port, wait_until, Service};
use nix::sys::signal::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sh_then_the_readme_lease_with_no_export() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let context = tmp.path().join("ctx/lullctl.toml");
    let lullctl = lull_tests::bins::lull_binary("lullctl").expect("lullctl built");
    let bin_dir = lullctl.parent().unwrap().to_path_buf();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/run.sh");
    let port = || free_port().unwrap().to_string();
    let mut run = Service::builder("run.sh")
        .binary(&script)
        .arg("--demo")
        .env("LULL_LOCAL_DIR", &state)
        .env("LULL_LOCAL_NATS_PORT", port())
        .env("LULL_LOCAL_PG_PORT", port())
        .env("LULL_LOCAL_COORD_METRICS", format!("127.0.0.1:{}", port()))
        .env("LULL_LOCAL_AGENT_METRICS", format!("127.0.0.1:{}", port()))
        .env("LULL_LOCAL_BIN_DIR", &bin_dir)
        .env("LULL_CONTEXT", &context)
        .start()
        .expect("run.sh starts");
    let up = wait_until(Duration::from_secs(120), || {
        let running = run.stdout().contains("Lull is running");
        async move { running }
    })
    .await;
    assert!(up.is_ok(), "run.sh never came up\n{}", run.logs());
    let out = run.stdout();
    assert!(
        out.contains("export LULL_NATS_URL=nats://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("demo thresholds"), "{out}");
    let ctx = std::fs::read_to_string(&context).expect("context file written");
    assert!(ctx.contains("nats_url = \"nats://127.0.0.1:"), "{ctx}");

    // The README's third command, in "another terminal": no LULL_* but the
    // context file's location (a test cannot use the real ~/.config).
    let f = Service::builder("lullctl")
        .env("LULL_CONTEXT", &context)
        .args([
            "run",
            "--cost",
            "10",
            "--wait-timeout",
            "90",
            "--",
            "sleep",
            "3",
        ])
        .run(Duration::from_secs(120))
        .await
        .expect("lullctl finished");
    assert_eq!(
        f.status.code(),
        Some(0),
        "{}\n{}\n{}",
        f.stdout,
        f.stderr,
        run.logs()
    );

    // Logs are plain text.
    let log = std::fs::read_to_string(state.join("logs/coordinator.log")).unwrap();
    assert!(!log.contains('\u{1b}'), "ANSI codes in the log:\n{log}");

    run.signal(Signal::SIGTERM);
    let st = run
        .wait(Duration::from_secs(60))
        .await
        .expect("run.sh stops");
    assert_eq!(st.code(), Some(0), "{}", run.logs());
    assert!(!context.exists(), "context file left behind");
}
