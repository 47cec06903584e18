//! Region endpoints: `regions.stats` (the seed 000 document, served from
//! memory), `regions.select`, `regions.insights`, `regions.pardon`, and
//! `regions.import` (a campaign document, whole or in parts for files larger
//! than one NATS message), all answered by the regions actor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lull_proto::error::{ErrorCode, ErrorReply};
use lull_proto::msg::region::{CampaignStats, RegionInsightsRequest, RegionSelectRequest};
use lull_proto::subjects::endpoints as ep;
use lull_proto::validate::decode;

use super::{
    ImportPart, ImportPartReply, RegionPardonRequest, RegionStatsRequest, RegionsError,
    RegionsHandle,
};
use crate::service::{err, typed, Handler, HandlerResult};

/// The region endpoints with their handlers.
pub fn endpoints(regions: &RegionsHandle, max: usize) -> Vec<(&'static str, Handler)> {
    let regions = regions.clone();
    let stats: Handler = {
        let regions = regions.clone();
        Arc::new(move |payload: Bytes| {
            let regions = regions.clone();
            Box::pin(async move {
                let req: RegionStatsRequest =
                    decode(body_or_empty(&payload), max).map_err(|e| ErrorReply::from(&e))?;
                regions.stats(req).await.map_err(reply_error)
            })
        })
    };
    let r = regions.clone();
    let select = typed(max, move |req: RegionSelectRequest| {
        let r = r.clone();
        async move { r.select(req).await.map_err(reply_error) }
    });
    let r = regions.clone();
    let insights = typed(max, move |req: RegionInsightsRequest| {
        let r = r.clone();
        async move { r.insights(req).await.map_err(reply_error) }
    });
    let r = regions.clone();
    let pardon = typed(max, move |req: RegionPardonRequest| {
        let r = r.clone();
        async move { r.pardon(req.region).await.map_err(reply_error) }
    });
    vec![
        (ep::REGIONS_STATS, stats),
        (ep::REGIONS_SELECT, select),
        (ep::REGIONS_INSIGHTS, insights),
        (ep::REGIONS_PARDON, pardon),
        (ep::REGIONS_IMPORT, import_handler(regions)),
    ]
}

fn body_or_empty(payload: &[u8]) -> &[u8] {
    if payload.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}"
    } else {
        payload
    }
}

fn reply_error(e: RegionsError) -> ErrorReply {
    let code = match &e {
        RegionsError::Gone | RegionsError::Store(_) => ErrorCode::Unavailable,
        RegionsError::NotFound(_) => ErrorCode::NotFound,
        RegionsError::TooLarge { .. } | RegionsError::TooManyRegions { .. } => {
            ErrorCode::InvalidRequest
        }
    };
    err(code, e.to_string())
}

/// An import sent in parts, being joined.
struct Upload {
    parts: u32,
    text: String,
    received: u32,
    started: Instant,
}

/// `regions.import`: a whole document, or one [`ImportPart`] of it.
fn import_handler(regions: RegionsHandle) -> Handler {
    let uploads: Arc<Mutex<HashMap<String, Upload>>> = Arc::default();
    Arc::new(move |payload: Bytes| {
        let regions = regions.clone();
        let uploads = uploads.clone();
        Box::pin(async move { import(&regions, &uploads, &payload).await })
    })
}

async fn import(
    regions: &RegionsHandle,
    uploads: &Mutex<HashMap<String, Upload>>,
    payload: &[u8],
) -> HandlerResult {
    let t = regions.tunables();
    let limit = t.import_max_bytes;
    let is_part = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .is_some_and(|v| v.get("upload_id").is_some());
    let doc_text: Vec<u8> = if is_part {
        let part: ImportPart = decode(payload, limit).map_err(|e| ErrorReply::from(&e))?;
        let ttl = Duration::from_secs_f64(t.upload_ttl_sec.max(1.0));
        match add_part(uploads, part, ttl, t.max_uploads.max(1), limit)? {
            Joined::Partial(reply) => {
                return serde_json::to_vec(&reply)
                    .map(Bytes::from)
                    .map_err(|e| err(ErrorCode::Internal, e.to_string()))
            }
            Joined::Complete(text) => text.into_bytes(),
        }
    } else {
        payload.to_vec()
    };
    let doc: CampaignStats = decode(&doc_text, limit).map_err(|e| ErrorReply::from(&e))?;
    let report = regions.import(doc).await.map_err(reply_error)?;
    serde_json::to_vec(&report)
        .map(Bytes::from)
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))
}

enum Joined {
    Partial(ImportPartReply),
    Complete(String),
}

/// Adds a part to its upload; the last part yields the joined text.
fn add_part(
    uploads: &Mutex<HashMap<String, Upload>>,
    part: ImportPart,
    ttl: Duration,
    max_uploads: usize,
    limit: usize,
) -> Result<Joined, ErrorReply> {
    let mut map = uploads
        .lock()
        .map_err(|_| err(ErrorCode::Internal, "upload table poisoned"))?;
    map.retain(|_, u| u.started.elapsed() < ttl);
    if part.part == 0 {
        if !map.contains_key(&part.upload_id) && map.len() >= max_uploads {
            return Err(err(
                ErrorCode::Unavailable,
                format!("{max_uploads} imports are already in progress; retry later"),
            ));
        }
        map.insert(
            part.upload_id.clone(),
            Upload {
                parts: part.parts,
                text: String::new(),
                received: 0,
                started: Instant::now(),
            },
        );
    }
    let Some(u) = map.get_mut(&part.upload_id) else {
        return Err(err(
            ErrorCode::NotFound,
            format!(
                "upload {:?} is not in progress (expired, or part 0 was not sent)",
                part.upload_id
            ),
        ));
    };
    if part.parts != u.parts || part.part != u.received {
        let expected = u.received;
        map.remove(&part.upload_id);
        return Err(err(
            ErrorCode::InvalidRequest,
            format!(
                "part {} of {} arrived, expected part {expected}; the upload is dropped",
                part.part, part.parts
            ),
        ));
    }
    if u.text.len() + part.data.len() > limit {
        map.remove(&part.upload_id);
        return Err(err(
            ErrorCode::InvalidRequest,
            format!("the document exceeds {limit} bytes"),
        ));
    }
    u.text.push_str(&part.data);
    u.received += 1;
    if u.received < u.parts {
        return Ok(Joined::Partial(ImportPartReply {
            upload_id: part.upload_id,
            received: u.received,
            parts: u.parts,
        }));
    }
    let done = map
        .remove(&part.upload_id)
        .map(|u| u.text)
        .unwrap_or_default();
    Ok(Joined::Complete(done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: &str, i: u32, n: u32, data: &str) -> ImportPart {
        ImportPart {
            upload_id: id.into(),
            part: i,
            parts: n,
            data: data.into(),
        }
    }

    #[test]
    fn parts_join_in_order_and_reject_gaps() {
        let m = Mutex::new(HashMap::new());
        let ttl = Duration::from_secs(60);
        assert!(matches!(
            add_part(&m, part("u", 0, 3, "{\"a\":"), ttl, 2, 100).unwrap(),
            Joined::Partial(ImportPartReply { received: 1, .. })
        ));
        assert!(matches!(
            add_part(&m, part("u", 1, 3, "1"), ttl, 2, 100).unwrap(),
            Joined::Partial(_)
        ));
        match add_part(&m, part("u", 2, 3, "}"), ttl, 2, 100).unwrap() {
            Joined::Complete(t) => assert_eq!(t, "{\"a\":1}"),
            Joined::Partial(_) => panic!("not complete"),
        }
        // out of order: dropped
        add_part(&m, part("v", 0, 3, "x"), ttl, 2, 100).unwrap();
        assert!(add_part(&m, part("v", 2, 3, "x"), ttl, 2, 100).is_err());
        assert!(add_part(&m, part("v", 1, 3, "x"), ttl, 2, 100).is_err());
        // too large, too many
        add_part(&m, part("w", 0, 2, "12345"), ttl, 2, 8).unwrap();
        assert!(add_part(&m, part("w", 1, 2, "12345"), ttl, 2, 8).is_err());
        add_part(&m, part("a", 0, 2, ""), ttl, 2, 8).unwrap();
        add_part(&m, part("b", 0, 2, ""), ttl, 2, 8).unwrap();
        assert!(add_part(&m, part("c", 0, 2, ""), ttl, 2, 8).is_err());
    }
}
