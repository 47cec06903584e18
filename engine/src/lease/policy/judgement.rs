//! Constraint-aware judgement: the state a request sees a host in, from
//! the resource its constraints name ([`judge`], [`resource_state`]), and
//! the numbers behind it for denial reasons ([`Judgement::detail`]).

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::Constraints;

use super::view::HostView;
use crate::lease::config::ConstraintConfig;

/// A resource a constrained job is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// The host as a whole (unconstrained jobs).
    System,
    /// CPU (`cpu_heavy`).
    Cpu,
    /// Disks (`disk_write_heavy`).
    Disk,
    /// Network (`network_heavy`).
    Network,
    /// Memory (every constrained job).
    Memory,
}

impl Resource {
    /// Name used in reasons.
    pub fn label(self) -> &'static str {
        match self {
            Resource::System => "System",
            Resource::Cpu => "CPU",
            Resource::Disk => "Disk",
            Resource::Network => "Network",
            Resource::Memory => "Memory",
        }
    }
}

/// How a request sees a host: the state it is judged in and on which
/// resource. The numbers behind it are only spelled out when a denial needs
/// them ([`Judgement::detail`]), so a grant formats no text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// The judged state.
    pub state: QuietState,
    /// The resource that decided it (the worst one).
    pub resource: Resource,
}

impl Judgement {
    /// The numbers behind the judgement of `host`, e.g.
    /// `io_pressure=22.0%, disk_free_pct=40.0%`.
    pub fn detail(&self, host: &HostView) -> String {
        let fallback = |what: &str| {
            format!(
                "no {what} signal, judged on the host state (quiet_score={:.1})",
                host.quiet_score
            )
        };
        let join = |parts: [Option<String>; 2], what: &str| {
            let parts: Vec<String> = parts.into_iter().flatten().collect();
            if parts.is_empty() {
                fallback(what)
            } else {
                parts.join(", ")
            }
        };
        match self.resource {
            Resource::System => format!("quiet_score={:.1}", host.quiet_score),
            Resource::Cpu => join(
                [
                    host.cpu_avg_pct.map(|v| format!("cpu_avg_2m={v:.1}%")),
                    host.load_per_core.map(|v| format!("load_per_core={v:.2}")),
                ],
                "CPU",
            ),
            Resource::Disk => join(
                [
                    host.io_pressure.map(|v| format!("io_pressure={v:.1}%")),
                    host.disk_free_pct.map(|v| format!("disk_free_pct={v:.1}%")),
                ],
                "disk",
            ),
            Resource::Network => host
                .net_bps
                .map(|v| format!("net_bps={v:.0}"))
                .unwrap_or_else(|| fallback("network")),
            Resource::Memory => host
                .mem_pct
                .map(|v| format!("mem_pct={v:.1}%"))
                .unwrap_or_else(|| fallback("memory")),
        }
    }
}

fn band(v: f64, quiet_below: f64, normal_below: f64) -> QuietState {
    if v < quiet_below {
        QuietState::Quiet
    } else if v < normal_below {
        QuietState::Normal
    } else {
        // Also NaN.
        QuietState::Busy
    }
}

/// The worst of the states that are known; `None` when none is.
fn worst_of(states: impl IntoIterator<Item = Option<QuietState>>) -> Option<QuietState> {
    states.into_iter().flatten().max()
}

/// Judges one resource of `host` from its own signals. A resource with no
/// signal at all falls back to the host's overall state (never better than
/// what is known).
pub fn resource_state(resource: Resource, host: &HostView, c: &ConstraintConfig) -> Judgement {
    let state = match resource {
        Resource::System => Some(host.state),
        Resource::Cpu => worst_of([
            host.cpu_avg_pct
                .map(|v| band(v, c.cpu_quiet_pct, c.cpu_normal_pct)),
            host.load_per_core
                .map(|v| band(v, c.load_quiet_per_core, c.load_normal_per_core)),
        ]),
        Resource::Disk => worst_of([
            host.io_pressure
                .map(|v| band(v, c.io_quiet_pct, c.io_normal_pct)),
            host.disk_free_pct.map(|free| {
                if free.is_nan() || free <= c.disk_free_panic_pct {
                    QuietState::Panic
                } else if free >= c.disk_free_quiet_pct {
                    QuietState::Quiet
                } else if free >= c.disk_free_normal_pct {
                    QuietState::Normal
                } else {
                    QuietState::Busy
                }
            }),
        ]),
        Resource::Network => host
            .net_bps
            .map(|v| band(v, c.net_quiet_bps, c.net_normal_bps)),
        Resource::Memory => host
            .mem_pct
            .map(|v| band(v, c.mem_quiet_pct, c.mem_normal_pct)),
    };
    Judgement {
        state: state.unwrap_or(host.state),
        resource,
    }
}

/// Constraint-aware judgement of a host for a request.
///
/// * No constraint flag: the host's overall quiet state.
/// * With flags: the worst of the flagged resources (CPU: `cpu_avg_2m` and
///   load per core; disk: IO pressure and free disk, PANIC at or below
///   `disk_free_panic_pct`; network: throughput), and memory when the host
///   reports it (memory is shared by every job). The overall state does not
///   enter, so a disk-heavy job may be judged QUIET on a host that is BUSY
///   because of its CPU.
///
/// Ties keep the first of CPU, disk, network, memory.
pub fn judge(constraints: &Constraints, host: &HostView, cfg: &ConstraintConfig) -> Judgement {
    let mut flagged = Vec::with_capacity(4);
    if constraints.cpu_heavy {
        flagged.push(Resource::Cpu);
    }
    if constraints.disk_write_heavy {
        flagged.push(Resource::Disk);
    }
    if constraints.network_heavy {
        flagged.push(Resource::Network);
    }
    if flagged.is_empty() {
        return resource_state(Resource::System, host, cfg);
    }
    if host.mem_pct.is_some() {
        flagged.push(Resource::Memory);
    }
    let mut best: Option<Judgement> = None;
    for r in flagged {
        let j = resource_state(r, host, cfg);
        match &best {
            Some(b) if b.state >= j.state => {}
            _ => best = Some(j),
        }
    }
    best.unwrap_or_else(|| resource_state(Resource::System, host, cfg))
}
