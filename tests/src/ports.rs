//! Free TCP ports on 127.0.0.1, never handed out twice by one test process.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

use crate::error::{HarnessError, Result};

/// Ports of the machine's own services that tests must never use.
const RESERVED: &[u16] = &[4222, 5432, 6222, 8222];

/// Ports handed out so far by this process. They are never released: a
/// server stopped and restarted by a test keeps its port, and parallel tests
/// must not be given it in between.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Returns a TCP port on 127.0.0.1 that was free a moment ago (the kernel
/// picked it for a bind to port 0) and that this process has not handed out
/// before.
pub fn free_port() -> Result<u16> {
    for _ in 0..64 {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| HarnessError::io("bind 127.0.0.1:0 to find a free port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| HarnessError::io("read the bound port", e))?
            .port();
        drop(listener);
        if RESERVED.contains(&port) {
            continue;
        }
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(HarnessError::io(
        "find a free port",
        std::io::Error::other("64 attempts gave only ports already handed out"),
    ))
}
