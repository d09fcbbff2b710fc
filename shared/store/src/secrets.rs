//! Secret stores: AWS Secrets Manager, a 0600 JSON file for local use, memory for tests, and
//! a TTL cache in front of any of them. No value ever reaches `Debug` output or an error.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use tokio::time::Instant;

use crate::aws_error::map_sdk_error;
use crate::error::{Result, StoreError};
use crate::ports::SecretStore;

/// Secrets Manager: secret `name` is stored as `<prefix><name>`, e.g. prefix `hmsync/` and
/// name `<connection>/hubspot`.
#[derive(Debug, Clone)]
pub struct SecretsManagerSecrets {
    client: Client,
    prefix: String,
}

impl SecretsManagerSecrets {
    pub fn new(config: &SdkConfig, prefix: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), prefix)
    }

    pub fn from_client(client: Client, prefix: impl Into<String>) -> Self {
        Self { client, prefix: prefix.into() }
    }

    fn secret_id(&self, name: &str) -> Result<String> {
        let id = format!("{}{name}", self.prefix);
        // Secrets Manager's name alphabet.
        let valid = !name.is_empty()
            && id.len() <= 512
            && id.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
        if !valid {
            return Err(StoreError::invalid(format!(
                "secret name {id:?} is not usable: use letters, digits and /_+=.@- (at most 512)"
            )));
        }
        Ok(id)
    }

    async fn put_value(&self, id: &str, value: &str) -> Result<PutOutcome> {
        match self.client.put_secret_value().secret_id(id).secret_string(value).send().await {
            Ok(_) => Ok(PutOutcome::Stored),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                Ok(PutOutcome::Missing)
            }
            // Scheduled for deletion (deleted with a recovery window by someone else).
            Err(err) if err.as_service_error().is_some_and(|e| e.is_invalid_request_exception()) => {
                Ok(PutOutcome::Deleted)
            }
            Err(err) => Err(map_sdk_error(&format!("Secrets Manager PutSecretValue of {id}"), err)),
        }
    }
}

enum PutOutcome {
    Stored,
    Missing,
    Deleted,
}

#[async_trait]
impl SecretStore for SecretsManagerSecrets {
    async fn get_secret(&self, name: &str) -> Result<Option<String>> {
        let id = self.secret_id(name)?;
        match self.client.get_secret_value().secret_id(&id).send().await {
            Ok(out) => Ok(out.secret_string),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception() || e.is_invalid_request_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(map_sdk_error(&format!("Secrets Manager GetSecretValue of {id}"), err)),
        }
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<()> {
        let id = self.secret_id(name)?;
        for _ in 0..3 {
            match self.put_value(&id, value).await? {
                PutOutcome::Stored => return Ok(()),
                PutOutcome::Missing => {
                    match self.client.create_secret().name(&id).secret_string(value).send().await {
                        Ok(_) => return Ok(()),
                        // Created concurrently: write the value as a new version.
                        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_exists_exception()) => {}
                        Err(err) => return Err(map_sdk_error(&format!("Secrets Manager CreateSecret of {id}"), err)),
                    }
                }
                PutOutcome::Deleted => {
                    self.client
                        .restore_secret()
                        .secret_id(&id)
                        .send()
                        .await
                        .map_err(|e| map_sdk_error(&format!("Secrets Manager RestoreSecret of {id}"), e))?;
                }
            }
        }
        Err(StoreError::Throttled { message: format!("secret {id} kept changing while it was written") })
    }

    async fn update_secret(&self, name: &str, value: &str) -> Result<bool> {
        let id = self.secret_id(name)?;
        Ok(matches!(self.put_value(&id, value).await?, PutOutcome::Stored))
    }

    async fn delete_secret(&self, name: &str) -> Result<()> {
        let id = self.secret_id(name)?;
        // Credentials of a removed connection should not linger for a recovery window.
        match self.client.delete_secret().secret_id(&id).force_delete_without_recovery(true).send().await {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(()),
            Err(err) => Err(map_sdk_error(&format!("Secrets Manager DeleteSecret of {id}"), err)),
        }
    }
}

/// Secrets in memory (tests, demos).
#[derive(Default)]
pub struct MemorySecrets {
    values: Mutex<BTreeMap<String, String>>,
}

impl MemorySecrets {
    pub fn new() -> Self {
        Self::default()
    }

    fn values(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.values.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for MemorySecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySecrets").field("names", &self.values().keys().collect::<Vec<_>>()).finish()
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn get_secret(&self, name: &str) -> Result<Option<String>> {
        Ok(self.values().get(name).cloned())
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<()> {
        self.values().insert(name.to_string(), value.to_string());
        Ok(())
    }

    async fn update_secret(&self, name: &str, value: &str) -> Result<bool> {
        Ok(self.values().get_mut(name).map(|v| *v = value.to_string()).is_some())
    }

    async fn delete_secret(&self, name: &str) -> Result<()> {
        self.values().remove(name);
        Ok(())
    }
}

/// Secrets in a JSON object file (`{"name": "value"}`) readable by its owner only: created
/// with mode 0600 and replaced atomically (write a temporary file, fsync, rename) on every
/// write, so a crash never leaves a torn file. Writers within this process are serialized;
/// the file is meant for one local process.
pub struct FileSecrets {
    path: PathBuf,
    write_lock: tokio::sync::Mutex<()>,
}

impl FileSecrets {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), write_lock: tokio::sync::Mutex::new(()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read(&self) -> Result<BTreeMap<String, String>> {
        let path = self.path.clone();
        blocking(move || read_file(&path)).await
    }
}

impl fmt::Debug for FileSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSecrets").field("path", &self.path).finish()
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            // serde_json's message gives a position, never the content.
            StoreError::backend(format!("secrets file {} is not a JSON object of strings: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(StoreError::backend(format!("could not read secrets file {}: {e}", path.display()))),
    }
}

fn write_file(path: &Path, values: &BTreeMap<String, String>) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;

    let io_err = |what: &str, e: std::io::Error| {
        StoreError::backend(format!("could not {what} secrets file {}: {e}", path.display()))
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_err("create the folder of", e))?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let json =
        serde_json::to_vec_pretty(values).map_err(|e| StoreError::backend(format!("could not encode secrets: {e}")))?;
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io_err("write", e));
    }
    Ok(())
}

#[async_trait]
impl SecretStore for FileSecrets {
    async fn get_secret(&self, name: &str) -> Result<Option<String>> {
        Ok(self.read().await?.remove(name))
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let path = self.path.clone();
        let (name, value) = (name.to_string(), value.to_string());
        blocking(move || {
            let mut values = read_file(&path)?;
            values.insert(name, value);
            write_file(&path, &values)
        })
        .await
    }

    async fn update_secret(&self, name: &str, value: &str) -> Result<bool> {
        let _guard = self.write_lock.lock().await;
        let path = self.path.clone();
        let (name, value) = (name.to_string(), value.to_string());
        blocking(move || {
            let mut values = read_file(&path)?;
            match values.get_mut(&name) {
                None => Ok(false),
                Some(v) => {
                    *v = value;
                    write_file(&path, &values).map(|()| true)
                }
            }
        })
        .await
    }

    async fn delete_secret(&self, name: &str) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let path = self.path.clone();
        let name = name.to_string();
        blocking(move || {
            let mut values = read_file(&path)?;
            if values.remove(&name).is_some() {
                write_file(&path, &values)?;
            }
            Ok(())
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::backend(format!("secrets task failed: {e}")))?
}

/// Caches reads of another secret store for `ttl` (Secrets Manager charges per call and
/// Lambda invocations read the same tokens over and over). Writes and deletes through the
/// cache invalidate the name; changes made elsewhere show after at most `ttl`.
pub struct CachedSecrets<S> {
    inner: S,
    ttl: Duration,
    cache: Mutex<CacheEntries>,
    /// Bumped by every write, so a read that raced with a write does not cache the old value.
    generation: std::sync::atomic::AtomicU64,
}

/// Per name: when it was read, and what (absence is cached too).
type CacheEntries = HashMap<String, (Instant, Option<String>)>;

impl<S: SecretStore> CachedSecrets<S> {
    pub fn new(inner: S, ttl: Duration) -> Self {
        Self { inner, ttl, cache: Mutex::new(HashMap::new()), generation: Default::default() }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn invalidate(&self, name: &str) {
        let mut cache = self.cache();
        self.generation.fetch_add(1, Ordering::SeqCst);
        cache.remove(name);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, CacheEntries> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<S: fmt::Debug> fmt::Debug for CachedSecrets<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.cache.lock().map(|c| c.len()).unwrap_or_default();
        f.debug_struct("CachedSecrets")
            .field("inner", &self.inner)
            .field("ttl", &self.ttl)
            .field("cached", &cached)
            .finish()
    }
}

#[async_trait]
impl<S: SecretStore> SecretStore for CachedSecrets<S> {
    fn forget_cached(&self, name: &str) {
        self.invalidate(name);
        self.inner.forget_cached(name);
    }

    async fn get_secret(&self, name: &str) -> Result<Option<String>> {
        if let Some((at, value)) = self.cache().get(name)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let value = self.inner.get_secret(name).await?;
        let mut cache = self.cache();
        if self.generation.load(Ordering::SeqCst) == generation {
            cache.insert(name.to_string(), (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<()> {
        let result = self.inner.put_secret(name, value).await;
        self.invalidate(name);
        result
    }

    async fn update_secret(&self, name: &str, value: &str) -> Result<bool> {
        let result = self.inner.update_secret(name, value).await;
        self.invalidate(name);
        result
    }

    async fn delete_secret(&self, name: &str) -> Result<()> {
        let result = self.inner.delete_secret(name).await;
        self.invalidate(name);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_output_never_shows_values() {
        let memory = MemorySecrets::new();
        memory.put_secret("c1/hubspot", "pat-na1-very-secret").await.unwrap();
        let cached = CachedSecrets::new(memory, Duration::from_secs(60));
        cached.get_secret("c1/hubspot").await.unwrap();
        let debug = format!("{cached:?}");
        assert!(debug.contains("c1/hubspot"), "{debug}");
        assert!(!debug.contains("very-secret"), "{debug}");

        let dir = tempfile::tempdir().unwrap();
        let file = FileSecrets::new(dir.path().join("secrets.json"));
        file.put_secret("c1/mailerlite", "ml-very-secret").await.unwrap();
        assert!(!format!("{file:?}").contains("very-secret"));
    }

    #[tokio::test]
    async fn the_secrets_file_is_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("secrets.json");
        let file = FileSecrets::new(&path);
        file.put_secret("a", "1").await.unwrap();
        file.put_secret("b", "2").await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let on_disk: BTreeMap<String, String> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk, BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]));
        // No temporary files are left next to it.
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_corrupt_secrets_file_is_reported_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, "{\"a\": \"leaky-value\"").unwrap();
        let err = FileSecrets::new(&path).get_secret("a").await.unwrap_err();
        assert!(matches!(err, StoreError::Backend { .. }));
        assert!(!err.to_string().contains("leaky-value"), "{err}");
    }

    #[test]
    fn secrets_manager_names_are_checked() {
        let config = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let secrets = SecretsManagerSecrets::new(&config, "hmsync/");
        assert_eq!(secrets.secret_id("c1/hubspot").unwrap(), "hmsync/c1/hubspot");
        assert!(matches!(secrets.secret_id("c1 hubspot"), Err(StoreError::Invalid { .. })));
        assert!(matches!(secrets.secret_id(""), Err(StoreError::Invalid { .. })));
    }
}
