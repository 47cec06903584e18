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
    lull_client::request::request(&ctx.client, subject, body, ctx.timeout)
        .await
        .map_err(|e| anyhow::Error::new(e).context(endpoint.to_string()))
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

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time.
pub fn utc(t: f64) -> String {
    let secs = t.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_times() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_763_026_000.0), "2025-11-13 09:26:40");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00");
    }
}
