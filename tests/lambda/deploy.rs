//! One deployment of `template.yaml` on 127.0.0.1: the table, the FIFO queue and its
//! dead-letter queue and the admin token secret on moto, created with the template's properties;
//! an IAM user per function role carrying that role's statements; the five real function
//! binaries behind the local Lambda Runtime API with the template's environment, timeouts and
//! memory; API Gateway in front of the HTTP functions with the template's routes; the SQS event
//! source mapping with the template's settings; the schedule's tick; and both simulators as the
//! apps. Every AWS call of a function goes through the recording proxy.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use hmsync_lambda_local::apigw::{HttpApi, Route};
use hmsync_lambda_local::sqs::{EventSourceMapping, QueueSource};
use hmsync_lambda_local::{Function, FunctionSpec, Functions, Invoke};
use hmsync_sandbox::hubspot::{HubSpotConfig, HubSpotSim};
use hmsync_sandbox::mailerlite::{MailerLiteConfig, MailerLiteSim};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::moto::{Keys, json_call, moto, sdk_config, user_with_policy};
use super::proxy::{ACCOUNT, Audit, Proxy, REGION, audit};
use super::template::{EventDef, Names, Statement, Template};

/// How a deployment starts.
pub struct Options {
    pub hubspot: HubSpotConfig,
    pub mailerlite: MailerLiteConfig,
    /// Divides the simulators' rate-limit windows and webhook delays.
    pub time_scale: f64,
    /// contact-sync environments the event source mapping keeps busy at most.
    pub consumers: usize,
    /// Variables set on every function besides the template's (deployment settings the
    /// template leaves at their default).
    pub environment: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hubspot: HubSpotConfig::default(),
            mailerlite: MailerLiteConfig::default(),
            time_scale: 20.0,
            consumers: 2,
            environment: Vec::new(),
        }
    }
}

/// Where Lambda delivers a function's output: its log group, and how many lines went there.
struct LogDelivery {
    group: String,
    stream: String,
    delivered: usize,
}

/// A role of the template: its statements and the IAM user that carries them on moto.
pub struct Role {
    pub statements: Vec<Statement>,
    pub keys: Keys,
}

pub struct Deployment {
    pub template: Template,
    pub names: Names,
    /// The administrator's view of moto (for the test's own checks, never for the functions).
    pub admin: aws_config::SdkConfig,
    pub proxy: Proxy,
    pub functions: Arc<Functions>,
    pub roles: BTreeMap<String, Role>,
    pub api: HttpApi,
    pub mapping: Option<EventSourceMapping>,
    pub hubspot: HubSpotSim,
    pub mailerlite: MailerLiteSim,
    pub admin_token: String,
    pub queue_url: String,
    /// The schedule's rule (the ARN its events name) and the function it invokes.
    pub schedule: (String, String),
    /// Function → its role and log delivery.
    logs: std::sync::Mutex<HashMap<String, (String, LogDelivery)>>,
    pub http: reqwest::Client,
}

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

/// Where `cargo build` puts the function binaries.
fn binary_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("debug"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
    }
}

/// Builds the five function binaries once per test process (a no-op when they are up to date),
/// so the harness never runs stale ones.
async fn build_functions(binaries: &[String]) {
    static BUILT: OnceCell<()> = OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let mut command = tokio::process::Command::new(env!("CARGO"));
            command.args(["build", "--quiet"]).current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
            for b in binaries {
                command.args(["-p", b]);
            }
            let out = command.output().await.expect("running cargo build");
            assert!(
                out.status.success(),
                "cargo build of the functions failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
        .await;
}

/// The moto copy of a role's statements: moto checks resources only for SQS, so the others
/// become `*` there (the proxy's audit checks them), and it names batch and transaction requests
/// after themselves, so those names join the actions they need.
fn moto_policy(statements: &[Statement]) -> Value {
    let statements: Vec<Value> = statements
        .iter()
        .map(|st| {
            let mut actions = st.actions.clone();
            for a in &st.actions {
                let extra: &[&str] = match a.as_str() {
                    "sqs:SendMessage" => &["sqs:SendMessageBatch"],
                    "sqs:DeleteMessage" => &["sqs:DeleteMessageBatch"],
                    "sqs:ChangeMessageVisibility" => &["sqs:ChangeMessageVisibilityBatch"],
                    "dynamodb:PutItem"
                    | "dynamodb:UpdateItem"
                    | "dynamodb:DeleteItem"
                    | "dynamodb:ConditionCheckItem" => &["dynamodb:TransactWriteItems"],
                    "dynamodb:GetItem" => &["dynamodb:TransactGetItems"],
                    _ => &[],
                };
                actions.extend(extra.iter().map(|e| e.to_string()));
            }
            actions.sort();
            actions.dedup();
            let sqs_only = st.actions.iter().all(|a| a.starts_with("sqs:"));
            let resources = if sqs_only { json!(st.resources) } else { json!("*") };
            json!({"Sid": st.sid, "Effect": "Allow", "Action": actions, "Resource": resources})
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn random_token(len: usize) -> String {
    (0..len).map(|_| fastrand::alphanumeric()).collect()
}

impl Deployment {
    pub async fn start(options: Options) -> Deployment {
        let template = Template::load();
        let definitions = template.functions();
        let binaries: Vec<String> = definitions.iter().map(|f| f.binary.clone()).collect();
        build_functions(&binaries).await;
        let moto = moto().await;
        let admin = sdk_config(&moto.endpoint, &moto.admin).await;
        let stack = format!("e2e{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut names = Names::new(&stack);
        for p in ["PublicBaseUrl", "ScanSchedule", "LogRetentionDays", "AlarmTopicArn"] {
            names.refs.insert(p.to_string(), template.parameter_default(p).unwrap_or_default());
        }
        let arn = |service: &str, rest: &str| format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}");

        // The table, with the template's keys, billing and time to live.
        let table = format!("{stack}-Table");
        create_table(&admin, &template, &table).await;
        names.refs.insert("Table".into(), table.clone());
        names.attributes.insert(("Table".into(), "Arn".into()), arn("dynamodb", &format!("table/{table}")));

        // The queues (the dead-letter queue first: the sync queue's redrive policy names it).
        let sqs = aws_sdk_sqs::Client::new(&admin);
        let mut queue_ids = template.resources_of_type("AWS::SQS::Queue");
        queue_ids.sort_by_key(|id| template.properties(id).get("RedrivePolicy").is_some());
        for id in &queue_ids {
            let props = template.properties(id);
            let fifo = props.get("FifoQueue").and_then(serde_yaml::Value::as_bool).unwrap_or(false);
            let name = format!("{stack}-{id}{}", if fifo { ".fifo" } else { "" });
            let mut create = sqs.create_queue().queue_name(&name);
            for (k, v) in props.as_mapping().expect("queue properties") {
                let key = k.as_str().expect("property name");
                let value = match key {
                    "RedrivePolicy" => names.resolve(v).to_string(),
                    _ => names.resolve_string(v),
                };
                create = create.attributes(QueueAttributeName::from(key), value);
            }
            let url = create.send().await.unwrap_or_else(|e| panic!("creating {name}: {e:?}")).queue_url.expect("url");
            names.refs.insert(id.clone(), url.clone());
            names.attributes.insert((id.clone(), "QueueUrl".into()), url);
            names.attributes.insert((id.clone(), "QueueName".into()), name.clone());
            names.attributes.insert((id.clone(), "Arn".into()), arn("sqs", &name));
        }

        // The admin token, generated as the template asks.
        let secret_ids = template.resources_of_type("AWS::SecretsManager::Secret");
        assert_eq!(secret_ids, ["AdminTokenSecret"], "the harness creates the admin token secret only");
        let props = template.properties("AdminTokenSecret");
        let secret_name = names.resolve_string(&props["Name"]);
        let length = props["GenerateSecretString"]["PasswordLength"].as_u64().expect("PasswordLength") as usize;
        let admin_token = random_token(length);
        let created = aws_sdk_secretsmanager::Client::new(&admin)
            .create_secret()
            .name(&secret_name)
            .secret_string(&admin_token)
            .send()
            .await
            .expect("the admin token secret");
        names.refs.insert("AdminTokenSecret".into(), created.arn.expect("secret ARN"));

        // Names the functions and roles may refer to.
        for id in template.resources_of_type("AWS::Logs::LogGroup") {
            let props = template.properties(&id);
            let name = names.resolve_string(&props["LogGroupName"]);
            let logs = |target: &'static str, body: Value| json_call(&moto.endpoint, &moto.admin, "logs", target, body);
            logs("Logs_20140328.CreateLogGroup", json!({"logGroupName": name})).await.expect("a log group");
            let days: u64 = names.resolve_string(&props["RetentionInDays"]).parse().expect("RetentionInDays");
            logs("Logs_20140328.PutRetentionPolicy", json!({"logGroupName": name, "retentionInDays": days}))
                .await
                .expect("its retention");
            names.attributes.insert((id.clone(), "Arn".into()), arn("logs", &format!("log-group:{name}:*")));
            names.refs.insert(id, name);
        }
        for id in template.resources_of_type("AWS::IAM::Role") {
            let name = format!("{stack}-{id}");
            names.attributes.insert((id.clone(), "Arn".into()), format!("arn:aws:iam::{ACCOUNT}:role/{name}"));
            names.refs.insert(id, name);
        }
        for id in template.resources_of_type("AWS::Serverless::HttpApi") {
            names.refs.insert(id, format!("{stack}-api"));
        }

        let proxy = Proxy::start(&moto.endpoint).await;
        let mut roles = BTreeMap::new();
        for f in &definitions {
            if roles.contains_key(&f.role) {
                continue;
            }
            let statements = template.role_statements(&f.role, &names);
            let keys = user_with_policy(moto, &format!("{stack}-{}", f.role), &moto_policy(&statements)).await;
            proxy.register(&keys.access_key_id, &f.role);
            roles.insert(f.role.clone(), Role { statements, keys });
        }

        let mut hs_config = options.hubspot.clone();
        hs_config.time_scale = options.time_scale;
        let mut ml_config = options.mailerlite.clone();
        ml_config.time_scale = options.time_scale;
        let hubspot = HubSpotSim::start(hs_config, loopback()).await.expect("HubSpot simulator");
        let mailerlite = MailerLiteSim::start(ml_config, loopback()).await.expect("MailerLite simulator");

        let mut functions = HashMap::new();
        let mut log_deliveries = HashMap::new();
        let mut routes = Vec::new();
        let mut sqs_source = None;
        let mut schedule = None;
        for f in &definitions {
            let keys = &roles[&f.role].keys;
            let mut env: Vec<(String, String)> =
                f.environment.iter().map(|(k, v)| (k.clone(), names.resolve_string(v))).collect();
            env.extend(
                [
                    ("AWS_REGION", REGION.to_string()),
                    ("AWS_DEFAULT_REGION", REGION.to_string()),
                    ("AWS_ACCESS_KEY_ID", keys.access_key_id.clone()),
                    ("AWS_SECRET_ACCESS_KEY", keys.secret_access_key.clone()),
                    ("AWS_ENDPOINT_URL", proxy.url.clone()),
                    ("HUBSPOT_API_URL", hubspot.base_url().to_string()),
                    ("MAILERLITE_API_URL", mailerlite.base_url().to_string()),
                ]
                .map(|(k, v)| (k.to_string(), v)),
            );
            env.extend(options.environment.iter().map(|(k, v)| (k.to_string(), v.clone())));
            let mut concurrency = 4;
            for e in &f.events {
                match e {
                    EventDef::Http { method, path } => routes.push(Route::new(method, path, &f.binary)),
                    EventDef::Sqs { queue, batch_size, report_batch_item_failures } => {
                        let queue_arn = names.resolve_string(queue);
                        let id = queue_ids
                            .iter()
                            .find(|id| names.attributes[&((*id).clone(), "Arn".to_string())] == queue_arn)
                            .expect("the event's queue");
                        concurrency = options.consumers;
                        sqs_source = Some(QueueSource {
                            queue_url: names.refs[id].clone(),
                            queue_arn,
                            region: REGION.into(),
                            function: f.binary.clone(),
                            batch_size: *batch_size,
                            report_batch_item_failures: *report_batch_item_failures,
                        });
                    }
                    EventDef::Schedule { logical_id } => {
                        schedule = Some((arn("events", &format!("rule/{stack}-{logical_id}")), f.binary.clone()));
                    }
                }
            }
            if let Some(group) = &f.log_group {
                let delivery = LogDelivery {
                    group: names.resolve_string(group),
                    stream: format!("2026/01/01/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
                    delivered: 0,
                };
                log_deliveries.insert(f.binary.clone(), (f.role.clone(), delivery));
            }
            let spec = FunctionSpec {
                name: f.binary.clone(),
                binary: binary_dir().join(&f.binary),
                env,
                timeout: Duration::from_secs(f.timeout_secs),
                memory_mb: f.memory_mb,
            };
            functions.insert(f.binary.clone(), Arc::new(Function::new(spec, concurrency)));
        }
        let functions = Arc::new(Functions(functions));
        let api = HttpApi::start(routes, functions.clone() as Arc<dyn Invoke>).await.expect("HTTP API");
        let source = sqs_source.expect("an SQS event source");
        let consumer = definitions.iter().find(|f| f.binary == source.function).expect("the queue's function");
        let consumer_config = sdk_config(&proxy.url, &roles[&consumer.role].keys).await;
        let mapping = EventSourceMapping::start(
            aws_sdk_sqs::Client::new(&consumer_config),
            source,
            functions.clone() as Arc<dyn Invoke>,
            options.consumers,
        )
        .await
        .expect("the event source mapping");
        Deployment {
            queue_url: names.refs["SyncQueue"].clone(),
            schedule: schedule.expect("a schedule"),
            template,
            names,
            admin,
            proxy,
            functions,
            roles,
            api,
            mapping: Some(mapping),
            hubspot,
            mailerlite,
            admin_token,
            http: reqwest::Client::new(),
            logs: std::sync::Mutex::new(log_deliveries),
        }
    }

    /// What Lambda does with a function's output, done now: the lines not delivered yet go to the
    /// function's log group, written with its role (`logs:CreateLogStream`, `logs:PutLogEvents`).
    pub async fn deliver_logs(&self) {
        let pending: Vec<(String, String, String, bool, Vec<String>)> = {
            let mut logs = self.logs.lock().unwrap();
            logs.iter_mut()
                .map(|(function, (role, d))| {
                    let lines = self.functions.0[function].logs();
                    let new = lines[d.delivered.min(lines.len())..].to_vec();
                    let first = d.delivered == 0;
                    d.delivered = lines.len();
                    (role.clone(), d.group.clone(), d.stream.clone(), first, new)
                })
                .collect()
        };
        for (role, group, stream, first, lines) in pending {
            let keys = &self.roles[&role].keys;
            let call = |target: &'static str, body: Value| json_call(&self.proxy.url, keys, "logs", target, body);
            if first {
                call("Logs_20140328.CreateLogStream", json!({"logGroupName": group, "logStreamName": stream}))
                    .await
                    .unwrap_or_else(|e| panic!("{role}: CreateLogStream: {e}"));
            }
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
            for chunk in lines.chunks(1000) {
                let events: Vec<Value> = chunk.iter().map(|l| json!({"timestamp": now, "message": l})).collect();
                call(
                    "Logs_20140328.PutLogEvents",
                    json!({"logGroupName": group, "logStreamName": stream, "logEvents": events}),
                )
                .await
                .unwrap_or_else(|e| panic!("{role}: PutLogEvents: {e}"));
            }
        }
    }

    pub fn api_url(&self) -> String {
        self.api.url()
    }

    /// One tick of the schedule: EventBridge invokes scheduled-scan; its answer.
    pub async fn tick(&self) -> Value {
        let (rule, function) = &self.schedule;
        let event = hmsync_lambda_local::schedule::scheduled_event(rule, time::OffsetDateTime::now_utc());
        let outcome = self.functions.invoke(function, event).await;
        let body =
            outcome.response().unwrap_or_else(|e| panic!("the schedule's tick failed: {e}\n{}", self.logs(function)));
        serde_json::from_slice(body).expect("the tick's answer")
    }

    /// The last lines a function wrote (for failure messages).
    pub fn logs(&self, function: &str) -> String {
        let lines = self.functions.0.get(function).map(|f| f.logs()).unwrap_or_default();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn queue_counts(&self, url: &str) -> (u64, u64) {
        let attrs = aws_sdk_sqs::Client::new(&self.admin)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        let n = |k: QueueAttributeName| attrs.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
        (
            n(QueueAttributeName::ApproximateNumberOfMessages),
            n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Waits until the queue is empty, no batch is being handled and both apps have delivered
    /// their webhooks, twice in a row.
    pub async fn settle(&self) {
        let mut quiet = 0;
        for _ in 0..600 {
            self.hubspot.dispatcher().wait_idle().await;
            self.mailerlite.dispatcher().wait_idle().await;
            let (visible, in_flight) = self.queue_counts(&self.queue_url).await;
            let busy = self.mapping.as_ref().is_some_and(|m| m.in_flight() > 0);
            if visible == 0 && in_flight == 0 && !busy {
                quiet += 1;
                if quiet >= 3 {
                    return;
                }
            } else {
                quiet = 0;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        panic!("the deployment did not settle; contact-sync said:\n{}", self.logs("contact-sync"));
    }

    /// A config API request with the admin token.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.api_url())).bearer_auth(&self.admin_token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("the HTTP API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The IAM audit of every role over the calls recorded so far.
    pub fn audit(&self) -> BTreeMap<String, Audit> {
        let calls = self.proxy.calls();
        self.roles.iter().map(|(role, r)| (role.clone(), audit(role, &r.statements, &calls))).collect()
    }

    /// Stops polling and every function environment.
    pub async fn shutdown(mut self) {
        if let Some(m) = self.mapping.take() {
            m.stop().await;
        }
        for f in self.functions.0.values() {
            f.shutdown().await;
        }
    }
}

async fn create_table(admin: &aws_config::SdkConfig, template: &Template, name: &str) {
    let props = template.properties("Table");
    let client = aws_sdk_dynamodb::Client::new(admin);
    let mut create = client.create_table().table_name(name);
    for d in props["AttributeDefinitions"].as_sequence().expect("AttributeDefinitions") {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(d["AttributeName"].as_str().expect("name"))
                .attribute_type(ScalarAttributeType::from(d["AttributeType"].as_str().expect("type")))
                .build()
                .expect("attribute definition"),
        );
    }
    for k in props["KeySchema"].as_sequence().expect("KeySchema") {
        create = create.key_schema(
            KeySchemaElement::builder()
                .attribute_name(k["AttributeName"].as_str().expect("name"))
                .key_type(KeyType::from(k["KeyType"].as_str().expect("key type")))
                .build()
                .expect("key"),
        );
    }
    create = create.billing_mode(BillingMode::from(props["BillingMode"].as_str().expect("BillingMode")));
    create.send().await.expect("create the table");
    if let Some(ttl) = props.get("TimeToLiveSpecification") {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(ttl["AttributeName"].as_str().expect("TTL attribute"))
                    .enabled(ttl["Enabled"].as_bool().unwrap_or(false))
                    .build()
                    .expect("TTL"),
            )
            .send()
            .await
            .expect("the table's time to live");
    }
}
