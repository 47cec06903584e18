//! Admission policy and placement: pure functions that decide whether a
//! lease request may be granted on a host, and on which host when the
//! request lets the coordinator choose. Inputs are plain data (a
//! [`HostView`] filled by the coordinator from the quiet engine, a
//! [`BookView`] of what the lease book holds) and an injected clock.
//!
//! Checks, in order (the first that fails is the answer):
//! 0. for a new request, the restart grace period: `grace_period`
//!    ([`admit_request`], which also says whether the request takes a
//!    token from its addon's bucket and whether a denial queues it);
//! 1. addon level: `rate_limited`, `addon_limit`, `global_limit`;
//! 2. host level: `unknown_host`, `blocked`, `stale_host`, `panic`,
//!    `panic_cooldown`, then the request is *judged* (constraint-aware, see
//!    [`judge`]): a judged PANIC is `panic`, a judged state other than QUIET
//!    without HIGH priority is `not_quiet`, and finally
//!    `used + requested > capacity(judged state)` is `capacity_exceeded`.
//!
//! Where each part lives: [`view`] (what admission sees), [`verdict`]
//! (grant or denial), [`judgement`] (constraint-aware state and its
//! numbers), [`room`] (when a full host frees up), [`rules`] (the checks
//! above, admission and placement) and [`admission`] (the request as a
//! whole: grace period, rate-limit token, queue or deny).

pub mod admission;
pub mod judgement;
pub mod room;
pub mod rules;
pub mod verdict;
pub mod view;

pub use admission::{admit_request, grace_denial, queue_full, queue_or_deny, Admission, Ruling};
pub use judgement::{judge, resource_state, Judgement, Resource};
pub use room::capacity_retry;
pub use rules::{admit, admit_host, check_addon, decide, place};
pub use verdict::{Decision, Denial, Grant};
pub use view::{AddonLoad, BookView, Holder, HostLoad, HostView, Loads};

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
