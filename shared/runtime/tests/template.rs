//! Checks of `template.yaml` that cfn-lint and `sam validate --lint` do not make: they skip
//! enum values inside `AWS::Serverless::Function` (runtime, response types, schedule) and do not
//! see circular dependencies that only appear once SAM has expanded the template.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hmsync_runtime::env;
use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> Value {
    let path = root().join("template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

/// The value under `path` (tags like `!Ref` are looked through).
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut v = untag(v);
    for key in path {
        v = untag(v.get(*key)?);
    }
    Some(v)
}

fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        other => other,
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

fn resources(t: &Value) -> Vec<(String, &Value)> {
    at(t, &["Resources"])
        .and_then(Value::as_mapping)
        .expect("Resources")
        .iter()
        .map(|(k, v)| (k.as_str().expect("resource name").to_string(), v))
        .collect()
}

fn resources_of_type<'a>(t: &'a Value, ty: &str) -> Vec<(String, &'a Value)> {
    resources(t).into_iter().filter(|(_, r)| str_at(r, &["Type"]) == Some(ty)).collect()
}

fn functions(t: &Value) -> Vec<(String, &Value)> {
    let functions = resources_of_type(t, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 5, "five functions");
    functions
}

/// A function property, or the Globals value when the function does not set it.
fn function_property<'a>(t: &'a Value, function: &'a Value, key: &str) -> Option<&'a Value> {
    at(function, &["Properties", key]).or_else(|| at(t, &["Globals", "Function", key]))
}

/// The function's environment: Globals merged with its own (SAM merges the maps).
fn environment(t: &Value, function: &Value) -> BTreeMap<String, Value> {
    let mut vars = BTreeMap::new();
    for source in [
        at(t, &["Globals", "Function", "Environment", "Variables"]),
        at(function, &["Properties", "Environment", "Variables"]),
    ]
    .into_iter()
    .flatten()
    {
        for (k, v) in source.as_mapping().expect("Variables is a map") {
            vars.insert(k.as_str().expect("variable name").to_string(), v.clone());
        }
    }
    vars
}

fn events(function: &Value) -> Vec<(String, &Value)> {
    at(function, &["Properties", "Events"])
        .and_then(Value::as_mapping)
        .map(|m| m.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v)).collect())
        .unwrap_or_default()
}

fn binary(function: &Value) -> &str {
    str_at(function, &["Metadata", "BuildProperties", "Binary"]).expect("Metadata.BuildProperties.Binary")
}

/// Names of the workspace's binary packages (a `src/main.rs`), read from the root manifest.
fn workspace_binaries() -> BTreeSet<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("root Cargo.toml");
    let members = manifest.split("members = [").nth(1).and_then(|rest| rest.split(']').next()).expect("members");
    let mut binaries = BTreeSet::new();
    for member in members.split(',').map(|m| m.trim().trim_matches('"')).filter(|m| !m.is_empty()) {
        let dir = root().join(member);
        if !dir.join("src/main.rs").exists() {
            continue;
        }
        let package = std::fs::read_to_string(dir.join("Cargo.toml")).expect("member Cargo.toml");
        let name = package
            .lines()
            .find_map(|l| l.strip_prefix("name = ").map(|n| n.trim().trim_matches('"').to_string()))
            .expect("package name");
        binaries.insert(name);
    }
    binaries
}

#[test]
fn it_is_a_sam_template() {
    assert_eq!(str_at(&template(), &["Transform"]), Some("AWS::Serverless-2016-10-31"));
}

#[test]
fn every_function_is_a_cargo_lambda_build_for_al2023_on_arm64() {
    let t = template();
    let binaries = workspace_binaries();
    let mut built = BTreeSet::new();
    for (name, f) in functions(&t) {
        assert_eq!(function_property(&t, f, "Runtime").and_then(Value::as_str), Some("provided.al2023"), "{name}");
        let arch: Vec<&str> = function_property(&t, f, "Architectures")
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(arch, ["arm64"], "{name}");
        assert_eq!(function_property(&t, f, "CodeUri").and_then(Value::as_str), Some("."), "{name}");
        assert_eq!(str_at(f, &["Metadata", "BuildMethod"]), Some("rust-cargolambda"), "{name}");
        let bin = binary(f);
        assert!(binaries.contains(bin), "{name} builds {bin}, which is not a binary package of the workspace");
        assert!(built.insert(bin.to_string()), "two functions build {bin}");
    }
    let expected: BTreeSet<String> =
        ["hubspot-webhook", "mailerlite-webhook", "scheduled-scan", "contact-sync", "config-api"]
            .map(String::from)
            .into();
    assert_eq!(built, expected);
}

#[test]
fn every_function_gets_the_settings_it_requires() {
    let t = template();
    for (name, f) in functions(&t) {
        let vars = environment(&t, f);
        for required in [env::TABLE, env::QUEUE_URL, env::SECRET_PREFIX] {
            assert!(vars.contains_key(required), "{name} lacks {required}");
        }
        let http = events(f).iter().any(|(_, e)| str_at(e, &["Type"]) == Some("HttpApi"));
        if http {
            assert_eq!(
                vars.get("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").and_then(Value::as_str),
                Some("true"),
                "{name} is behind the HTTP API"
            );
            assert!(vars.contains_key(env::PUBLIC_BASE_URL), "{name}");
        }
        if binary(f) == "config-api" {
            assert!(vars.contains_key(env::ADMIN_TOKEN_SECRET), "the config API reads the admin token");
        }
    }
}

#[test]
fn the_queue_consumer_reports_partial_batch_failures() {
    let t = template();
    let mut sqs_events = 0;
    for (name, f) in functions(&t) {
        for (event, e) in events(f) {
            if str_at(e, &["Type"]) != Some("SQS") {
                continue;
            }
            sqs_events += 1;
            assert_eq!(binary(f), "contact-sync", "{name}.{event}");
            let types: Vec<&str> = at(e, &["Properties", "FunctionResponseTypes"])
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert_eq!(types, ["ReportBatchItemFailures"], "{name}.{event}");
            // One message per invocation: every receive SQS counts is a real attempt (see
            // hmsync_runtime::contact_sync).
            assert_eq!(at(e, &["Properties", "BatchSize"]).and_then(Value::as_u64), Some(1), "{name}.{event}");
        }
    }
    assert_eq!(sqs_events, 1);
}

#[test]
fn the_scan_runs_on_the_schedule_parameter_every_two_hours_by_default() {
    let t = template();
    assert_eq!(str_at(&t, &["Parameters", "ScanSchedule", "Default"]), Some("rate(2 hours)"));
    let mut scheduled = Vec::new();
    for (_, f) in functions(&t) {
        for (_, e) in events(f) {
            match str_at(e, &["Type"]) {
                Some("Schedule") => scheduled.push((binary(f), e.get("Properties").and_then(|p| p.get("Schedule")))),
                // EventBridge Scheduler does not send the rule's "Scheduled Event" that
                // scheduled-scan reads (`EventBridgeEvent`).
                Some("ScheduleV2") => panic!("scheduled-scan reads EventBridge rule events: use a Schedule event"),
                _ => {}
            }
        }
    }
    assert_eq!(scheduled.len(), 1, "one schedule");
    let (bin, expression) = scheduled[0];
    assert_eq!(bin, "scheduled-scan");
    let Some(Value::Tagged(reference)) = expression else {
        panic!("the schedule is !Ref ScanSchedule: {expression:?}")
    };
    assert_eq!((reference.tag.to_string().as_str(), &reference.value), ("!Ref", &Value::String("ScanSchedule".into())));
}

#[test]
fn the_http_api_routes_each_path_to_its_function() {
    let t = template();
    let apis: Vec<String> = resources_of_type(&t, "AWS::Serverless::HttpApi").into_iter().map(|(n, _)| n).collect();
    assert_eq!(apis.len(), 1);
    let mut routes = BTreeSet::new();
    for (_, f) in functions(&t) {
        for (_, e) in events(f) {
            if str_at(e, &["Type"]) == Some("HttpApi") {
                assert_eq!(str_at(e, &["Properties", "ApiId"]), Some(apis[0].as_str()));
                let method = str_at(e, &["Properties", "Method"]).expect("Method");
                let path = str_at(e, &["Properties", "Path"]).expect("Path");
                routes.insert((method.to_string(), path.to_string(), binary(f).to_string()));
            }
        }
    }
    let expected: BTreeSet<(String, String, String)> = [
        ("POST", "/webhooks/hubspot", "hubspot-webhook"),
        ("POST", "/webhooks/mailerlite/{connection_id}", "mailerlite-webhook"),
        ("ANY", "/", "config-api"),
        ("ANY", "/{proxy+}", "config-api"),
    ]
    .into_iter()
    .map(|(m, p, b)| (m.to_string(), p.to_string(), b.to_string()))
    .collect();
    assert_eq!(routes, expected);
}

/// The two public webhook functions answer anyone on the internet before a signature is
/// checked: each has reserved (and so capped) concurrency and its route its own throttle, so a
/// flood is throttled there instead of taking the account's concurrency from the other functions.
#[test]
fn the_public_webhook_functions_have_reserved_concurrency_and_route_throttles() {
    let t = template();
    let default = at(&t, &["Parameters", "WebhookConcurrency", "Default"]).and_then(Value::as_u64);
    assert!(default.is_some_and(|d| (1..=100).contains(&d)), "a small reservation by default: {default:?}");
    let api_rate = at(&t, &["Resources", "HttpApi", "Properties", "DefaultRouteSettings", "ThrottlingRateLimit"])
        .and_then(Value::as_f64)
        .expect("the API's default throttle");
    let mut public = 0;
    for (name, f) in functions(&t) {
        let webhook = matches!(binary(f), "hubspot-webhook" | "mailerlite-webhook");
        let reserved = at(f, &["Properties", "ReservedConcurrentExecutions"]);
        if !webhook {
            continue;
        }
        public += 1;
        let reserved = reserved.unwrap_or_else(|| panic!("{name}: no ReservedConcurrentExecutions"));
        let text = serde_yaml::to_string(reserved).unwrap();
        assert!(text.contains("WebhookConcurrency"), "{name}: reserved from the parameter: {text}");
        for (_, e) in events(f) {
            let rate = at(e, &["Properties", "RouteSettings", "ThrottlingRateLimit"]).and_then(Value::as_f64);
            let burst = at(e, &["Properties", "RouteSettings", "ThrottlingBurstLimit"]).and_then(Value::as_f64);
            let (rate, burst) = (rate.expect("a route rate limit"), burst.expect("a route burst limit"));
            assert!(rate > 0.0 && rate <= api_rate && burst >= rate, "{name}: route throttle {rate}/{burst}");
        }
        let skips = serde_yaml::to_string(at(f, &["Metadata", "checkov", "skip"]).unwrap()).unwrap();
        assert!(!skips.contains("CKV_AWS_115"), "{name}: checkov's concurrency check is met, not skipped");
    }
    assert_eq!(public, 2);
}

#[test]
fn the_sync_queue_is_fifo_with_a_dead_letter_queue() {
    let t = template();
    let (_, consumer) = functions(&t).into_iter().find(|(_, f)| binary(f) == "contact-sync").expect("contact-sync");
    let consumed = events(consumer)
        .into_iter()
        .find(|(_, e)| str_at(e, &["Type"]) == Some("SQS"))
        .and_then(|(_, e)| str_at(e, &["Properties", "Queue"]))
        .expect("contact-sync's SQS event names its queue");
    let queue_name = consumed.strip_suffix(".Arn").expect("Queue: !GetAtt <queue>.Arn");
    let queue = at(&t, &["Resources", queue_name]).expect("the consumed queue");
    assert_eq!(str_at(queue, &["Type"]), Some("AWS::SQS::Queue"));
    let props = at(queue, &["Properties"]).expect("Properties");
    assert_eq!(at(props, &["FifoQueue"]).and_then(Value::as_bool), Some(true));
    assert_eq!(
        at(props, &["ContentBasedDeduplication"]).and_then(Value::as_bool),
        Some(false),
        "hmsync sends its own deduplication ids"
    );

    let redrive = at(props, &["RedrivePolicy"]).expect("RedrivePolicy");
    assert_eq!(at(redrive, &["maxReceiveCount"]).and_then(Value::as_u64), Some(10));
    let dlq_name = str_at(redrive, &["deadLetterTargetArn"])
        .and_then(|a| a.strip_suffix(".Arn"))
        .expect("deadLetterTargetArn: !GetAtt <dlq>.Arn");
    let dlq = at(&t, &["Resources", dlq_name]).expect("the dead-letter queue");
    assert_eq!(str_at(dlq, &["Type"]), Some("AWS::SQS::Queue"));
    assert_eq!(
        at(dlq, &["Properties", "FifoQueue"]).and_then(Value::as_bool),
        Some(true),
        "a FIFO queue's DLQ is FIFO"
    );

    let timeout = function_property(&t, consumer, "Timeout").and_then(Value::as_u64).expect("Timeout");
    let visibility = at(props, &["VisibilityTimeout"]).and_then(Value::as_u64).expect("VisibilityTimeout");
    assert!(visibility > 6 * timeout, "visibility timeout {visibility} must exceed 6 x the function timeout {timeout}");

    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    assert!(
        alarms.iter().any(|(_, a)| {
            str_at(a, &["Properties", "MetricName"]) == Some("ApproximateNumberOfMessagesVisible")
                && at(a, &["Properties", "Dimensions"])
                    .and_then(Value::as_sequence)
                    .is_some_and(|d| d.iter().any(|d| str_at(d, &["Value"]) == Some(&format!("{dlq_name}.QueueName"))))
                && at(a, &["Properties", "Threshold"]).and_then(Value::as_u64) == Some(1)
                && str_at(a, &["Properties", "ComparisonOperator"]) == Some("GreaterThanOrEqualToThreshold")
        }),
        "an alarm on the dead-letter queue's visible messages >= 1"
    );
}

#[test]
fn the_table_has_the_store_s_keys_ttl_recovery_and_encryption() {
    let t = template();
    let tables = resources_of_type(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1);
    let p = at(tables[0].1, &["Properties"]).unwrap();
    assert_eq!(str_at(p, &["BillingMode"]), Some("PAY_PER_REQUEST"));
    let keys: Vec<(&str, &str)> = at(p, &["KeySchema"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .map(|k| (str_at(k, &["AttributeName"]).unwrap(), str_at(k, &["KeyType"]).unwrap()))
        .collect();
    assert_eq!(keys, [("pk", "HASH"), ("sk", "RANGE")]);
    let types: Vec<(&str, &str)> = at(p, &["AttributeDefinitions"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .map(|k| (str_at(k, &["AttributeName"]).unwrap(), str_at(k, &["AttributeType"]).unwrap()))
        .collect();
    assert_eq!(types, [("pk", "S"), ("sk", "S")]);
    assert_eq!(
        at(p, &["PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(str_at(p, &["TimeToLiveSpecification", "AttributeName"]), Some("expires_at"));
    assert_eq!(at(p, &["TimeToLiveSpecification", "Enabled"]).and_then(Value::as_bool), Some(true));
    assert_eq!(at(p, &["SSESpecification", "SSEEnabled"]).and_then(Value::as_bool), Some(true));
}

/// Every `Statement` list anywhere in the template, with where it is.
fn statements<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match untag(v) {
        Value::Mapping(m) => {
            for (k, child) in m {
                let key = k.as_str().unwrap_or("?");
                if key == "Statement" {
                    match untag(child) {
                        Value::Sequence(s) => {
                            out.extend(s.iter().enumerate().map(|(i, st)| (format!("{path}.Statement[{i}]"), st)))
                        }
                        single => out.push((format!("{path}.Statement"), single)),
                    }
                }
                statements(child, format!("{path}.{key}"), out);
            }
        }
        Value::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                statements(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Every plain string inside a value (looking through tags and lists).
fn strings(v: &Value) -> Vec<&str> {
    match untag(v) {
        Value::String(s) => vec![s.as_str()],
        Value::Sequence(s) => s.iter().flat_map(strings).collect(),
        Value::Mapping(m) => m.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn no_iam_statement_grants_a_wildcard_resource() {
    let t = template();
    let mut found = Vec::new();
    statements(&t, "template".into(), &mut found);
    let policies = found.iter().filter(|(p, _)| p.contains(".PolicyDocument.")).count();
    assert!(policies >= 5, "each function's role has a policy document; found {policies} statements");
    for (path, statement) in &found {
        assert!(at(statement, &["NotResource"]).is_none(), "{path}: NotResource");
        assert!(at(statement, &["NotAction"]).is_none(), "{path}: NotAction");
        if path.contains("AssumeRolePolicyDocument") {
            continue; // a trust policy names a principal, not resources
        }
        let resource = at(statement, &["Resource"]).unwrap_or_else(|| panic!("{path}: no Resource"));
        for s in strings(resource) {
            assert_ne!(s, "*", "{path}: Resource \"*\"");
        }
        for action in strings(at(statement, &["Action"]).unwrap_or_else(|| panic!("{path}: no Action"))) {
            assert!(!action.contains('*'), "{path}: wildcard action {action}");
        }
    }
    // SAM attaches AWSLambdaBasicExecutionRole (logs on "*") to the roles it makes; every
    // function brings its own role instead.
    for (name, f) in functions(&t) {
        assert!(at(f, &["Properties", "Role"]).is_some(), "{name} needs its own Role");
        assert!(function_property(&t, f, "Policies").is_none(), "{name}: put permissions in its Role");
    }
}

/// True if `v` refers to resource `name` (`!Ref`, `!GetAtt`, `!Sub "${name…}"`).
fn refers_to(v: &Value, name: &str) -> bool {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let inner = strings(&t.value);
            let hit = match tag.trim_start_matches('!') {
                "Ref" => inner.contains(&name),
                "GetAtt" => inner.iter().any(|s| *s == name || s.starts_with(&format!("{name}."))),
                "Sub" => {
                    inner.iter().any(|s| s.contains(&format!("${{{name}}}")) || s.contains(&format!("${{{name}.")))
                }
                _ => false,
            };
            hit || refers_to(&t.value, name)
        }
        Value::Sequence(s) => s.iter().any(|c| refers_to(c, name)),
        Value::Mapping(m) => m.iter().any(|(k, c)| {
            let direct = match k.as_str().unwrap_or_default() {
                "Ref" => c.as_str() == Some(name),
                "Fn::GetAtt" => strings(c).first().is_some_and(|s| *s == name || s.starts_with(&format!("{name}."))),
                "Fn::Sub" => strings(c).iter().any(|s| s.contains(&format!("${{{name}}}"))),
                _ => false,
            };
            direct || refers_to(c, name)
        }),
        _ => false,
    }
}

#[test]
fn no_function_setting_refers_to_the_http_api_it_is_routed_from() {
    // SAM writes each function's ARN into the HTTP API's definition, so a function that refers
    // to the API (say, its URL in an environment variable) makes a circular dependency. cfn-lint
    // only notices on the expanded template; `sam deploy` fails late.
    let t = template();
    let apis: Vec<String> = resources_of_type(&t, "AWS::Serverless::HttpApi").into_iter().map(|(n, _)| n).collect();
    let globals = at(&t, &["Globals", "Function"]).cloned().unwrap_or(Value::Null);
    for api in &apis {
        assert!(!refers_to(&globals, api), "Globals.Function refers to {api}");
        for (name, f) in functions(&t) {
            let mut props = at(f, &["Properties"]).cloned().expect("Properties");
            props.as_mapping_mut().unwrap().remove("Events");
            assert!(!refers_to(&props, api), "{name} refers to {api}");
            // The role is part of the function's dependencies too.
            if let Some(role) = str_at(f, &["Properties", "Role"]).and_then(|r| r.strip_suffix(".Arn")) {
                let role = at(&t, &["Resources", role]).expect("role resource");
                assert!(!refers_to(role, api), "{name}'s role refers to {api}");
            }
        }
    }
}

#[test]
fn the_reference_walk_sees_refs_getatts_and_subs() {
    let v: Value = serde_yaml::from_str(
        "A: !Ref HttpApi\nB: !GetAtt HttpApi.ApiEndpoint\nC: !Sub 'https://${HttpApi}.execute-api'\nD: !Ref HttpApiStage",
    )
    .unwrap();
    for key in ["A", "B", "C"] {
        assert!(refers_to(v.get(key).unwrap(), "HttpApi"), "{key}");
    }
    assert!(!refers_to(v.get("D").unwrap(), "HttpApi"));
}
