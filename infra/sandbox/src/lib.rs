//! Simulated HubSpot and MailerLite APIs, faithful to the vendors' documentation (each behaviour
//! and its source: docs/api-fidelity.md): paths, payloads, status codes, error bodies, rate-limit
//! headers and quirks. Used by the tests, the demo and the benchmark, and runnable on its own
//! (`hmsync-sandbox`, see [`cli`]).
//!
//! [`Sandbox`] runs both simulators together; [`PeopleSeed`] seeds one population of generated
//! people across both, with an exact overlap; [`SandboxSnapshot`] saves and restores the data of
//! both, so a sandbox can stop and come back as it was.

pub mod cli;
pub mod combined;
pub mod common;
pub mod hubspot;
pub mod mailerlite;
pub mod people_seed;
pub mod snapshot;
#[cfg(test)]
mod snapshot_tests;

pub use combined::{PEOPLE_SEED_PATH, Sandbox, SandboxConfig, SandboxError};
pub use people_seed::{
    HubSpotSeedCounts, MailerLiteSeedCounts, MembershipSeed, PeopleSeed, PeopleSeedError, PeopleSeedSummary,
    PeopleSeeder, seed_people,
};
pub use snapshot::{SNAPSHOT_FORMAT_VERSION, SandboxGeneration, SandboxHandle, SandboxSnapshot, SnapshotError};
