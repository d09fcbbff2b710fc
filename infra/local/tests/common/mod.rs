//! What the local runtime's tests share.
// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
            visibility: Duration::from_secs(2),
            ..WorkerSettings::default()
        },
        delivery: hmsync_engine::DeliveryPolicy {
            first_retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_millis(500),
            ..hmsync_engine::DeliveryPolicy::default()
        },
    }
}

/// A running `hmsync demo` whose output is collected as it comes (so that full pipes never
/// block it).
pub struct Demo {
    pub child: Child,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

impl Demo {
    /// `hmsync demo` on `dir` with every port free-picked, `admin_token`, `args` and `envs`.
    pub fn start(dir: &Path, admin_token: &str, args: &[&str], envs: &[(&str, &str)]) -> Demo {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmsync"));
        cmd.args(["demo", "--data-dir"])
            .arg(dir)
            .args(["--api-port", "0", "--hubspot-port", "0", "--mailerlite-port", "0", "--admin-token", admin_token])
            .args(args)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("HMSYNC_ADMIN_TOKEN")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the hmsync binary starts");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Demo { child, stdout, stderr }
    }

    pub fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap().replace('\r', "\n")
        )
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the exit (and the end of its output).
    pub fn wait(&mut self, deadline: Instant) -> ExitStatus {
        loop {
            if let Some(status) = self.exited() {
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("hmsync demo did not exit in time\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let out = Arc::new(Mutex::new(String::new()));
    let to = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            to.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    out
}
