//! Snapshots of the whole sandbox: the data state of both simulators as one serde value, saved
//! to and loaded from a JSON file, so that a sandbox can stop and come back with the same
//! records, ids and counters (the demo keeps its sandbox this way across restarts, because the
//! sync's store on disk names records by their ids).
//!
//! What a snapshot holds: every record, schema, list, group, webhook registration, OAuth grant
//! and id counter (see [`crate::hubspot::HubSpotSnapshot`] and
//! [`crate::mailerlite::MailerLiteSnapshot`]). What it leaves out, because a restarted service
//! starts them fresh: rate-limit windows, request statistics, injected faults and queued webhook
//! deliveries. Derived indexes (email lookups, status counters) are rebuilt on restore rather
//! than trusted from the file.
//!
//! Restoring moves every id counter ahead by a gap (see `RESTORE_ID_GAP` on each side): the
//! sandbox a snapshot came from may have kept running and handed out ids after the snapshot
//! was taken. If it then died without a final save, records with those ids are lost, but
//! whoever used the sandbox (a sync's store) may still name them; the gap guarantees such an id
//! never comes back as a different record.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hubspot::{HubSpotGeneration, HubSpotSnapshot, HubSpotState};
use crate::mailerlite::{MailerLite, MailerLiteSnapshot};

/// The version of the snapshot file format. Bump it whenever a snapshotted type changes shape
/// in a way old files cannot be read as (a renamed or new required field): loading refuses a
/// file of another version instead of restoring a half-understood state.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// The complete data state of both simulators at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSnapshot {
    /// [`SNAPSHOT_FORMAT_VERSION`] of the code that wrote it (first in the file, so a reader can
    /// tell what it is looking at).
    pub format_version: u32,
    /// When it was taken (ms since the Unix epoch).
    pub taken_at_ms: i64,
    pub hubspot: HubSpotSnapshot,
    pub mailerlite: MailerLiteSnapshot,
    /// Data the sandbox's owner keeps with the state, in the same file and so saved atomically
    /// with it (the demo keeps what it seeded here). The sandbox never reads it.
    #[serde(default)]
    pub attachments: BTreeMap<String, serde_json::Value>,
}

/// Why a snapshot could not be saved, read or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot {action} the sandbox snapshot {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the sandbox snapshot {} is not valid: {source}", path.display())]
    Format { path: PathBuf, source: serde_json::Error },
    #[error(
        "the sandbox snapshot {} has format version {}, but this build reads version {expected} only \
         (it was written by another version of hmsync)",
        path.display(),
        found.map_or_else(|| "(none)".to_string(), |v| v.to_string())
    )]
    Version { path: PathBuf, found: Option<u32>, expected: u32 },
}

impl SandboxSnapshot {
    /// Writes the snapshot to `path` atomically: into a temporary file next to it, flushed to
    /// disk, then renamed over `path`. A crash mid-save leaves the previous file intact, never a
    /// truncated one.
    pub fn save(&self, path: &Path) -> Result<(), SnapshotError> {
        static SAVES: AtomicU64 = AtomicU64::new(0);
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Io { action, path, source }
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "snapshot".into());
        let n = SAVES.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()));
        let written = (|| {
            let file = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
            let mut out = std::io::BufWriter::new(file);
            serde_json::to_writer(&mut out, self).map_err(|source| match source.io_error_kind() {
                Some(kind) => SnapshotError::Io { action: "write", path: tmp.clone(), source: kind.into() },
                None => SnapshotError::Format { path: tmp.clone(), source },
            })?;
            out.flush().map_err(io("write", &tmp))?;
            let file = out.into_inner().map_err(|e| SnapshotError::Io {
                action: "write",
                path: tmp.clone(),
                source: e.into_error(),
            })?;
            file.sync_all().map_err(io("flush", &tmp))?;
            std::fs::rename(&tmp, path).map_err(io("replace", path))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return written;
        }
        // The rename itself is durable once the directory is flushed (best effort: not every
        // platform can open a directory).
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Reads a snapshot written by [`SandboxSnapshot::save`], refusing another format version.
    pub fn load(path: &Path) -> Result<SandboxSnapshot, SnapshotError> {
        let bytes =
            std::fs::read(path).map_err(|source| SnapshotError::Io { action: "read", path: path.into(), source })?;
        Self::from_json(&bytes).map_err(|e| match e {
            SnapshotError::Format { source, .. } => SnapshotError::Format { path: path.into(), source },
            SnapshotError::Version { found, expected, .. } => {
                SnapshotError::Version { path: path.into(), found, expected }
            }
            other => other,
        })
    }

    /// Parses a snapshot from JSON (what [`SandboxSnapshot::save`] writes), checking the format
    /// version before anything else.
    pub fn from_json(bytes: &[u8]) -> Result<SandboxSnapshot, SnapshotError> {
        #[derive(Deserialize)]
        struct Header {
            format_version: Option<u32>,
        }
        let format = |source| SnapshotError::Format { path: PathBuf::new(), source };
        let header: Header = serde_json::from_slice(bytes).map_err(format)?;
        if header.format_version != Some(SNAPSHOT_FORMAT_VERSION) {
            return Err(SnapshotError::Version {
                path: PathBuf::new(),
                found: header.format_version,
                expected: SNAPSHOT_FORMAT_VERSION,
            });
        }
        serde_json::from_slice(bytes).map_err(format)
    }

    /// An attachment parsed as `T` (`None` if absent or of another shape).
    pub fn attachment<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.attachments.get(key).and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// Both simulators' state without their servers: cheap to clone and `'static`, so a task or a
/// blocking thread can take snapshots (see [`crate::Sandbox::handle`]).
#[derive(Clone)]
pub struct SandboxHandle {
    pub(crate) hubspot: Arc<HubSpotState>,
    pub(crate) mailerlite: MailerLite,
}

/// A cheap fingerprint of the sandbox's data: it changes whenever anything a snapshot holds may
/// have changed (every mutable access to either simulator's data counts), so a saver can skip
/// saving an unchanged sandbox. Compare two with `==`; the values mean nothing else.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxGeneration {
    hubspot: HubSpotGeneration,
    mailerlite: u64,
}

impl SandboxHandle {
    /// The data of both simulators now (each side is copied under its lock; the two sides are
    /// taken one after the other).
    pub fn snapshot(&self) -> SandboxSnapshot {
        SandboxSnapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            taken_at_ms: crate::common::now_ms(),
            hubspot: self.hubspot.snapshot(),
            mailerlite: self.mailerlite.snapshot(),
            attachments: BTreeMap::new(),
        }
    }

    /// See [`SandboxGeneration`].
    pub fn generation(&self) -> SandboxGeneration {
        SandboxGeneration { hubspot: self.hubspot.generation(), mailerlite: self.mailerlite.generation() }
    }
}

// ---- serde helpers for the state types --------------------------------------------------------

/// `&'static str` under another name, for event and log name fields of snapshotted types: serde's
/// derive takes a field spelled `&'static str` for a string borrowed from the input (and then
/// demands `'de: 'static`); spelled this way it is read through [`interned`] instead.
pub(crate) type StaticStr = &'static str;

/// `&'static str` fields (event and log names) read back from a snapshot: each distinct string is
/// leaked once and shared, so restoring many records costs one allocation per distinct name.
pub(crate) fn interned<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let s = String::deserialize(d)?;
    let mut names = NAMES.get_or_init(Default::default).lock().expect("interned names lock");
    if let Some(known) = names.get(s.as_str()) {
        return Ok(known);
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    names.insert(leaked);
    Ok(leaked)
}

/// Milliseconds from now until `at` (0 if it passed): instants mean nothing across processes,
/// so a snapshot keeps how long is left instead.
fn remaining_ms(at: std::time::Instant) -> u64 {
    at.saturating_duration_since(std::time::Instant::now()).as_millis().min(u64::MAX as u128) as u64
}

fn after_ms(ms: u64) -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_millis(ms)
}

/// `std::time::Instant` as the milliseconds left until it (see `remaining_ms`).
pub(crate) mod std_instant {
    use super::*;

    pub fn serialize<S: Serializer>(at: &std::time::Instant, s: S) -> Result<S::Ok, S::Error> {
        remaining_ms(*at).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Instant, D::Error> {
        Ok(after_ms(u64::deserialize(d)?))
    }
}

/// `tokio::time::Instant` as the milliseconds left until it.
pub(crate) mod tokio_instant {
    use super::*;

    pub fn serialize<S: Serializer>(at: &tokio::time::Instant, s: S) -> Result<S::Ok, S::Error> {
        remaining_ms(at.into_std()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<tokio::time::Instant, D::Error> {
        Ok(tokio::time::Instant::from_std(after_ms(u64::deserialize(d)?)))
    }
}

/// A `fastrand::Rng` as its current state: the restored generator continues the same sequence.
pub(crate) mod rng {
    use super::*;

    pub fn serialize<S: Serializer>(rng: &fastrand::Rng, s: S) -> Result<S::Ok, S::Error> {
        rng.get_seed().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<fastrand::Rng, D::Error> {
        Ok(fastrand::Rng::with_seed(u64::deserialize(d)?))
    }
}
