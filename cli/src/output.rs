//! Output helpers: aligned tables for humans, pretty JSON for scripts, and
//! request helpers that turn error replies into readable errors.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Ctx;

/// Sends a request to `lull.v1.<endpoint>` and decodes the reply.
pub async fn call<B: Serialize, R: DeserializeOwned>(
    ctx: &Ctx,
    endpoint: &str,
    body: &B,
) -> anyhow::Result<R> {
    let subject = ctx.subjects.endpoint(endpoint);
    lull_common::client::request::request(&ctx.client, subject, body, ctx.timeout)
        .await
        .map_err(|e| anyhow::anyhow!("{endpoint}: {e}"))
}

/// Prints a value as pretty JSON.
pub fn json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints rows under headers with aligned columns.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// Formats a Unix time as seconds ago.
pub fn ago(t: f64) -> String {
    let d = lull_common::runtime::now_unix() - t;
    if d < 0.0 {
        "now".into()
    } else if d < 120.0 {
        format!("{d:.0}s ago")
    } else if d < 7200.0 {
        format!("{:.0}m ago", d / 60.0)
    } else {
        format!("{:.1}h ago", d / 3600.0)
    }
}
