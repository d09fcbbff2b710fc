//! `hmsync` on one machine: the local runtime (every Lambda function of the AWS deployment in one
//! process on an embedded store), the demo, and the server against the real services.

pub mod bench;
pub mod demo;
pub mod doctor;
pub mod runtime;
pub mod serve;
