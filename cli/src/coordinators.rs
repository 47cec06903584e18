//! The coordinator instances behind the service, for `lullctl status`:
//! every instance's answer to `lull.v1.coordinator.leader` (its role, who
//! leads in which epoch, its uptime), gathered within a short window.
//!
//! The endpoint is served in the service's shared queue group, so one
//! request reaches one instance, picked at random by the NATS server.
//! `$SRV.PING` reaches every instance and says how many there are; requests
//! are repeated, all with one reply inbox, until every instance has answered
//! or the window ends. Replies are merged by instance, so an endpoint that
//! every instance answers for each request works the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use lull_proto::error::ErrorReply;
use lull_proto::msg::leader::{CoordinatorRole, LeaderReply};
use lull_proto::subjects::{endpoints as ep, SERVICE_NAME};

use crate::output::{ago, human_duration};
use crate::Ctx;

/// How long replies are collected at most.
pub const WINDOW: Duration = Duration::from_millis(300);
/// Time between two rounds of requests.
const ROUND: Duration = Duration::from_millis(40);
/// Replies are collected at least this long, so that late `$SRV.PING`
/// answers still count before the gathering ends early.
const MIN_WAIT: Duration = Duration::from_millis(100);

/// What the instances said.
#[derive(Debug, Default)]
pub struct Gathered {
    /// One reply per instance: leaders first, then standbys, each by
    /// instance id.
    pub replies: Vec<LeaderReply>,
    /// Instances that answered `$SRV.PING` (0 when the ping is not allowed).
    pub pinged: usize,
    /// Error replies (`code: message`), one per distinct error.
    pub errors: Vec<String>,
}

/// Asks every instance within `window` (see the module doc).
pub async fn gather(ctx: &Ctx, window: Duration) -> anyhow::Result<Gathered> {
    let client = &ctx.client;
    let (ping_inbox, reply_inbox) = (client.new_inbox(), client.new_inbox());
    let mut pings = client
        .subscribe(ping_inbox.clone())
        .await
        .context("subscribing the ping inbox")?;
    let mut replies = client
        .subscribe(reply_inbox.clone())
        .await
        .context("subscribing the reply inbox")?;
    client
        .publish_with_reply(
            format!("$SRV.PING.{SERVICE_NAME}"),
            ping_inbox,
            Bytes::new(),
        )
        .await
        .context("publishing $SRV.PING")?;
    let subject = ctx.subjects.endpoint(ep::COORDINATOR_LEADER);
    let started = tokio::time::Instant::now();
    let deadline = started + window;
    let mut rounds = tokio::time::interval(ROUND);
    let mut ping_ids = BTreeSet::new();
    let mut seen: BTreeMap<String, LeaderReply> = BTreeMap::new();
    let mut errors = BTreeSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = rounds.tick() => {
                let known = ping_ids.len().max(seen.len()).max(1);
                if ping_ids.is_empty() || seen.len() < ping_ids.len() {
                    for _ in 0..2 * known {
                        client
                            .publish_with_reply(subject.clone(), reply_inbox.clone(), Bytes::from_static(b"{}"))
                            .await
                            .context("publishing coordinator.leader")?;
                    }
                    client.flush().await.context("flushing")?;
                }
            }
            Some(m) = pings.next() => {
                if let Some(id) = ping_id(&m.payload) {
                    ping_ids.insert(id);
                }
            }
            Some(m) = replies.next() => match decode(&m) {
                Some(Ok(r)) => {
                    seen.insert(r.instance.clone(), r);
                }
                Some(Err(e)) => {
                    errors.insert(e);
                }
                None => {}
            },
        }
        if !ping_ids.is_empty() && seen.len() >= ping_ids.len() && started.elapsed() >= MIN_WAIT {
            break;
        }
    }
    Ok(Gathered {
        replies: ordered(seen.into_values().collect()),
        pinged: ping_ids.len(),
        errors: errors.into_iter().collect(),
    })
}

/// The `id` of a `$SRV.PING` answer.
fn ping_id(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if v["name"] != SERVICE_NAME {
        return None;
    }
    v["id"].as_str().map(String::from)
}

/// A reply: the instance's answer, an error reply, or `None` for a status
/// message (no responders).
fn decode(m: &async_nats::Message) -> Option<Result<LeaderReply, String>> {
    if m.status.is_some() && m.payload.is_empty() {
        return None;
    }
    let is_error = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Service-Error"))
        .is_some();
    if is_error {
        return Some(Err(
            match serde_json::from_slice::<ErrorReply>(&m.payload) {
                Ok(e) => format!("{}: {}", e.error.code, e.error.message),
                Err(_) => String::from_utf8_lossy(&m.payload).into_owned(),
            },
        ));
    }
    Some(
        serde_json::from_slice::<LeaderReply>(&m.payload)
            .map_err(|e| format!("undecodable coordinator.leader reply: {e}")),
    )
}

/// Leaders first, then standbys, each by instance id.
pub fn ordered(mut replies: Vec<LeaderReply>) -> Vec<LeaderReply> {
    replies.sort_by(|a, b| {
        let rank = |r: &LeaderReply| u8::from(r.role != CoordinatorRole::Leader);
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.instance.cmp(&b.instance))
    });
    replies
}

/// Seconds for people: `45 s`, `12 min 3 s`, `3 h 30 min`.
pub fn span(secs: f64) -> String {
    human_duration(secs)
}

/// Headers of the coordinator table.
pub const HEADERS: [&str; 5] = ["ROLE", "INSTANCE", "EPOCH", "ELECTED", "UP"];

/// One row per instance: the leader's with its epoch and election time,
/// a standby's with dashes there.
pub fn rows(replies: &[LeaderReply]) -> Vec<Vec<String>> {
    replies
        .iter()
        .map(|r| {
            let leads = r.role == CoordinatorRole::Leader;
            let dash = || "-".to_string();
            vec![
                if leads { "leader" } else { "standby" }.to_string(),
                r.instance.clone(),
                if leads { r.epoch.to_string() } else { dash() },
                match r.elected_at {
                    Some(t) if leads => ago(t),
                    _ => dash(),
                },
                span(r.uptime_sec),
            ]
        })
        .collect()
}

/// Warnings under the table: no leader, more than one, instances that did
/// not answer, error replies.
pub fn notes(g: &Gathered) -> Vec<String> {
    let mut out = Vec::new();
    let leaders = g
        .replies
        .iter()
        .filter(|r| r.role == CoordinatorRole::Leader)
        .count();
    if g.replies.is_empty() {
        out.push("no coordinator answered coordinator.leader".to_string());
    } else if leaders == 0 {
        // The election row as the most recent epoch among the replies saw it.
        let row = g.replies.iter().max_by_key(|r| r.epoch);
        match row.filter(|r| !r.leader.is_empty()) {
            Some(r) => out.push(format!(
                "no instance leads now (the election row names {} in epoch {}): lease requests get `unavailable`",
                r.leader, r.epoch
            )),
            None => out.push(
                "no instance leads now: lease requests get `unavailable`".to_string(),
            ),
        }
    } else if leaders > 1 {
        out.push(format!(
            "{leaders} instances answer as leader: see LullCoordinatorMultipleLeaders in docs/operations.md"
        ));
    }
    if g.pinged > g.replies.len() {
        out.push(format!(
            "{} more instance(s) answered $SRV.PING but not coordinator.leader in {} ms",
            g.pinged - g.replies.len(),
            WINDOW.as_millis()
        ));
    }
    for e in &g.errors {
        out.push(format!("error reply: {e}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(instance: &str, role: CoordinatorRole, leader: &str, epoch: u64) -> LeaderReply {
        LeaderReply {
            instance: instance.into(),
            role,
            leader: leader.into(),
            epoch,
            elected_at: Some(lull_common::runtime::now_unix() - 30.0),
            uptime_sec: 4000.0,
        }
    }

    #[test]
    fn leader_first_and_standbys_without_epoch() {
        let g = Gathered {
            replies: ordered(vec![
                reply("c-b", CoordinatorRole::Standby, "c-c", 4),
                reply("c-c", CoordinatorRole::Leader, "c-c", 4),
                reply("c-a", CoordinatorRole::Standby, "c-c", 4),
            ]),
            pinged: 3,
            errors: vec![],
        };
        let r = rows(&g.replies);
        assert_eq!(r[0], ["leader", "c-c", "4", "30 s ago", "1 h 6 min"]);
        assert_eq!(r[1], ["standby", "c-a", "-", "-", "1 h 6 min"]);
        assert_eq!(r[2][1], "c-b");
        assert!(r.iter().all(|row| row.len() == HEADERS.len()));
        assert!(notes(&g).is_empty(), "{:?}", notes(&g));
    }

    #[test]
    fn notes_say_what_is_wrong() {
        let none = Gathered {
            replies: vec![reply("c-a", CoordinatorRole::Standby, "c-b", 7)],
            pinged: 2,
            errors: vec!["unavailable: reading the election row: down".into()],
        };
        let n = notes(&none);
        assert!(n[0].contains("names c-b in epoch 7"), "{n:?}");
        assert!(n[1].starts_with("1 more instance(s)"), "{n:?}");
        assert!(n[2].starts_with("error reply: unavailable"), "{n:?}");
        let two = Gathered {
            replies: vec![
                reply("c-a", CoordinatorRole::Leader, "c-a", 7),
                reply("c-b", CoordinatorRole::Leader, "c-a", 7),
            ],
            ..Gathered::default()
        };
        assert!(notes(&two)[0].starts_with("2 instances answer as leader"));
        assert_eq!(
            notes(&Gathered::default()),
            ["no coordinator answered coordinator.leader"]
        );
    }

    #[test]
    fn spans_and_ping_ids() {
        assert_eq!(span(5.2), "5 s");
        assert_eq!(span(600.0), "10 min");
        assert_eq!(span(3.0 * 3600.0), "3 h");
        assert_eq!(span(3.0 * 86_400.0), "3 d");
        let ping = format!(r#"{{"name":"{SERVICE_NAME}","id":"abc","version":"0.1.0"}}"#);
        assert_eq!(ping_id(ping.as_bytes()).as_deref(), Some("abc"));
        assert_eq!(ping_id(br#"{"name":"other","id":"x"}"#), None);
        assert_eq!(ping_id(b"junk"), None);
    }
}
