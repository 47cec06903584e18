//! This host's id as a publisher of reports: `LULL_HOST_ID`, else the host
//! name made a valid subject token, as the agent derives its own.

use lull_proto::validate::MAX_ID_LEN;

/// Turns a host name into a subject token: characters outside
/// `A-Z a-z 0-9 - _ : @` become `_`, the result is cut to 128 bytes, and an
/// empty name becomes `localhost` (the agent's rule).
pub fn sanitize_host_id(name: &str) -> String {
    let s: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '@') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_ID_LEN)
        .collect();
    if s.is_empty() {
        "localhost".into()
    } else {
        s
    }
}

/// `LULL_HOST_ID` when set, else the kernel's host name
/// (`/proc/sys/kernel/hostname`, then `HOSTNAME`), sanitised.
pub fn default_host_id() -> String {
    let given = std::env::var("LULL_HOST_ID")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    sanitize_host_id(&given)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_become_tokens() {
        assert_eq!(sanitize_host_id("web-1.example.com\n"), "web-1_example_com");
        assert_eq!(sanitize_host_id("  "), "localhost");
        assert_eq!(sanitize_host_id(&"a".repeat(300)).len(), MAX_ID_LEN);
        let h = default_host_id();
        assert!(
            lull_proto::validate::subject_token("host", &h).is_ok(),
            "{h}"
        );
    }
}
