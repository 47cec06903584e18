//! Tests of the harness itself: real servers start and work, restarts keep
//! JetStream data, and nothing survives a dropped harness, a panicking test or
//! a test process that dies abruptly.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::stream;
use lull_tests::bins::{self, SearchPath};
use lull_tests::{
    free_port, http_get, scrape, wait_until, HarnessError, Infra, NatsServer, Postgres, Service,
    INSTALL_HINT,
};
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// Whether `pid` is a live process (a zombie waiting for init counts as dead).
fn alive(pid: u32) -> bool {
    if kill(Pid::from_raw(pid as i32), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.trim_start().chars().next());
            state != Some('Z')
        }
        Err(_) => false,
    }
}

/// `parent` and its children (e.g. a postmaster and its backends, which
/// Postgres puts in sessions of their own, so not in the postmaster's group).
fn with_children(parent: u32) -> Vec<u32> {
    let mut out = vec![parent];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the ")": state ppid pgrp ...
            let rest: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if rest.get(1).and_then(|g| g.parse::<u32>().ok()) == Some(parent) {
                out.push(pid);
            }
        }
    }
    out
}

async fn all_dead(pids: &[u32]) -> bool {
    wait_until(Duration::from_secs(10), || async {
        pids.iter().all(|p| !alive(*p))
    })
    .await
    .is_ok()
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test]
async fn nats_starts_with_jetstream() {
    let nats = NatsServer::start().await.unwrap();
    assert_ne!(nats.port(), 4222, "must not use the system NATS");
    assert!(nats.url().starts_with("nats://127.0.0.1:"));
    let js = nats.jetstream().await.unwrap();
    let mut s = js
        .create_stream(stream::Config {
            name: "HARNESS".into(),
            subjects: vec!["harness.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish("harness.one", "hello".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 1);
    let msg = s
        .get_last_raw_message_by_subject("harness.one")
        .await
        .unwrap();
    assert_eq!(&msg.payload[..], b"hello");
    // The store lives in the harness's temp dir.
    assert!(
        nats.store_dir().join("jetstream").exists(),
        "{}",
        nats.logs()
    );
    let varz = scrape(&format!("{}/varz", nats.monitor_url()))
        .await
        .unwrap();
    assert!(
        varz.contains(&format!("\"port\": {}", nats.port())),
        "{varz}"
    );
}

#[tokio::test]
async fn nats_extra_config_is_applied() {
    let nats = NatsServer::start_with_config("authorization { user: alice, password: s3cret }")
        .await
        .unwrap();
    assert!(
        nats.connect().await.is_err(),
        "anonymous connect must be refused"
    );
    let client =
        async_nats::ConnectOptions::with_user_and_password("alice".into(), "s3cret".into())
            .connect(nats.url())
            .await
            .unwrap();
    client.flush().await.unwrap();
}

#[tokio::test]
async fn postgres_query_works() {
    let pg = Postgres::start().await.unwrap();
    assert_ne!(pg.port(), 5432, "must not use the system Postgres");
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{}/lull", pg.port())
    );
    let client = pg.client().await.unwrap();
    let row = client
        .query_one(
            "SELECT current_database(), current_user, current_setting('server_encoding'), 1 + 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "lull");
    assert_eq!(row.get::<_, String>(1), "postgres");
    assert_eq!(row.get::<_, String>(2), "UTF8");
    assert_eq!(row.get::<_, i32>(3), 2);
    client
        .batch_execute("CREATE TABLE t (id int primary key, doc jsonb); INSERT INTO t VALUES (1, '{\"a\": 1}')")
        .await
        .unwrap();
    // The URL works for a plain tokio-postgres connect too (as deadpool uses it).
    let (other, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n: i64 = other
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // The unix socket is inside the harness's dir.
    assert!(pg
        .socket_dir()
        .join(format!(".s.PGSQL.{}", pg.port()))
        .exists());
    // Extra databases.
    let url = pg.create_database("second").await.unwrap();
    assert!(url.ends_with("/second"));
    let second = pg.client_for("second").await.unwrap();
    second.batch_execute("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn postgres_restart_keeps_data() {
    let mut pg = Postgres::start().await.unwrap();
    let port = pg.port();
    pg.client()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .await
        .unwrap();
    pg.stop().await.unwrap();
    assert!(!pg.is_running());
    assert!(pg.client().await.is_err());
    pg.start_again().await.unwrap();
    assert_eq!(pg.port(), port);
    let v: String = pg
        .client()
        .await
        .unwrap()
        .query_one("SELECT v FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "still here");
}

#[tokio::test]
async fn infra_starts_both() {
    let infra = Infra::start().await.unwrap();
    let env = infra.lull_env();
    assert!(env.contains(&("LULL_NATS_URL".into(), infra.nats.url())));
    assert!(env.contains(&("LULL_DATABASE_URL".into(), infra.pg.url())));
    infra.nats.connect().await.unwrap().flush().await.unwrap();
    infra
        .pg
        .client()
        .await
        .unwrap()
        .batch_execute("SELECT 1")
        .await
        .unwrap();
}

async fn restart_keeps_message(crash: bool) {
    let mut nats = NatsServer::start().await.unwrap();
    let (port, store) = (nats.port(), nats.store_dir());
    {
        let js = nats.jetstream().await.unwrap();
        js.create_stream(stream::Config {
            name: "DURABLE".into(),
            subjects: vec!["durable.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
        js.publish("durable.x", "kept".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let old_pid = nats.pid().unwrap();
    if crash {
        assert!(nats.kill().is_some());
    } else {
        nats.stop().await.unwrap();
    }
    assert!(!nats.is_running());
    assert!(!alive(old_pid));
    assert!(!port_open(port), "port {port} still accepts connections");
    nats.start_again().await.unwrap();
    assert_eq!(nats.port(), port);
    assert_eq!(nats.store_dir(), store);
    let js = nats.jetstream().await.unwrap();
    let mut s = js.get_stream("DURABLE").await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 1, "{}", nats.logs());
    let msg = s
        .get_last_raw_message_by_subject("durable.x")
        .await
        .unwrap();
    assert_eq!(&msg.payload[..], b"kept");
}

#[tokio::test]
async fn nats_stop_and_start_again_keeps_jetstream_message() {
    restart_keeps_message(false).await;
}

#[tokio::test]
async fn nats_kill_and_start_again_keeps_jetstream_message() {
    restart_keeps_message(true).await;
}

#[tokio::test]
async fn start_again_while_running_is_refused() {
    let mut nats = NatsServer::start().await.unwrap();
    assert!(nats.start_again().await.is_err());
    assert!(nats.is_running());
}

/// A shell standing in for a Lull binary.
fn shell(script: &str) -> lull_tests::ServiceBuilder {
    Service::builder("sh")
        .binary("/bin/sh")
        .args(["-c", script])
}

#[tokio::test]
async fn service_captures_output_and_terminates_gracefully() {
    let mut svc = shell("echo out-$GREETING; echo err-line >&2; trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done")
        .env("GREETING", "hello")
        .start()
        .unwrap();
    assert!(svc.is_running());
    wait_until(Duration::from_secs(5), || async {
        svc.stdout().contains("out-hello")
    })
    .await
    .unwrap();
    assert!(svc.stderr().contains("err-line"));
    assert!(svc.logs().contains("out-hello") && svc.logs().contains("err-line"));
    let st = svc.terminate(Duration::from_secs(5)).await.unwrap();
    assert!(st.success(), "{st}: {}", svc.logs());
    assert!(svc.stdout().contains("bye"));
    assert!(!svc.is_running());
}

#[tokio::test]
async fn service_kill9_and_terminate_timeout() {
    use std::os::unix::process::ExitStatusExt;
    let mut svc = shell("while :; do sleep 0.05; done").start().unwrap();
    let pid = svc.pid();
    assert_eq!(svc.kill9().signal(), Some(9));
    assert!(!alive(pid));

    // A process ignoring SIGTERM is killed after the timeout, with an error.
    let mut stubborn = shell("trap '' TERM; echo ready; while :; do sleep 0.05; done")
        .start()
        .unwrap();
    wait_until(Duration::from_secs(5), || async {
        stubborn.stdout().contains("ready")
    })
    .await
    .unwrap();
    let err = stubborn
        .terminate(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, HarnessError::Timeout { .. }), "{err}");
    assert!(!stubborn.is_running());
}

#[tokio::test]
async fn service_run_collects_output() {
    let done = shell("echo one-shot; exit 3")
        .run(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(done.status.code(), Some(3));
    assert_eq!(done.stdout.trim(), "one-shot");
    let hung = shell("sleep 30").run(Duration::from_millis(200)).await;
    assert!(matches!(hung, Err(HarnessError::Timeout { .. })));
}

#[test]
fn lull_binaries_are_looked_up_in_the_profile_dir() {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        bins::lull_bin_dirs().contains(&profile),
        "{:?}",
        bins::lull_bin_dirs()
    );
    let err = Service::builder("lull-no-such-binary")
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("cargo build --workspace"), "{err}");
    assert!(err.contains(&profile.display().to_string()), "{err}");
}

#[test]
fn missing_binaries_name_the_install_command() {
    let empty = tempfile::tempdir().unwrap();
    let sp = SearchPath {
        path: vec![empty.path().into()],
        pg_root: empty.path().join("postgresql"),
        ..Default::default()
    };
    for err in [
        bins::nats_server(&sp).unwrap_err().to_string(),
        bins::postgres(&sp).unwrap_err().to_string(),
    ] {
        assert!(err.contains(INSTALL_HINT), "{err}");
        assert!(
            err.contains("apt-get install -y nats-server postgresql"),
            "{err}"
        );
        assert!(err.contains(&empty.path().display().to_string()), "{err}");
    }
    assert!(bins::nats_server(&sp)
        .unwrap_err()
        .to_string()
        .contains("`nats-server` not found"));
    let bad_override = SearchPath {
        nats_override: Some(empty.path().join("nope")),
        ..SearchPath::from_env()
    };
    assert!(bins::nats_server(&bad_override)
        .unwrap_err()
        .to_string()
        .contains(INSTALL_HINT));
}

#[test]
fn real_binaries_are_found() {
    let sp = SearchPath::from_env();
    bins::nats_server(&sp).unwrap();
    bins::postgres(&sp).unwrap();
}

#[test]
fn free_ports_are_unique_and_never_system_ports() {
    let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
    let set: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(set.len(), ports.len());
    assert!(!set.contains(&4222) && !set.contains(&5432));
}

#[tokio::test]
async fn wait_until_times_out_and_succeeds() {
    let err = wait_until(Duration::from_millis(120), || async { false })
        .await
        .unwrap_err();
    assert!(matches!(err, HarnessError::Timeout { .. }));
    let mut n = 0;
    wait_until(Duration::from_secs(2), || {
        n += 1;
        let done = n >= 3;
        async move { done }
    })
    .await
    .unwrap();
    assert_eq!(n, 3);
    let v = lull_tests::wait_for(Duration::from_secs(1), || async { Some(7) })
        .await
        .unwrap();
    assert_eq!(v, 7);
}

#[tokio::test]
async fn http_helpers_report_status_and_errors() {
    let nats = NatsServer::start().await.unwrap();
    let ok = http_get(&format!("{}/healthz", nats.monitor_url()))
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let missing = http_get(&format!("{}/no-such-page", nats.monitor_url()))
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    assert!(scrape(&format!("{}/no-such-page", nats.monitor_url()))
        .await
        .is_err());
    let closed = free_port().unwrap();
    assert!(scrape(&format!("http://127.0.0.1:{closed}/metrics"))
        .await
        .is_err());
}

#[tokio::test]
async fn parallel_servers_get_distinct_ports() {
    let (a, b, c, d) = tokio::try_join!(
        NatsServer::start(),
        NatsServer::start(),
        Postgres::start(),
        Postgres::start()
    )
    .unwrap();
    let ports: HashSet<u16> = [a.port(), b.port(), c.port(), d.port()].into();
    assert_eq!(ports.len(), 4);
    c.client()
        .await
        .unwrap()
        .batch_execute("SELECT 1")
        .await
        .unwrap();
    d.client()
        .await
        .unwrap()
        .batch_execute("SELECT 1")
        .await
        .unwrap();
}

/// Pids and dirs of a running harness: NATS, the postmaster with all its
/// group, and a service.
struct Started {
    infra: Infra,
    svc: Service,
}

async fn start_everything() -> Started {
    let infra = Infra::start().await.unwrap();
    // Open a connection so a backend process exists too.
    let client = infra.pg.client().await.unwrap();
    client.batch_execute("SELECT 1").await.unwrap();
    std::mem::forget(client);
    let svc = shell("while :; do sleep 0.05; done").start().unwrap();
    Started { infra, svc }
}

fn pids_and_dirs(s: &Started) -> (Vec<u32>, Vec<PathBuf>) {
    let mut pids = vec![s.infra.nats.pid().unwrap(), s.svc.pid()];
    pids.extend(with_children(s.infra.pg.pid().unwrap()));
    let dirs = vec![
        s.infra.nats.dir().to_path_buf(),
        s.infra.pg.data_dir().parent().unwrap().to_path_buf(),
        s.svc.dir().to_path_buf(),
    ];
    (pids, dirs)
}

#[tokio::test]
async fn drop_kills_everything_and_removes_dirs() {
    let started = start_everything().await;
    let (pids, dirs) = pids_and_dirs(&started);
    // postmaster + at least checkpointer/bgwriter/walwriter/backend.
    assert!(pids.len() >= 5, "{pids:?}");
    assert!(pids.iter().all(|p| alive(*p)));
    let (nats_port, pg_port) = (started.infra.nats.port(), started.infra.pg.port());
    drop(started);
    assert!(
        all_dead(&pids).await,
        "survivors: {:?}",
        pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
    assert!(!port_open(nats_port) && !port_open(pg_port));
}

/// Env var switching [`child_harness_process`] on; its value is the mode.
const CHILD_MODE: &str = "LULL_HARNESS_CHILD_MODE";
/// Env var naming the file the child writes its pids and dirs to.
const CHILD_REPORT: &str = "LULL_HARNESS_CHILD_REPORT";

/// Not a test by itself: run by [`run_child`] in a separate test process,
/// which starts everything, reports pids and dirs, then panics or aborts.
#[tokio::test]
#[ignore = "helper run by other tests in a child process"]
async fn child_harness_process() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let report = std::env::var(CHILD_REPORT).unwrap();
    let started = start_everything().await;
    let (pids, dirs) = pids_and_dirs(&started);
    let text = format!(
        "{}\n{}\n",
        pids.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::fs::write(format!("{report}.tmp"), text).unwrap();
    std::fs::rename(format!("{report}.tmp"), &report).unwrap();
    match mode.as_str() {
        "panic" => panic!("deliberate panic with servers running"),
        // Dies without running any destructor, like a crash or SIGKILL.
        _ => std::process::abort(),
    }
}

/// Runs [`child_harness_process`] in a child test process and returns the
/// pids and dirs it reported.
fn run_child(mode: &str) -> (Vec<u32>, Vec<PathBuf>) {
    let report = tempfile::tempdir().unwrap();
    let report_file = report.path().join("report");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_harness_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .env(CHILD_REPORT, &report_file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child must fail");
    let text = std::fs::read_to_string(&report_file).unwrap_or_else(|e| {
        panic!(
            "no report ({e}); child stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut lines = text.lines();
    let pids = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let dirs = lines.map(PathBuf::from).collect();
    (pids, dirs)
}

#[tokio::test]
async fn panicking_test_leaves_no_processes_or_dirs() {
    let (pids, dirs) = run_child("panic");
    assert!(pids.len() >= 5, "{pids:?}");
    assert!(
        all_dead(&pids).await,
        "survivors: {:?}",
        pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
}

#[tokio::test]
async fn aborted_test_process_leaves_no_processes() {
    let (pids, dirs) = run_child("abort");
    let dead = all_dead(&pids).await;
    // No destructor ran: the dirs and the postmaster's SysV segment are left
    // for the janitor, which removes them since their owner is dead.
    let shmid: Option<libc::c_int> = std::fs::read_to_string(dirs[1].join("data/postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().nth(6)?.split_whitespace().nth(1)?.parse().ok());
    let swept = lull_tests::janitor::sweep_now();
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    assert!(pids.len() >= 5, "{pids:?}");
    assert!(
        dead,
        "survivors: {:?}",
        pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    for d in &dirs {
        assert!(swept.contains(d), "{d:?} not swept: {swept:?}");
    }
    let shmid = shmid.expect("postmaster.pid names a shared memory segment");
    // SAFETY: IPC_STAT into a zeroed struct.
    let exists = unsafe {
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        libc::shmctl(shmid, libc::IPC_STAT, &mut ds) == 0
    };
    assert!(!exists, "shared memory segment {shmid} leaked");
}
