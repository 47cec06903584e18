//! The files under `deploy/`, checked with the real tools where they exist
//! (installed by `scripts/install-deploy-tools.sh` when missing):
//! Prometheus rules (`promtool check rules` and `promtool test rules`, with
//! every alert covered firing and not firing), the Prometheus configs,
//! Grafana provisioning and dashboards, the compose file (`docker compose
//! config`), the systemd units (`systemd-analyze verify`) and the
//! Kubernetes manifests (kustomize and schema validation).

mod deploy_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use deploy_support::*;
use serde_yaml::Value;

/// Alerts the operator needs (issue: agent down or stale, PANIC, lease
/// denials, lease queue, report ingest, regions, workers, coordinator, DB;
/// no leader and more than one leader among several coordinators).
const REQUIRED_ALERTS: &[&str] = &[
    "LullAgentDown",
    "LullHostStale",
    "LullHostPanic",
    "LullLeaseDenialsSpiking",
    "LullLeaseQueueGrowing",
    "LullReportIngestFailing",
    "LullReportIngestLagging",
    "LullRegionFatigued",
    "LullRegionOutlawed",
    "LullWorkerLate",
    "LullWorkerMissed",
    "LullWorkerDegraded",
    "LullCoordinatorDown",
    "LullCoordinatorNoLeader",
    "LullCoordinatorMultipleLeaders",
    "LullDbWriteLag",
];

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(|s| s.as_slice()).unwrap_or(&[])
}

/// Every alert rule of alerts.yml: name -> rule.
fn alert_rules() -> BTreeMap<String, Value> {
    let doc = yaml(&deploy("prometheus/alerts.yml"));
    let mut out = BTreeMap::new();
    for g in seq(&doc["groups"]) {
        for r in seq(&g["rules"]) {
            if let Some(name) = r["alert"].as_str() {
                assert!(
                    out.insert(name.to_string(), r.clone()).is_none(),
                    "alert {name} twice"
                );
            }
        }
    }
    out
}

#[test]
fn alert_rules_have_severity_summary_and_runbook_and_cover_the_issue() {
    let rules = alert_rules();
    for name in REQUIRED_ALERTS {
        assert!(rules.contains_key(*name), "alerts.yml lacks {name}");
    }
    for (name, r) in &rules {
        let sev = r["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["critical", "warning", "info"].contains(&sev),
            "{name}: severity must be critical|warning|info, got {sev:?}"
        );
        for a in ["summary", "runbook"] {
            assert!(
                r["annotations"][a].as_str().is_some_and(|t| t.len() > 10),
                "{name}: annotation {a} missing or too short"
            );
        }
        assert!(!s(r, "expr").is_empty(), "{name}: no expr");
    }
}

#[test]
fn every_alert_has_unit_tests_firing_and_not_firing() {
    let rules = alert_rules();
    let tests = yaml(&deploy("prometheus/alerts_test.yml"));
    assert!(
        seq(&tests["rule_files"])
            .iter()
            .any(|f| f.as_str() == Some("alerts.yml")),
        "alerts_test.yml must load alerts.yml"
    );
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in seq(&tests["tests"]) {
        for c in seq(&t["alert_rule_test"]) {
            let name = s(c, "alertname").to_string();
            assert!(
                rules.contains_key(&name),
                "alerts_test.yml tests unknown alert {name}"
            );
            if seq(&c["exp_alerts"]).is_empty() {
                quiet.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }
    for name in rules.keys() {
        assert!(fires.contains(name), "no promtool test where {name} fires");
        assert!(
            quiet.contains(name),
            "no promtool test where {name} does not fire"
        );
    }
}

#[test]
fn promtool_checks_rules_and_runs_the_rule_unit_tests() {
    let Some((promtool, _)) = prometheus_tools() else {
        return;
    };
    let dir = deploy("prometheus");
    let out = run_ok(
        Command::new(&promtool)
            .args(["check", "rules", "alerts.yml"])
            .current_dir(&dir),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS"), "{text}");
    let out = run_ok(
        Command::new(&promtool)
            .args(["test", "rules", "alerts_test.yml"])
            .current_dir(&dir),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("SUCCESS") && !text.contains("FAILED"),
        "{text}"
    );
}

/// Writes `cfg` (a prometheus.yml) into a temp dir with its rule_files
/// pointing at the repository's alerts.yml, and runs `promtool check config`.
fn check_prometheus_config(promtool: &Path, cfg: &str, what: &str) {
    let mut v: Value = serde_yaml::from_str(cfg).unwrap_or_else(|e| panic!("{what}: {e}"));
    let jobs: BTreeSet<&str> = seq(&v["scrape_configs"])
        .iter()
        .map(|j| s(j, "job_name"))
        .collect();
    assert!(
        jobs.contains("lull-coordinator") && jobs.contains("lull-agent"),
        "{what}: the alerts and dashboards need jobs lull-coordinator and lull-agent, got {jobs:?}"
    );
    let rules = seq(&v["rule_files"]).to_vec();
    assert!(
        rules
            .iter()
            .any(|r| r.as_str().is_some_and(|p| p.ends_with("alerts.yml"))),
        "{what}: does not load alerts.yml"
    );
    v["rule_files"] = Value::Sequence(vec![Value::String(
        deploy("prometheus/alerts.yml").display().to_string(),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, serde_yaml::to_string(&v).unwrap()).unwrap();
    let mut out = run(Command::new(promtool).arg("check").arg("config").arg(&path));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if said.contains("field kubernetes_sd_configs not found") {
        // Debian builds Prometheus without Kubernetes discovery: check the
        // rest of the file with a static target in its place.
        eprintln!("NOTE: {what}: this promtool has no kubernetes_sd_configs; checking the rest of the config");
        for job in v["scrape_configs"].as_sequence_mut().into_iter().flatten() {
            if let Some(m) = job.as_mapping_mut() {
                if m.remove("kubernetes_sd_configs").is_some() {
                    let target: Value =
                        serde_yaml::from_str("[{targets: ['127.0.0.1:1']}]").unwrap();
                    m.insert("static_configs".into(), target);
                }
            }
        }
        std::fs::write(&path, serde_yaml::to_string(&v).unwrap()).unwrap();
        out = run(Command::new(promtool).arg("check").arg("config").arg(&path));
    }
    assert!(
        out.status.success(),
        "{what}: promtool check config failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_configs_are_valid() {
    let Some((promtool, _)) = prometheus_tools() else {
        return;
    };
    // The shipped file, as is (rule path relative to it).
    run_ok(
        Command::new(&promtool)
            .args(["check", "config", "prometheus.yml"])
            .current_dir(deploy("prometheus")),
    );
    check_prometheus_config(
        &promtool,
        &read(&deploy("prometheus/prometheus.yml")),
        "deploy/prometheus",
    );
    check_prometheus_config(
        &promtool,
        &read(&deploy("compose/prometheus.yml")),
        "deploy/compose",
    );
    // The Kubernetes scrape example is a ConfigMap holding a prometheus.yml.
    let cm = yaml_docs(&deploy("k8s/prometheus-scrape.yaml"));
    let text = cm
        .iter()
        .find(|d| s(d, "kind") == "ConfigMap")
        .and_then(|d| d["data"]["prometheus.yml"].as_str())
        .expect("k8s/prometheus-scrape.yaml has a ConfigMap with prometheus.yml");
    check_prometheus_config(&promtool, text, "deploy/k8s scrape example");
}

// ---------------------------------------------------------------- Grafana

fn dashboards() -> Vec<(PathBuf, serde_json::Value)> {
    let mut out: Vec<_> = std::fs::read_dir(deploy("grafana/dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v =
                serde_json::from_str(&read(&p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every panel, including those nested in collapsed rows.
fn panels(d: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

#[test]
fn grafana_provisioning_and_dashboards_are_sane() {
    let ds = yaml(&deploy("grafana/provisioning/datasources/lull.yml"));
    let ds0 = &seq(&ds["datasources"])[0];
    assert_eq!(s(ds0, "uid"), "lull-prometheus", "pinned data source uid");
    assert_eq!(s(ds0, "type"), "prometheus");
    let prov = yaml(&deploy("grafana/provisioning/dashboards/lull.yml"));
    let provider = &seq(&prov["providers"])[0];
    assert_eq!(s(provider, "type"), "file");
    let path = provider["options"]["path"]
        .as_str()
        .expect("provider path")
        .to_string();
    // The compose file mounts the dashboards where the provider looks.
    let compose = read(&deploy("compose/compose.yaml"));
    assert!(
        compose.contains(&format!("../grafana/dashboards:{path}")),
        "compose must mount dashboards at {path}"
    );

    let ds_var = regex::Regex::new(r"\$\{?(\w+)").unwrap();
    let mut uids = BTreeSet::new();
    let all = dashboards();
    assert!(
        all.len() >= 5,
        "expected the five dashboards, found {}",
        all.len()
    );
    for (path, d) in &all {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            d.get("__inputs").is_none(),
            "{name}: uses __inputs (breaks file provisioning)"
        );
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(uids.insert(uid.to_string()), "{name}: duplicate uid {uid}");
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: no title"
        );
        let vars = d["templating"]["list"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no templating"));
        let dsv = vars
            .iter()
            .find(|v| v["type"] == "datasource")
            .unwrap_or_else(|| panic!("{name}: no data source variable"));
        assert_eq!(dsv["query"], "prometheus", "{name}");
        assert_eq!(
            dsv["current"]["value"], "lull-prometheus",
            "{name}: default data source"
        );
        let var_names: BTreeSet<String> = vars
            .iter()
            .filter_map(|v| v["name"].as_str())
            .map(String::from)
            .collect();
        let mut ids = BTreeSet::new();
        let mut n_queries = 0;
        for p in panels(d) {
            let title = p["title"].as_str().unwrap_or("?");
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}/{title}: no id"));
            assert!(ids.insert(id), "{name}: duplicate panel id {id}");
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_u64().unwrap_or(99), g["w"].as_u64().unwrap_or(99));
            assert!(
                x + w <= 24 && g["h"].as_u64().is_some(),
                "{name}/{title}: bad gridPos {g}"
            );
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{name}/{title}: data source must be the variable"
            );
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}/{title}: no targets"));
            assert!(!targets.is_empty(), "{name}/{title}: no queries");
            for t in targets {
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{name}/{title}: target data source"
                );
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}/{title}: target without expr"));
                assert!(
                    expr.contains("lull_") || expr.contains("up{"),
                    "{name}/{title}: {expr}"
                );
                for c in ds_var.captures_iter(expr) {
                    let v = &c[1];
                    assert!(
                        v.starts_with("__") || var_names.contains(v),
                        "{name}/{title}: undefined variable ${v}"
                    );
                }
                n_queries += 1;
            }
        }
        assert!(n_queries >= 5, "{name}: only {n_queries} queries");
    }
    for uid in [
        "lull-fleet",
        "lull-leases",
        "lull-regions",
        "lull-workers",
        "lull-health",
    ] {
        assert!(uids.contains(uid), "missing dashboard {uid}");
    }
}

// ---------------------------------------------------------------- compose

#[test]
fn compose_file_validates() {
    let dir = deploy("compose");
    let file = dir.join("compose.yaml");
    // The real validator: `docker compose config` (v2 plugin) or
    // `docker-compose config` (v1). Neither needs a Docker engine.
    let v2 = which("docker").is_some_and(|d| {
        run(Command::new(d).args(["compose", "version"]))
            .status
            .success()
    });
    let validator: Option<Vec<String>> = if v2 {
        Some(vec!["docker".into(), "compose".into()])
    } else {
        match ensure_bin("docker-compose", "docker-compose") {
            Ok(p) => Some(vec![p.display().to_string()]),
            Err(why) => {
                eprintln!("NOTE: neither `docker compose` nor `docker-compose` is available ({why}); checking the YAML only");
                None
            }
        }
    };
    if let Some(cmd) = validator {
        let out = run_ok(
            Command::new(&cmd[0])
                .args(&cmd[1..])
                .arg("-f")
                .arg(&file)
                .args(["config", "-q"])
                .current_dir(&dir),
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Our own sanity checks, always (with `<<:` merge keys resolved).
    let mut c = yaml(&file);
    c.apply_merge().expect("merge keys");
    let services: BTreeSet<String> = c["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    for want in [
        "nats",
        "postgres",
        "coordinator",
        "agent",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains(want), "compose lacks service {want}");
    }
    let dockerfile_text;
    {
        let b = &c["services"]["coordinator"]["build"];
        let df = dir.join(s(b, "context")).join(s(b, "dockerfile"));
        dockerfile_text = read(&df);
    }
    let stages: BTreeSet<String> = dockerfile_text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let up = l.to_ascii_uppercase();
            (up.starts_with("FROM ") && up.contains(" AS "))
                .then(|| l.rsplit(' ').next().unwrap().to_string())
        })
        .collect();
    assert!(
        stages.len() >= 3,
        "multi-stage Dockerfile expected, stages: {stages:?}"
    );
    for svc in ["coordinator", "agent"] {
        let sv = &c["services"][svc];
        let target = s(&sv["build"], "target");
        assert!(
            stages.contains(target),
            "{svc}: build target {target} not in the Dockerfile ({stages:?})"
        );
        assert_eq!(
            sv["read_only"].as_bool(),
            Some(true),
            "{svc}: read_only root fs"
        );
        assert!(
            seq(&sv["security_opt"]).iter().any(|o| o
                .as_str()
                .is_some_and(|o| o.starts_with("no-new-privileges"))),
            "{svc}: no-new-privileges"
        );
        let env = &sv["environment"];
        assert!(
            s(env, "LULL_NATS_URL").contains("nats:4222"),
            "{svc}: LULL_NATS_URL"
        );
    }
    assert!(s(
        &c["services"]["coordinator"]["environment"],
        "LULL_DATABASE_URL"
    )
    .contains("@postgres:5432/"));
    check_compose_coordinators(&c, &dir);
    // The runtime images do not run as root.
    let users: Vec<&str> = dockerfile_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .collect();
    assert!(
        !users.is_empty()
            && users
                .iter()
                .all(|u| !u.starts_with("0") && !u.starts_with("root")),
        "USER: {users:?}"
    );
    // Every bind-mounted file or directory exists.
    for (name, sv) in c["services"].as_mapping().unwrap() {
        for vol in seq(&sv["volumes"]) {
            let src = vol.as_str().unwrap_or("").split(':').next().unwrap_or("");
            if src.starts_with('.') || src.starts_with('/') {
                assert!(
                    dir.join(src).exists(),
                    "{name:?}: mounted path {src} does not exist"
                );
            }
        }
    }
}

/// Two coordinators (docs/ha.md): the same image, database and NATS, their
/// own instance ids and published metrics ports, and both scraped by the
/// compose Prometheus.
fn check_compose_coordinators(c: &Value, dir: &Path) {
    let coords: Vec<(&str, &Value)> = c["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .filter_map(|(k, v)| k.as_str().map(|k| (k, v)))
        .filter(|(k, _)| k.starts_with("coordinator"))
        .collect();
    assert!(
        coords.len() >= 2,
        "compose must run a leader and a standby coordinator, has {}",
        coords.len()
    );
    let first = coords[0].1;
    let mut ids = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    for (name, sv) in &coords {
        for shared in [
            &["build", "target"][..],
            &["image"],
            &["environment", "LULL_DATABASE_URL"],
            &["environment", "LULL_NATS_URL"],
        ] {
            let get = |v: &Value| shared.iter().fold(v.clone(), |v, k| v[*k].clone());
            assert_eq!(
                get(sv),
                get(first),
                "{name}: {shared:?} differs between the coordinators"
            );
        }
        let id = s(&sv["environment"], "LULL_HA__INSTANCE");
        assert!(
            !id.is_empty() && ids.insert(id.to_string()),
            "{name}: LULL_HA__INSTANCE {id:?} missing or reused"
        );
        for p in seq(&sv["ports"]) {
            let host = p
                .as_str()
                .unwrap_or("")
                .rsplit_once(':')
                .map(|(h, _)| h.to_string());
            assert!(
                host_ports.insert(host.clone()),
                "{name}: host port {host:?} published twice"
            );
        }
    }
    let prom = yaml(&dir.join("prometheus.yml"));
    let job = seq(&prom["scrape_configs"])
        .iter()
        .find(|j| s(j, "job_name") == "lull-coordinator")
        .expect("compose prometheus.yml: job lull-coordinator");
    let targets: BTreeSet<&str> = seq(&job["static_configs"])
        .iter()
        .flat_map(|sc| seq(&sc["targets"]).iter().filter_map(|t| t.as_str()))
        .collect();
    for (name, _) in &coords {
        assert!(
            targets.contains(format!("{name}:9464").as_str()),
            "compose prometheus.yml does not scrape {name}: {targets:?}"
        );
    }
}

// ---------------------------------------------------------------- systemd

/// `key=value` lines of a unit file (comments and sections skipped).
fn unit_directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('[')
        })
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

#[test]
fn systemd_units_are_hardened_and_verify() {
    let dir = deploy("systemd");
    for unit in ["lull-agent.service", "lull-coordinator.service"] {
        let text = read(&dir.join(unit));
        let d = unit_directives(&text);
        let get = |k: &str| {
            d.iter()
                .filter(|(kk, _)| kk == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        for (k, v) in [
            ("DynamicUser", "yes"),
            ("ProtectSystem", "strict"),
            ("NoNewPrivileges", "yes"),
            ("PrivateTmp", "yes"),
            ("RestrictNamespaces", "yes"),
        ] {
            assert!(get(k).contains(&v), "{unit}: {k}={v} missing");
        }
        let families = get("RestrictAddressFamilies").join(" ");
        assert!(
            families.contains("AF_INET") && !families.contains("AF_PACKET"),
            "{unit}: RestrictAddressFamilies={families}"
        );
        assert!(
            get("CapabilityBoundingSet").contains(&""),
            "{unit}: empty CapabilityBoundingSet"
        );
        let creds = get("LoadCredential");
        assert!(
            !creds.is_empty(),
            "{unit}: NATS credentials must come through LoadCredential"
        );
        let cred_name = creds[0].split(':').next().unwrap();
        assert!(
            get("Environment")
                .iter()
                .any(|e| e.contains(&format!("%d/{cred_name}"))),
            "{unit}: the credential {cred_name} is not used via %d"
        );
        assert!(!get("StateDirectory").is_empty(), "{unit}: StateDirectory");
    }
    let agent = unit_directives(&read(&dir.join("lull-agent.service")));
    let state = agent
        .iter()
        .find(|(k, _)| k == "StateDirectory")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        agent.iter().any(|(k, v)| k == "Environment"
            && v.starts_with("LULL_SPOOL_DIR=%S/")
            && v.contains(&state)),
        "the agent's spool must live in its StateDirectory"
    );

    let Some(analyze) = which("systemd-analyze") else {
        eprintln!(
            "SKIPPED systemd-analyze verify: systemd-analyze is not installed on this machine"
        );
        return;
    };
    // Verify copies whose ExecStart exists here (verify checks the binary).
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for unit in ["lull-agent.service", "lull-coordinator.service"] {
        let text = read(&dir.join(unit))
            .lines()
            .map(|l| {
                if l.starts_with("ExecStart=") {
                    "ExecStart=/bin/true".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let p = tmp.path().join(unit);
        std::fs::write(&p, text + "\n").unwrap();
        paths.push(p);
    }
    let out = run(Command::new(&analyze).arg("verify").args(&paths));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
    // The exposure score (0 = locked down, 10 = unprotected), where the
    // offline mode exists (systemd 250+).
    for p in &paths {
        let out = run(Command::new(&analyze)
            .args(["security", "--offline=yes", "--threshold=25"])
            .arg(p));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains("unrecognized option") || text.contains("Unknown option") {
            eprintln!("NOTE: systemd-analyze security --offline is not supported here");
            break;
        }
        assert!(
            out.status.success(),
            "{}: exposure above 2.5:\n{text}",
            p.display()
        );
    }
}

// ---------------------------------------------------------------- Kubernetes

#[test]
fn k8s_manifests_are_sane_and_schema_valid() {
    let dir = deploy("k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for f in &files {
        for d in yaml_docs(f) {
            if s(&d, "kind") == "Kustomization" {
                for r in seq(&d["resources"]) {
                    assert!(
                        dir.join(r.as_str().unwrap()).exists(),
                        "kustomization: {r:?} missing"
                    );
                }
                continue;
            }
            assert!(
                !s(&d, "apiVersion").is_empty(),
                "{}: object without apiVersion",
                f.display()
            );
            assert!(
                !s(&d["metadata"], "name").is_empty(),
                "{}: object without name",
                f.display()
            );
            if s(&d, "kind") != "Namespace" {
                assert_eq!(
                    s(&d["metadata"], "namespace"),
                    "lull",
                    "{}: {} not in namespace lull",
                    f.display(),
                    s(&d["metadata"], "name")
                );
            }
            objects.push(d);
        }
    }
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| s(o, "kind") == kind && s(&o["metadata"], "name") == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let secrets: BTreeMap<String, BTreeSet<String>> = objects
        .iter()
        .filter(|o| s(o, "kind") == "Secret")
        .map(|o| {
            let keys = o["stringData"]
                .as_mapping()
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (s(&o["metadata"], "name").to_string(), keys)
        })
        .collect();

    let check_pod = |what: &str, pod: &Value| {
        let psc = &pod["securityContext"];
        for c in seq(&pod["containers"]) {
            let sc = &c["securityContext"];
            let non_root = sc["runAsNonRoot"]
                .as_bool()
                .or(psc["runAsNonRoot"].as_bool())
                == Some(true);
            assert!(
                non_root,
                "{what}: container {} must run as non-root",
                s(c, "name")
            );
            assert_eq!(
                sc["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{what}: read-only root fs"
            );
            assert_eq!(
                sc["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{what}: no privilege escalation"
            );
            assert!(
                seq(&sc["capabilities"]["drop"])
                    .iter()
                    .any(|c| c.as_str() == Some("ALL")),
                "{what}: drop ALL"
            );
            // Liveness on /healthz, readiness on /readyz, on a named port
            // the container declares (the metrics/health listener).
            let ports: BTreeSet<&str> = seq(&c["ports"]).iter().map(|p| s(p, "name")).collect();
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let get = &c[probe]["httpGet"];
                assert_eq!(s(get, "path"), path, "{what}: {probe} must GET {path}");
                assert!(
                    ports.contains(s(get, "port")),
                    "{what}: {probe} port {:?} is not a declared port",
                    get["port"]
                );
            }
            for e in seq(&c["env"]) {
                let r = &e["valueFrom"]["secretKeyRef"];
                if !r.is_null() {
                    let (sn, key) = (s(r, "name"), s(r, "key"));
                    assert!(
                        secrets.get(sn).is_some_and(|k| k.contains(key)),
                        "{what}: secret {sn}/{key} is not in secrets.example.yaml"
                    );
                }
            }
        }
    };

    // The agent DaemonSet.
    let ds = find("DaemonSet", "lull-agent");
    let pod = &ds["spec"]["template"]["spec"];
    check_pod("DaemonSet lull-agent", pod);
    assert_eq!(pod["hostPID"].as_bool(), Some(true), "agent needs hostPID");
    let agent = &seq(&pod["containers"])[0];
    let host_id = seq(&agent["env"])
        .iter()
        .find(|e| s(e, "name") == "LULL_HOST_ID")
        .expect("LULL_HOST_ID");
    assert_eq!(
        s(&host_id["valueFrom"]["fieldRef"], "fieldPath"),
        "spec.nodeName"
    );
    // The node's root, read-only, where the disk collector is told to look.
    let vol = seq(&pod["volumes"])
        .iter()
        .find(|v| s(&v["hostPath"], "path") == "/")
        .expect("no hostPath volume for the node's /");
    let mount = seq(&agent["volumeMounts"])
        .iter()
        .find(|m| s(m, "name") == s(vol, "name"))
        .expect("the node's / is not mounted");
    assert_eq!(
        mount["readOnly"].as_bool(),
        Some(true),
        "the node's / must be mounted read-only"
    );
    let rootfs = seq(&agent["env"])
        .iter()
        .find(|e| s(e, "name") == "LULL_DISK__ROOTFS")
        .expect("LULL_DISK__ROOTFS");
    assert_eq!(s(rootfs, "value"), s(mount, "mountPath"));
    assert!(
        seq(&agent["volumeMounts"])
            .iter()
            .any(|m| s(m, "mountPath") == "/var/spool/lull"),
        "the spool must be mounted"
    );

    // The coordinator Deployment: a leader and a standby (docs/ha.md),
    // rolled one pod at a time with the other one running, each with its
    // pod name as instance id, and a budget that keeps one through drains.
    let dep = find("Deployment", "lull-coordinator");
    check_pod(
        "Deployment lull-coordinator",
        &dep["spec"]["template"]["spec"],
    );
    assert!(
        dep["spec"]["replicas"].as_u64().is_some_and(|r| r >= 2),
        "the coordinator needs a standby: replicas {:?}",
        dep["spec"]["replicas"]
    );
    let strategy = &dep["spec"]["strategy"];
    assert_ne!(
        s(strategy, "type"),
        "Recreate",
        "coordinators may overlap now"
    );
    assert_eq!(
        strategy["rollingUpdate"]["maxUnavailable"].as_u64(),
        Some(0),
        "a rollout must keep every coordinator until its successor runs"
    );
    let coordinator = &seq(&dep["spec"]["template"]["spec"]["containers"])[0];
    let instance = seq(&coordinator["env"])
        .iter()
        .find(|e| s(e, "name") == "LULL_HA__INSTANCE")
        .expect("LULL_HA__INSTANCE");
    assert_eq!(
        s(&instance["valueFrom"]["fieldRef"], "fieldPath"),
        "metadata.name"
    );
    let pdb = find("PodDisruptionBudget", "lull-coordinator");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"], dep["spec"]["selector"]["matchLabels"],
        "the PodDisruptionBudget must select the coordinator pods"
    );
    assert!(
        pdb["spec"]["maxUnavailable"].as_u64() == Some(1)
            || pdb["spec"]["minAvailable"].as_u64() == Some(1),
        "the PodDisruptionBudget must keep one coordinator"
    );

    // Services select the pods and target their named metrics ports.
    for (svc, owner) in [("lull-coordinator", dep), ("lull-agent", ds)] {
        let svc = find("Service", svc);
        let labels = &owner["spec"]["template"]["metadata"]["labels"];
        for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
            assert_eq!(
                &labels[k.as_str().unwrap()],
                v,
                "Service selector must match the pod labels"
            );
        }
        let ports: BTreeSet<&str> = seq(&owner["spec"]["template"]["spec"]["containers"])
            .iter()
            .flat_map(|c| seq(&c["ports"]).iter().map(|p| s(p, "name")))
            .collect();
        for p in seq(&svc["spec"]["ports"]) {
            assert!(
                ports.contains(s(p, "targetPort")),
                "Service targetPort {} not a container port",
                s(p, "targetPort")
            );
        }
    }

    if let Some(kubectl) = which("kubectl") {
        let out = run_ok(Command::new(kubectl).arg("kustomize").arg(&dir));
        assert!(String::from_utf8_lossy(&out.stdout).contains("kind: DaemonSet"));
    } else {
        eprintln!("NOTE: kubectl not installed; kustomization not rendered");
    }
    // Schema validation against the Kubernetes OpenAPI schemas (offline).
    let have = |py: &Path| {
        run(Command::new(py).args(["-c", "import kubernetes_validate"]))
            .status
            .success()
    };
    let Some(python) = which("python3") else {
        eprintln!("SKIPPED schema validation: python3 is not installed");
        return;
    };
    if !have(&python) {
        if let Err(why) = install_tool("kubernetes-validate") {
            eprintln!("SKIPPED schema validation: kubernetes-validate cannot be installed: {why}");
            return;
        }
    }
    let schema_files: Vec<&PathBuf> = files
        .iter()
        .filter(|f| !f.ends_with("kustomization.yaml"))
        .collect();
    let out = run(Command::new(&python)
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--quiet",
            "-k",
            "1.30.0",
        ])
        .args(&schema_files));
    assert!(
        out.status.success(),
        "kubernetes-validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
