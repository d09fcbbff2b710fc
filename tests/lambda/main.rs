//! The deployed shape, end to end: `template.yaml` deployed on 127.0.0.1 (`deploy.rs`) with the
//! five real function binaries behind the Lambda Runtime API, API Gateway, the SQS event source
//! mapping and the schedule, DynamoDB, SQS and Secrets Manager on a moto server that enforces
//! IAM, and each function signing with an IAM user that carries exactly its role's statements.
//! The tests reach hmsync only as users and the apps do: the config API, the apps' webhooks, the
//! schedule's tick and the queue. Each ends with the IAM audit of every call the functions made.

mod deploy;
mod moto;
mod proxy;
mod template;

use deploy::{Deployment, Options};
use hmsync_sandbox::common::people::person;
use hmsync_sandbox::common::webhooks::DeliveryOptions;
use hmsync_sandbox::hubspot::{SeedRequest, WebhookSettings};
use hmsync_sandbox::mailerlite::{SeedSpec, UserEdit};
use reqwest::Method;
use serde_json::{Map, Value, json};

fn config(name: &str, target_group: &str) -> Value {
    json!({
        "name": name,
        "target_group": target_group,
        "mappings": [
            {"hubspot_property": "firstname", "mailerlite_field": "name"},
            {"hubspot_property": "lastname", "mailerlite_field": "last_name"},
            {"hubspot_property": "city", "mailerlite_field": "city"}
        ]
    })
}

/// The simulators' credentials, as a user pastes them into `PUT /connections/{id}/credentials`.
fn credentials(d: &Deployment) -> Value {
    let hs = d.hubspot.config();
    json!({
        "hubspot": {"type": "token", "access_token": hs.token},
        "hubspot_app_id": hs.app_id,
        "hubspot_client_secret": hs.client_secret,
        "mailerlite_api_key": d.mailerlite.config().token,
    })
}

fn props(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
}

#[track_caller]
fn expect(answer: (u16, Value), status: u16) -> Value {
    assert_eq!(answer.0, status, "{}", answer.1);
    answer.1
}

/// Creates, configures and activates a connection through the config API, as docs/api.md says.
async fn connect_and_activate(d: &Deployment, id: &str, target_group: &str) {
    expect(
        d.call(Method::POST, "/connections", Some(json!({"id": id, "config": config(id, target_group)}))).await,
        201,
    );
    expect(d.call(Method::PUT, &format!("/connections/{id}/credentials"), Some(credentials(d))).await, 200);
    expect(d.call(Method::POST, &format!("/connections/{id}/preview"), None).await, 200);
    expect(d.call(Method::POST, &format!("/connections/{id}/activate"), None).await, 202);
    d.settle().await;
}

async fn status(d: &Deployment, id: &str) -> Value {
    expect(d.call(Method::GET, &format!("/connections/{id}/status"), None).await, 200)
}

/// Fails with every call the template does not allow, and every statement no call needed.
async fn assert_iam(d: &Deployment) {
    d.deliver_logs().await;
    let audits = d.audit();
    let mut problems = Vec::new();
    for (role, audit) in &audits {
        for call in &audit.refused {
            problems.push(format!("{role}: the template does not allow {call}"));
        }
        for call in &audit.denied_by_moto {
            problems.push(format!("{role}: moto refused {call}"));
        }
        for st in &d.roles[role].statements {
            if !audit.used.contains_key(&st.sid) {
                problems.push(format!("{role}: no call needed statement {} ({:?})", st.sid, st.actions));
            }
        }
    }
    assert!(problems.is_empty(), "IAM audit:\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lives_through_the_deployed_functions_under_their_template_roles() {
    let d = Deployment::start(Options::default()).await;
    // The user points the HubSpot app's webhooks at the deployment.
    d.hubspot.set_webhook_settings(Some(WebhookSettings::for_sync(format!("{}/webhooks/hubspot", d.api_url()))));
    let seeded = d.hubspot.seed(&SeedRequest { count: 12, ..Default::default() }).unwrap();
    d.mailerlite.seed(&SeedSpec { count: 12, start_index: 6, ..Default::default() }).unwrap();
    let group = d.mailerlite.create_group("From HubSpot");

    // Create → credentials → preview → activate → the initial sync.
    connect_and_activate(&d, "sales", &group).await;
    let s = status(&d, "sales").await;
    assert_eq!(s["lifecycle"], "continuous", "{s}");
    assert_eq!(s["counts"]["links"]["complete"], 18, "{s}");
    for i in 0..18 {
        let email = person(i).email;
        let groups = d.mailerlite.subscriber(&email).unwrap().groups.unwrap_or_default();
        assert!(groups.iter().any(|g| g.id == group), "{email} is in the target group");
    }

    // A HubSpot change arrives by webhook and reaches MailerLite.
    d.hubspot.user_edit_contact(seeded.ids[3], &props(&[("firstname", "Webhooked")]), 7).unwrap();
    d.settle().await;
    assert_eq!(d.mailerlite.subscriber(&person(3).email).unwrap().fields.get("name"), Some(&json!("Webhooked")));

    // A MailerLite change arrives by webhook and reaches HubSpot.
    let edit =
        UserEdit { fields: [("city".to_string(), json!("Nairobi"))].into_iter().collect(), ..Default::default() };
    d.mailerlite.user_edit(&person(14).email, &edit).unwrap();
    d.settle().await;
    let contact = d.hubspot.contact_by_email(&person(14).email).unwrap();
    assert_eq!(contact["properties"]["city"], "Nairobi");

    // The webhook functions read the signing secrets only: their roles cannot read API keys or
    // OAuth tokens, and they asked for nothing else.
    webhook_roles_read_signing_secrets_only(&d, "sales");

    // Someone deletes our MailerLite webhooks; a lost HubSpot webhook: the schedule's tick
    // starts a scan that finds the change and registers the webhooks again, and contact-sync
    // updates their secrets (its own part of the credentials, which it may not create).
    let ml = mailerlite_client(&d);
    for hook in ml.webhooks().await.unwrap() {
        assert!(ml.delete_webhook(&hook.id).await.unwrap());
    }
    d.hubspot.dispatcher().set_options(DeliveryOptions { paused: true, ..d.hubspot.dispatcher().options() });
    d.hubspot.user_edit_contact(seeded.ids[4], &props(&[("city", "Lost Webhook City")]), 7).unwrap();
    assert_eq!(d.hubspot.dispatcher().discard_held(), 1, "the webhook is lost");
    d.hubspot.dispatcher().set_options(DeliveryOptions { paused: false, ..d.hubspot.dispatcher().options() });
    let tick = d.tick().await;
    assert_eq!(tick["scans_enqueued"], 1, "{tick}");
    d.settle().await;
    assert_eq!(
        d.mailerlite.subscriber(&person(4).email).unwrap().fields.get("city"),
        Some(&json!("Lost Webhook City"))
    );
    assert_eq!(ml.webhooks().await.unwrap().len(), 2, "the scan registered the webhooks again");
    let edit =
        UserEdit { fields: [("city".to_string(), json!("Signed Again"))].into_iter().collect(), ..Default::default() };
    d.mailerlite.user_edit(&person(15).email, &edit).unwrap();
    d.settle().await;
    let contact = d.hubspot.contact_by_email(&person(15).email).unwrap();
    assert_eq!(contact["properties"]["city"], "Signed Again", "deliveries signed with the new secrets are taken");

    // A poison message in the connection's group, with a change queued behind it: the poison
    // goes to the dead-letter queue on its first receive with its error, the change goes through.
    let mapping = d.mapping.as_ref().unwrap();
    mapping.set_enabled(false).await;
    let admin_sqs = aws_sdk_sqs::Client::new(&d.admin);
    admin_sqs
        .send_message()
        .queue_url(&d.queue_url)
        .message_body(r#"{"type":"resync_everything","connection_id":"sales"}"#)
        .message_group_id("sales")
        .message_deduplication_id("poison")
        .send()
        .await
        .unwrap();
    d.hubspot.user_edit_contact(seeded.ids[5], &props(&[("lastname", "Behind The Poison")]), 7).unwrap();
    d.hubspot.dispatcher().wait_idle().await;
    mapping.set_enabled(true).await;
    d.settle().await;
    assert_eq!(
        d.mailerlite.subscriber(&person(5).email).unwrap().fields.get("last_name"),
        Some(&json!("Behind The Poison"))
    );
    let s = status(&d, "sales").await;
    assert_eq!(s["dead_letters"], 1, "{s}");
    let letters = expect(d.call(Method::GET, "/connections/sales/dead-letters", None).await, 200);
    let dead = &letters["dead_letters"][0];
    assert_eq!(dead["kind"], "unreadable");
    assert_eq!(dead["receive_count"], 1, "set aside on its first receive");
    assert!(dead["last_error"].as_str().unwrap().contains("not a sync message"), "{dead}");
    // Requeued from the status page, it fails again and is set aside again.
    let requeued = expect(d.call(Method::POST, "/dead-letters/requeue", None).await, 200);
    assert_eq!(requeued["requeued"], 1);
    d.settle().await;
    assert_eq!(status(&d, "sales").await["dead_letters"], 1);

    let stats = mapping.stats();
    assert_eq!(stats.failed_invocations, 0, "{stats:?}\n{}", d.logs("contact-sync"));

    // The connection is deleted with everything it stored.
    expect(d.call(Method::DELETE, "/connections/sales", None).await, 204);
    expect(d.call(Method::GET, "/connections/sales", None).await, 404);
    assert_iam(&d).await;
    d.shutdown().await;
}

fn mailerlite_client(d: &Deployment) -> hmsync_mailerlite::Client {
    let config =
        hmsync_mailerlite::Config::new(d.mailerlite.config().token).with_base_url(d.mailerlite.base_url().to_string());
    hmsync_mailerlite::Client::new(config).unwrap()
}

/// The ARN IAM sees for one of a connection's secrets.
fn secret_arn(d: &Deployment, name: &str) -> String {
    let prefix = d.names.resolve_string(&d.template.function_environment("HMSYNC_SECRET_PREFIX"));
    format!("arn:aws:secretsmanager:{}:{}:secret:{prefix}{name}-AbCdEf", proxy::REGION, proxy::ACCOUNT)
}

/// The webhook roles may read a connection's signing secrets and nothing else of its
/// credentials; contact-sync may update its own parts and create none.
fn webhook_roles_read_signing_secrets_only(d: &Deployment, id: &str) {
    use hmsync_engine::adapters as a;
    let allowed = |role: &str, action: &str, name: &str| {
        !proxy::allowing(&d.roles[role].statements, action, &secret_arn(d, name)).is_empty()
    };
    let read = "secretsmanager:GetSecretValue";
    for role in ["HubSpotWebhookRole", "MailerLiteWebhookRole"] {
        assert!(allowed(role, read, &a::hubspot_signing_secret_name(id)), "{role}");
        assert!(allowed(role, read, &a::mailerlite_signing_secret_name(id)), "{role}");
        assert!(!allowed(role, read, &a::credentials_secret_name(id)), "{role} cannot read API keys");
        assert!(!allowed(role, read, &a::hubspot_tokens_secret_name(id)), "{role} cannot read OAuth tokens");
        let calls = d.proxy.calls();
        let secrets: Vec<&String> =
            calls.iter().filter(|c| c.role == role && c.resource.contains(":secret:")).map(|c| &c.resource).collect();
        assert!(secrets.iter().all(|r| r.contains("/hmsync/signing/")), "{role} read {secrets:?}");
    }
    let sync = "ContactSyncRole";
    assert!(allowed(sync, "secretsmanager:PutSecretValue", &a::hubspot_tokens_secret_name(id)));
    assert!(allowed(sync, "secretsmanager:PutSecretValue", &a::mailerlite_signing_secret_name(id)));
    assert!(!allowed(sync, "secretsmanager:PutSecretValue", &a::credentials_secret_name(id)));
    assert!(!allowed(sync, "secretsmanager:PutSecretValue", &a::hubspot_signing_secret_name(id)));
    for action in ["secretsmanager:CreateSecret", "secretsmanager:RestoreSecret"] {
        for name in a::connection_secret_names(id) {
            assert!(!allowed(sync, action, &name), "contact-sync may not {action} {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_evaluates_actions_and_sqs_resources_only() {
    // The probe behind the split of work between moto and the proxy's audit (moto.rs).
    let moto = moto::moto().await;
    let admin = moto::sdk_config(&moto.endpoint, &moto.admin).await;
    let name = format!("probe{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ddb = aws_sdk_dynamodb::Client::new(&admin);
    ddb.create_table()
        .table_name(&name)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let q = aws_sdk_sqs::Client::new(&admin)
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let table_arn = format!("arn:aws:dynamodb:us-east-1:123456789012:table/{name}");
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}.fifo");
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": table_arn},
        {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn},
        {"Effect": "Allow", "Action": "sqs:GetQueueAttributes", "Resource": "arn:aws:sqs:us-east-1:123456789012:other.fifo"}
    ]});
    let keys = moto::user_with_policy(moto, &name, &policy).await;
    let config = moto::sdk_config(&moto.endpoint, &keys).await;
    let (ddb, sqs) = (aws_sdk_dynamodb::Client::new(&config), aws_sdk_sqs::Client::new(&config));
    let key = aws_sdk_dynamodb::types::AttributeValue::S("a".into());
    // A statement scoped to the table never matches: moto checks DynamoDB against `*`.
    assert!(ddb.get_item().table_name(&name).key("pk", key.clone()).send().await.is_err());
    assert!(ddb.put_item().table_name(&name).item("pk", key.clone()).send().await.is_ok());
    // SQS is checked against the queue's ARN.
    let send = sqs.send_message().queue_url(&q).message_body("x").message_group_id("g").message_deduplication_id("d");
    assert!(send.send().await.is_ok());
    assert!(sqs.get_queue_attributes().queue_url(&q).send().await.is_err(), "another queue's grant");
    // Batches are checked under their own names.
    let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
        .id("1")
        .message_body("x")
        .message_group_id("g")
        .message_deduplication_id("e")
        .build()
        .unwrap();
    assert!(sqs.send_message_batch().queue_url(&q).entries(entry).send().await.is_err());
    // Unknown keys are refused.
    let stranger = moto::Keys { access_key_id: "AKIASTRANGEREXAMPLE".into(), secret_access_key: "x".into() };
    let config = moto::sdk_config(&moto.endpoint, &stranger).await;
    assert!(aws_sdk_sqs::Client::new(&config).get_queue_attributes().queue_url(&q).send().await.is_err());
}

/// The HubSpot OAuth install as a user clicks through it: the config API's start link, the
/// app's authorize page, back to the config API's callback.
async fn install_hubspot_app(d: &Deployment, id: &str) {
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let start = no_redirects
        .get(format!("{}/connections/{id}/oauth/hubspot/start", d.api_url()))
        .bearer_auth(&d.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302, "{}", start.text().await.unwrap_or_default());
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let authorized = no_redirects.get(&authorize).send().await.unwrap();
    assert_eq!(authorized.status(), 302);
    let callback = authorized.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.starts_with(&d.api_url()), "the callback comes back through API Gateway: {callback}");
    let done = no_redirects.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap_or_default());
}

/// The refresh token hmsync keeps for a connection (read by the test as an administrator, to
/// revoke it in the app the way an uninstall does).
async fn stored_refresh_token(d: &Deployment, id: &str) -> String {
    let prefix = d.names.resolve_string(&d.template.function_environment("HMSYNC_SECRET_PREFIX"));
    let secret = aws_sdk_secretsmanager::Client::new(&d.admin)
        .get_secret_value()
        .secret_id(format!("{prefix}{}", hmsync_engine::adapters::credentials_secret_name(id)))
        .send()
        .await
        .unwrap();
    let credentials: Value = serde_json::from_str(secret.secret_string().unwrap()).unwrap();
    credentials["hubspot"]["refresh_token"].as_str().expect("OAuth tokens are stored").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_hubspot_install_pauses_the_connection_and_a_new_install_resumes_it() {
    let d = Deployment::start(Options::default()).await;
    d.hubspot.set_webhook_settings(Some(WebhookSettings::for_sync(format!("{}/webhooks/hubspot", d.api_url()))));
    d.hubspot.seed(&SeedRequest { count: 6, ..Default::default() }).unwrap();
    d.mailerlite.seed(&SeedSpec { count: 6, start_index: 3, ..Default::default() }).unwrap();
    let group = d.mailerlite.create_group("From HubSpot");
    let hs = d.hubspot.config();
    let id = "agency";
    expect(d.call(Method::POST, "/connections", Some(json!({"id": id, "config": config(id, &group)}))).await, 201);
    let oauth = json!({
        "hubspot": {"type": "oauth", "client_id": hs.client_id, "client_secret": hs.client_secret},
        "hubspot_app_id": hs.app_id,
        "mailerlite_api_key": d.mailerlite.config().token,
    });
    expect(d.call(Method::PUT, &format!("/connections/{id}/credentials"), Some(oauth)).await, 200);
    install_hubspot_app(&d, id).await;
    expect(d.call(Method::POST, &format!("/connections/{id}/activate"), None).await, 202);
    d.settle().await;
    assert_eq!(status(&d, id).await["counts"]["links"]["complete"], 9);

    // The app is uninstalled: its refresh token is revoked and its access tokens stop working.
    assert!(d.hubspot.revoke_refresh_token(&stored_refresh_token(&d, id).await));
    d.hubspot.expire_access_tokens();
    let edit = UserEdit {
        fields: [("city".to_string(), json!("Kept While Paused"))].into_iter().collect(),
        ..Default::default()
    };
    d.mailerlite.user_edit(&person(7).email, &edit).unwrap();
    d.settle().await;
    let s = status(&d, id).await;
    assert_eq!(s["pause"]["reason"], "credentials", "{s}");
    assert!(s["problem"]["action"].as_str().unwrap().contains("Reconnect HubSpot"), "{s}");
    assert!(s["parked_messages"].as_u64().unwrap() >= 1, "the work waits: {s}");

    // A new install: the connection resumes and the change that waited reaches HubSpot.
    install_hubspot_app(&d, id).await;
    d.settle().await;
    let s = status(&d, id).await;
    assert!(s.get("pause").is_none_or(Value::is_null), "{s}");
    let contact = d.hubspot.contact_by_email(&person(7).email).unwrap();
    assert_eq!(contact["properties"]["city"], "Kept While Paused");
    assert_iam_refusals_only(&d).await;
    d.shutdown().await;
}

/// Fails with every call the template does not allow (statements are checked for use by the
/// test that exercises them all).
async fn assert_iam_refusals_only(d: &Deployment) {
    d.deliver_logs().await;
    let problems: Vec<String> = d
        .audit()
        .iter()
        .flat_map(|(role, a)| {
            a.refused.iter().chain(&a.denied_by_moto).map(move |c| format!("{role}: not allowed: {c}"))
        })
        .collect();
    assert!(problems.is_empty(), "IAM audit:\n{}", problems.join("\n"));
}

/// How often the daily-limit test's deployment tries HubSpot again after its daily limit.
const PROBE_SECS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_daily_limit_wait_clears_by_itself_and_every_connection_keeps_its_scans() {
    let d = Deployment::start(Options {
        environment: vec![("HMSYNC_DAILY_LIMIT_PROBE_SECONDS", PROBE_SECS.to_string())],
        ..Options::default()
    })
    .await;
    d.hubspot.set_webhook_settings(Some(WebhookSettings::for_sync(format!("{}/webhooks/hubspot", d.api_url()))));
    d.hubspot.seed(&SeedRequest { count: 6, ..Default::default() }).unwrap();
    d.mailerlite.seed(&SeedSpec { count: 6, start_index: 3, ..Default::default() }).unwrap();
    let group = d.mailerlite.create_group("From HubSpot");
    connect_and_activate(&d, "main", &group).await;
    // Another connection of the same portal: HubSpot → MailerLite for the members of a list.
    let list = d.hubspot.create_list("Partners", "MANUAL", None).unwrap();
    let list_id = list["listId"].as_str().map(String::from).unwrap_or_else(|| list["listId"].to_string());
    let mut other = config("other", &d.mailerlite.create_group("Partners"));
    other["direction"] = json!("hubspot_to_mailerlite");
    other["hubspot_rule"] = json!({"type": "lists", "list_ids": [list_id]});
    expect(d.call(Method::POST, "/connections", Some(json!({"id": "other", "config": other}))).await, 201);
    expect(d.call(Method::PUT, "/connections/other/credentials", Some(credentials(&d))).await, 200);
    expect(d.call(Method::POST, "/connections/other/activate", None).await, 202);
    d.settle().await;
    let other_scan = status(&d, "other").await["last_scan"]["finished_at_ms"].as_i64().unwrap();

    // Another app of the portal used up HubSpot's daily limit; a MailerLite change waits for it.
    d.hubspot.set_daily_limit_exhausted(true);
    let edit = UserEdit {
        fields: [("city".to_string(), json!("After Midnight"))].into_iter().collect(),
        ..Default::default()
    };
    d.mailerlite.user_edit(&person(7).email, &edit).unwrap();
    d.settle().await;
    let s = status(&d, "main").await;
    assert!(s["problem"]["message"].as_str().unwrap().contains("daily"), "the connection waits for the limit: {s}");
    assert!(s["parked_messages"].as_u64().unwrap() >= 1, "the change waits: {s}");

    // The schedule's ticks go on for every connection, the waiting one included.
    let tick = d.tick().await;
    assert_eq!(tick["scans_enqueued"], 2, "{tick}");
    assert_eq!(tick["failures"], 0, "{tick}");
    d.settle().await;

    // The limit resets at the portal's midnight: the wait ends by itself, the change arrives, and
    // the other connection's next scheduled scan runs.
    d.hubspot.set_daily_limit_exhausted(false);
    tokio::time::sleep(std::time::Duration::from_secs(PROBE_SECS + 1)).await;
    d.tick().await;
    d.settle().await;
    let contact = d.hubspot.contact_by_email(&person(7).email).unwrap();
    assert_eq!(contact["properties"]["city"], "After Midnight");
    let s = status(&d, "main").await;
    assert!(s["waiting_until_ms"].is_null() && s["problem"].is_null(), "{s}");
    let later = status(&d, "other").await["last_scan"]["finished_at_ms"].as_i64().unwrap();
    assert!(later > other_scan, "the other connection was scanned again");
    assert_iam_refusals_only(&d).await;
    d.shutdown().await;
}

/// Every function has an error and a throttle alarm, the queue's oldest message, the schedule's
/// tick failures and webhook 401s have theirs, and docs/deploy.md says what to do about each.
#[test]
fn every_alarm_is_in_the_template_and_explained_in_the_deploy_guide() {
    let template = template::Template::load();
    let alarms = template.resources_of_type("AWS::CloudWatch::Alarm");
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploy.md")).unwrap();
    let watched = |metric: &str, dimension: Option<&str>| {
        alarms.iter().any(|a| {
            let p = template.properties(a);
            p["MetricName"].as_str() == Some(metric)
                && dimension.is_none_or(|d| serde_yaml::to_string(&p["Dimensions"]).unwrap().contains(d))
        })
    };
    for f in template.resources_of_type("AWS::Serverless::Function") {
        assert!(watched("Errors", Some(&f)), "{f} has an Errors alarm");
        assert!(watched("Throttles", Some(&f)), "{f} has a Throttles alarm");
    }
    assert!(watched("ApproximateAgeOfOldestMessage", Some("SyncQueue")));
    assert!(watched("ApproximateNumberOfMessagesVisible", Some("DeadLetterQueue")));
    assert!(watched("ScheduledScanErrors", None));
    assert!(watched("WebhookUnauthorized", None));
    let filters = template.resources_of_type("AWS::Logs::MetricFilter");
    for metric in ["ScheduledScanErrors", "WebhookUnauthorized"] {
        assert!(
            filters.iter().any(|f| serde_yaml::to_string(template.properties(f)).unwrap().contains(metric)),
            "a metric filter counts {metric}"
        );
    }
    for a in &alarms {
        let named = a.strip_suffix("ErrorAlarm").or_else(|| a.strip_suffix("ThrottleAlarm")).map(|_| {
            if a.ends_with("ErrorAlarm") { "**`<Function>ErrorAlarm`**" } else { "**`<Function>ThrottleAlarm`**" }
        });
        let heading = named.map(String::from).unwrap_or_else(|| format!("**{a}**"));
        assert!(guide.contains(&heading), "docs/deploy.md explains {a} ({heading})");
    }
}
