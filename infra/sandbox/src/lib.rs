//! Simulated HubSpot and MailerLite APIs, faithful to `../shared/reference/*.md`: paths,
//! payloads, status codes, error bodies, rate-limit headers and quirks. Used by the tests, the
//! demo and the benchmark, and runnable on its own (`hmsync-sandbox`).

pub mod common;
pub mod hubspot;
pub mod mailerlite;
