//! Execution environments: a function binary started as Lambda starts `provided.al2023`
//! functions (a process with the Lambda environment variables, polling its own Runtime API),
//! invoked one event at a time, stopped when an invocation outlasts the function's timeout.
//! [`Function`] keeps warm environments and starts another (a cold start) when every one is busy,
//! up to a concurrency limit.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::runtime_api::{Answer, RuntimeApi};

/// How a function is started: its binary, the environment its deployment gives it, its timeout.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub binary: PathBuf,
    /// Variables besides Lambda's own (the template's, the credentials of the function's role,
    /// the AWS endpoint).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub memory_mb: u32,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Answered(Answer),
    /// No answer within the function's timeout: Lambda stops the environment.
    TimedOut,
    /// The process ended (or could not start) without answering.
    Exited(String),
}

impl Outcome {
    /// The function's response, or what went wrong instead.
    pub fn response(&self) -> Result<&Bytes, String> {
        match self {
            Outcome::Answered(Answer::Response(body)) => Ok(body),
            Outcome::Answered(Answer::Error { error_type, message, init }) => {
                Err(format!("{}{error_type}: {message}", if *init { "init error " } else { "" }))
            }
            Outcome::TimedOut => Err("the invocation timed out".into()),
            Outcome::Exited(why) => Err(format!("the function's process ended: {why}")),
        }
    }
}

/// One invocation: how it ended and when.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub outcome: Outcome,
    pub answered_at: Instant,
}

/// Lines a function wrote to stdout and stderr (Lambda sends them to CloudWatch Logs).
#[derive(Debug, Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().expect("logs lock").clone()
    }

    fn push(&self, line: String) {
        self.0.lock().expect("logs lock").push(line);
    }
}

/// One execution environment: a running process of the function.
pub struct Instance {
    pub api: RuntimeApi,
    child: tokio::sync::Mutex<Child>,
    spec: FunctionSpec,
    pub started: Instant,
}

impl Instance {
    /// Starts a process of the function against a fresh Runtime API; it initialises and then
    /// polls for its first event. Its output goes to `logs`.
    pub async fn start(spec: &FunctionSpec, logs: &Logs) -> anyhow::Result<Instance> {
        let api = RuntimeApi::start(&spec.name).await?;
        let started = Instant::now();
        let mut child = Command::new(&spec.binary)
            .env_clear()
            .envs(lambda_environment(spec, &api))
            .envs(spec.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", spec.binary.display()))?;
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.push(line);
                }
            });
        }
        Ok(Instance { api, child: tokio::sync::Mutex::new(child), spec: spec.clone(), started })
    }

    /// Invokes the function with `event` and waits for its answer, its timeout or its end.
    pub async fn invoke(&self, event: &Value) -> Invocation {
        let answer = self.api.invoke(event, self.spec.timeout);
        let mut child = self.child.lock().await;
        // Lambda gives the runtime a moment beyond the deadline to report it.
        let limit = self.spec.timeout + Duration::from_secs(1);
        tokio::select! {
            answered = answer => match answered {
                Ok((answer, at)) => Invocation { outcome: Outcome::Answered(answer), answered_at: at },
                Err(_) => Invocation { outcome: Outcome::Exited("the runtime API stopped".into()), answered_at: Instant::now() },
            },
            status = child.wait() => Invocation {
                outcome: Outcome::Exited(match status {
                    Ok(s) => format!("exit status {s}"),
                    Err(e) => e.to_string(),
                }),
                answered_at: Instant::now(),
            },
            _ = tokio::time::sleep(limit) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Invocation { outcome: Outcome::TimedOut, answered_at: Instant::now() }
            }
        }
    }

    /// Whether the process still runs (an environment that timed out or crashed is replaced).
    pub async fn is_alive(&self) -> bool {
        matches!(self.child.lock().await.try_wait(), Ok(None))
    }

    /// Stops the process.
    pub async fn stop(&self) {
        let mut child = self.child.lock().await;
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// The variables Lambda sets for a `provided.al2023` function.
fn lambda_environment(spec: &FunctionSpec, api: &RuntimeApi) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api.addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", spec.name)),
        ("AWS_LAMBDA_LOG_STREAM_NAME", format!("{}/[$LATEST]{}", "2026/01/01", uuid::Uuid::new_v4().simple())),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_string()),
        ("_HANDLER", "bootstrap".to_string()),
        ("TZ", ":UTC".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A function with its warm environments, started on demand up to `concurrency` at a time.
pub struct Function {
    pub spec: FunctionSpec,
    idle: Mutex<Vec<Arc<Instance>>>,
    all: Mutex<Vec<Arc<Instance>>>,
    permits: Semaphore,
    logs: Logs,
}

impl Function {
    pub fn new(spec: FunctionSpec, concurrency: usize) -> Self {
        Function {
            spec,
            idle: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            permits: Semaphore::new(concurrency.max(1)),
            logs: Logs::default(),
        }
    }

    /// Invokes the function on a warm environment, or a new one when none is free.
    pub async fn invoke(&self, event: &Value) -> Outcome {
        let Ok(_permit) = self.permits.acquire().await else {
            return Outcome::Exited("the function was shut down".into());
        };
        let warm = self.idle.lock().expect("idle lock").pop();
        let instance = match warm {
            Some(i) => i,
            None => match Instance::start(&self.spec, &self.logs).await {
                Ok(i) => {
                    let i = Arc::new(i);
                    self.all.lock().expect("instances lock").push(i.clone());
                    i
                }
                Err(e) => return Outcome::Exited(format!("{e:#}")),
            },
        };
        let invocation = instance.invoke(event).await;
        if instance.is_alive().await {
            self.idle.lock().expect("idle lock").push(instance);
        }
        invocation.outcome
    }

    /// Every line the function's environments wrote.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines()
    }

    /// How many environments were started (cold starts).
    pub fn cold_starts(&self) -> usize {
        self.all.lock().expect("instances lock").len()
    }

    /// Stops every environment.
    pub async fn shutdown(&self) {
        self.permits.close();
        let all: Vec<Arc<Instance>> = std::mem::take(&mut *self.all.lock().expect("instances lock"));
        self.idle.lock().expect("idle lock").clear();
        for i in all {
            i.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A function that takes its event and never answers (bash only: the environment is cleared).
    fn hanging_function(dir: &std::path::Path) -> PathBuf {
        let path = dir.join("hang");
        std::fs::write(
            &path,
            "#!/bin/bash\n\
             exec 3<>/dev/tcp/${AWS_LAMBDA_RUNTIME_API%:*}/${AWS_LAMBDA_RUNTIME_API#*:}\n\
             printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3\n\
             while read -t 60 -r _ <&3; do :; done\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn spec(binary: PathBuf, timeout: Duration) -> FunctionSpec {
        FunctionSpec { name: "test".into(), binary, env: Vec::new(), timeout, memory_mb: 128 }
    }

    #[tokio::test]
    async fn an_invocation_past_its_timeout_stops_the_environment_and_the_next_one_starts_anew() {
        let dir = std::env::temp_dir().join(format!("lambda-local-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = Function::new(spec(hanging_function(&dir), Duration::from_millis(500)), 1);
        assert_eq!(f.invoke(&json!({})).await, Outcome::TimedOut);
        assert_eq!(f.invoke(&json!({})).await, Outcome::TimedOut);
        assert_eq!(f.cold_starts(), 2, "a timed-out environment is not reused");
        f.shutdown().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_process_that_ends_without_answering_is_reported() {
        let f = Function::new(spec(PathBuf::from("/bin/true"), Duration::from_secs(5)), 1);
        let outcome = f.invoke(&json!({})).await;
        assert!(matches!(&outcome, Outcome::Exited(why) if why.contains("exit status")), "{outcome:?}");
        let missing = Function::new(spec(PathBuf::from("/nonexistent/function"), Duration::from_secs(5)), 1);
        assert!(matches!(missing.invoke(&json!({})).await, Outcome::Exited(why) if why.contains("starting")));
    }
}
