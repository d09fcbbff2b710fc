//! What the local runtime's tests share.

use std::path::Path;
use std::time::Duration;

use hmsync::runtime::RuntimeOptions;
use hmsync_engine::adapters::ApiSettings;
use hmsync_engine::worker::WorkerSettings;
use hmsync_sandbox::Sandbox;

/// A runtime on `dir` against `sandbox`, with fast retries and short waits so a test does not
/// sit out production timeouts; the schedule stays out of the way (hourly).
pub fn options(dir: &Path, sandbox: &Sandbox, time_scale: f64, admin_token: &str) -> RuntimeOptions {
    RuntimeOptions {
        data_dir: dir.to_path_buf(),
        api_port: 0,
        admin_token: Some(admin_token.into()),
        public_url: None,
        apis: ApiSettings {
            hubspot_base_url: sandbox.hubspot_url(),
            mailerlite_base_url: sandbox.mailerlite_url(),
            time_scale,
            hubspot_burst_limit: 100,
            fast_retries: true,
        },
        hubspot_oauth: hmsync_api::HubSpotOAuth { app_url: sandbox.hubspot_url(), api_url: sandbox.hubspot_url() },
        scan_interval: Duration::from_secs(3600),
        worker: WorkerSettings {
            idle_poll: Duration::from_millis(20),
            retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_millis(500),
            visibility: Duration::from_secs(2),
            ..WorkerSettings::default()
        },
    }
}
