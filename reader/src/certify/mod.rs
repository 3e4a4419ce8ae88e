//! Certification of a writer (conformance.md section 4, docs/certify.md): the target protocol
//! client ([`protocol`]: spawn, `CONTEXT-READY` handshake, stdin-EOF shutdown, kill on drop), the
//! one comparison of a snapshot with a writer's `expect` ([`compare`]: JSON-path diffs, churn
//! series), one trial end to end ([`trial`]) and the reports ([`report`]: `report.json`, JUnit,
//! `summary.md`). Above `session` (a trial reads through it), below `main`
//! (`context-reader certify`); the conformance suite and the targets crate use these modules and
//! keep no copy.

pub mod compare;
pub mod protocol;
pub mod report;
pub mod trial;
