//! The contract suite against the AWS adapters (DynamoDB, SQS FIFO, Secrets Manager) on a
//! local moto server, plus checks of the raw DynamoDB items and of the service limits that
//! moto does not enforce.
//!
//! Run with `./scripts/test`, which starts moto and exports `HMSYNC_MOTO_ENDPOINT`; without it
//! these tests fail (they never skip and never reach real AWS). Every test uses its own table,
//! queues and secret names, since moto's state is global.

#[macro_use]
mod contract;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use contract::{Fixture, QUEUE_MAX_RECEIVES, link, unique};
use hmsync_core::Side;
use hmsync_store::testing::{create_fifo_queue_pair, moto_endpoint, moto_sdk_config, unique_name};
use hmsync_store::{
    ConnectionStore, DynamoStore, ErrorStore, HistoryEntry, HistoryStore, LinkKey, LinkStore, SecretStore,
    SecretsManagerSecrets, SqsQueue, Store, StoreError, SyncQueue, WorkQueue,
};

async fn config() -> aws_config::SdkConfig {
    moto_sdk_config(&moto_endpoint()).await
}

async fn new_table(config: &aws_config::SdkConfig) -> DynamoStore {
    let store = DynamoStore::new(config, unique_name("hmsync-store"));
    store.create_table_if_missing().await.unwrap();
    store
}

async fn dynamo_store() -> Fixture<dyn Store> {
    Fixture::new(Box::new(new_table(&config().await).await) as Box<dyn Store>)
}

async fn sqs_queue() -> Fixture<dyn WorkQueue> {
    let config = config().await;
    let (url, dlq) = create_fifo_queue_pair(&config, &unique_name("hmsync-sync"), QUEUE_MAX_RECEIVES).await.unwrap();
    let queue = SqsQueue::new(&config, url, Some(dlq)).with_receive_wait(Duration::ZERO);
    Fixture::new(Box::new(queue) as Box<dyn WorkQueue>)
}

async fn secrets_manager() -> Fixture<dyn SecretStore> {
    let secrets = SecretsManagerSecrets::new(&config().await, format!("{}/", unique_name("hmsync")));
    Fixture::new(Box::new(secrets) as Box<dyn SecretStore>)
}

mod dynamodb {
    store_contract!(super::dynamo_store);
}

mod sqs {
    queue_contract!(super::sqs_queue);
}

mod secretsmanager {
    secrets_contract!(super::secrets_manager);
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn raw_items(store: &DynamoStore, pk: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

fn sk(item: &std::collections::HashMap<String, AttributeValue>) -> &str {
    item["sk"].as_s().unwrap()
}

#[tokio::test]
async fn dynamodb_items_follow_the_documented_layout() {
    let store = new_table(&config().await).await;
    store.create_connection("c1", &hmsync_core::ConnectionConfig::new("x")).await.unwrap();
    store.put_link("c1", &link("l1", Some("501"), Some("9001"), "ada@example.com"), None).await.unwrap();
    store.set_error("c1", &hmsync_store::ContactError::new("hubspot:7", vec![])).await.unwrap();
    let ttl = Duration::from_secs(30 * 86_400);
    let before = now_secs();
    let entry = HistoryEntry {
        link_id: "l1".into(),
        at_ms: 1_700_000_000_123,
        email: "ada@example.com".into(),
        target: Side::MailerLite,
        field: "name".into(),
        before: None,
        after: Some("Ada".into()),
        reason: "changed in HubSpot".into(),
        source: "webhook".into(),
    };
    store.append_history("c1", &[entry], ttl).await.unwrap();
    let after = now_secs();

    let items = raw_items(&store, "CONN#c1").await;
    let mut sks: Vec<&str> = items.iter().map(sk).collect();
    sks.retain(|s| !s.starts_with("LOG#"));
    assert_eq!(sks, vec!["CONFIG", "EMAIL#ada@example.com", "ERR#hubspot:7", "HS#501", "LINK#l1", "ML#9001", "STATS"]);
    for index in ["EMAIL#ada@example.com", "HS#501", "ML#9001"] {
        let item = items.iter().find(|i| sk(i) == index).unwrap();
        assert_eq!(item["link_id"].as_s().unwrap(), "l1");
    }
    let link_item = items.iter().find(|i| sk(i) == "LINK#l1").unwrap();
    assert_eq!(link_item["version"].as_n().unwrap(), "1");
    assert!(!link_item.contains_key("ml_status"), "absent options are left out, not NULL");
    let stats = items.iter().find(|i| sk(i) == "STATS").unwrap();
    assert_eq!((stats["links"].as_n().unwrap().as_str(), stats["errors"].as_n().unwrap().as_str()), ("1", "1"));

    let log = items.iter().find(|i| sk(i).starts_with("LOG#l1#001700000000123#")).expect("history item");
    let expires: u64 = log["expires_at"].as_n().unwrap().parse().unwrap();
    assert!((before + ttl.as_secs()..=after + ttl.as_secs()).contains(&expires), "{expires}");

    let listing = raw_items(&store, "CONNECTIONS").await;
    assert_eq!(listing.iter().map(sk).collect::<Vec<_>>(), vec!["CONN#c1"]);
}

/// Records the size of every batch request the client sends.
#[derive(Debug, Default, Clone)]
struct BatchSizes {
    writes: Arc<Mutex<Vec<usize>>>,
    gets: Arc<Mutex<Vec<usize>>>,
}

impl Intercept for BatchSizes {
    fn name(&self) -> &'static str {
        "BatchSizes"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = context.input().downcast_ref::<BatchWriteItemInput>() {
            let n = input.request_items().map(|r| r.values().map(Vec::len).sum()).unwrap_or(0);
            self.writes.lock().unwrap().push(n);
        }
        if let Some(input) = context.input().downcast_ref::<BatchGetItemInput>() {
            let n = input.request_items().map(|r| r.values().map(|k| k.keys().len()).sum()).unwrap_or(0);
            self.gets.lock().unwrap().push(n);
        }
        Ok(())
    }
}

#[tokio::test]
async fn dynamodb_batches_stay_within_the_service_limits() {
    // moto accepts 26 items in a BatchWriteItem; DynamoDB refuses more than 25.
    let config = config().await;
    let sizes = BatchSizes::default();
    let client_config = aws_sdk_dynamodb::config::Builder::from(&config).interceptor(sizes.clone()).build();
    let store =
        DynamoStore::from_client(aws_sdk_dynamodb::Client::from_conf(client_config), unique_name("hmsync-store"));
    store.create_table_if_missing().await.unwrap();

    let entries: Vec<HistoryEntry> = (0..60)
        .map(|i| HistoryEntry {
            link_id: "l1".into(),
            at_ms: i,
            email: "a@example.com".into(),
            target: Side::HubSpot,
            field: format!("f{i}"),
            before: None,
            after: None,
            reason: "r".into(),
            source: "s".into(),
        })
        .collect();
    store.append_history("c1", &entries, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(*sizes.writes.lock().unwrap(), vec![25, 25, 10]);
    assert_eq!(store.read_history("c1", "l1", 100).await.unwrap().len(), 60);

    for i in 0..120 {
        store
            .put_link("c1", &link(&format!("l{i}"), Some(&i.to_string()), None, &format!("p{i}@x.com")), None)
            .await
            .unwrap();
    }
    let keys: Vec<LinkKey> = (0..150).map(|i| LinkKey::HubSpot(i.to_string())).collect();
    sizes.gets.lock().unwrap().clear();
    assert_eq!(store.find_links("c1", &keys).await.unwrap().len(), 120);
    // Index entries in calls of at most 100 keys, then the 120 links.
    assert_eq!(*sizes.gets.lock().unwrap(), vec![100, 50, 100, 20]);
}

#[tokio::test]
async fn dynamodb_errors_are_typed_and_name_the_table() {
    let store = DynamoStore::new(&config().await, unique_name("hmsync-missing"));
    let err = store.get_link("c1", "l1").await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains(store.table()), "{err}");
}

#[tokio::test]
async fn creating_the_table_twice_is_harmless() {
    let config = config().await;
    let store = new_table(&config).await;
    store.create_table_if_missing().await.unwrap();
    let ttl = store.client().describe_time_to_live().table_name(store.table()).send().await.unwrap();
    let description = ttl.time_to_live_description.unwrap();
    assert_eq!(description.attribute_name.as_deref(), Some("expires_at"));
}

#[tokio::test]
async fn sqs_messages_carry_group_and_hashed_dedup_ids() {
    let config = config().await;
    let (url, _dlq) = create_fifo_queue_pair(&config, &unique_name("hmsync-sync"), 5).await.unwrap();
    let queue = SqsQueue::new(&config, url.clone(), None).with_receive_wait(Duration::ZERO);
    let long_dedup = "mailerlite:".to_string() + &"é".repeat(100);
    let group = unique("conn");
    // 23 messages: three SendMessageBatch calls.
    let messages: Vec<hmsync_store::QueueMessage> = (0..23)
        .map(|i| hmsync_store::QueueMessage {
            group_id: group.clone(),
            dedup_id: if i == 0 { long_dedup.clone() } else { format!("d{i}") },
            body: format!("m{i}"),
        })
        .collect();
    queue.send_batch(&messages).await.unwrap();

    let raw = aws_sdk_sqs::Client::new(&config)
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(1)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let attributes = raw[0].attributes.as_ref().unwrap();
    use aws_sdk_sqs::types::MessageSystemAttributeName as A;
    assert_eq!(attributes[&A::MessageGroupId], group);
    assert_eq!(attributes[&A::MessageDeduplicationId], hmsync_store::fifo_dedup_id(&long_dedup));
    assert_eq!(raw[0].body.as_deref(), Some("m0"));

    assert!(queue.dead_letters(10).await.unwrap().is_empty(), "no dead-letter queue configured");
    assert_eq!(queue.requeue_dead_letters(10).await.unwrap(), 0);
}

#[tokio::test]
async fn sqs_refuses_to_send_to_a_missing_queue_with_a_typed_error() {
    let config = config().await;
    let queue = SqsQueue::new(&config, format!("{}/123456789012/{}.fifo", moto_endpoint(), unique_name("nope")), None);
    let message = hmsync_store::QueueMessage { group_id: "c1".into(), dedup_id: "d".into(), body: "b".into() };
    let err = queue.send_batch(&[message]).await.unwrap_err();
    assert!(matches!(err, StoreError::SendFailed { failed: 1, total: 1, transient: false, .. }), "{err:?}");
}

#[tokio::test]
async fn secrets_are_stored_under_the_deployment_prefix() {
    let config = config().await;
    let prefix = format!("{}/", unique_name("hmsync"));
    let secrets = SecretsManagerSecrets::new(&config, prefix.clone());
    secrets.put_secret("c1/hubspot", "pat-na1-secret").await.unwrap();
    let raw = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id(format!("{prefix}c1/hubspot"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.secret_string.as_deref(), Some("pat-na1-secret"));
    assert!(!format!("{secrets:?}").contains("pat-na1-secret"));
}
