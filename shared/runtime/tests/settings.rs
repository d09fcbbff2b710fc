//! `Settings::from_lookup` (what `from_env` reads): required variables, defaults, and errors
//! that name the variable.

use std::collections::HashMap;

use hmsync_runtime::{Settings, SettingsError, env};

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| vars.get(name).cloned()
}

const QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/hmsync-SyncQueue-1A2B.fifo";

#[test]
fn the_minimal_environment_takes_the_defaults() {
    let s = Settings::from_lookup(lookup(&[("HMSYNC_TABLE", "hmsync-Table-1A2B"), ("HMSYNC_QUEUE_URL", QUEUE)]))
        .expect("settings");
    assert_eq!(
        s,
        Settings {
            table: "hmsync-Table-1A2B".into(),
            queue_url: QUEUE.into(),
            dlq_url: None,
            secret_prefix: "hmsync/".into(),
            public_base_url: None,
            admin_token_secret: None,
            hubspot_api_url: None,
            mailerlite_api_url: None,
            daily_limit_probe: None,
        }
    );
}

#[test]
fn every_variable_is_read() {
    let s = Settings::from_lookup(lookup(&[
        ("HMSYNC_TABLE", "t"),
        ("HMSYNC_QUEUE_URL", QUEUE),
        ("HMSYNC_DLQ_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq.fifo"),
        ("HMSYNC_SECRET_PREFIX", "hmsync/prod/"),
        ("HMSYNC_PUBLIC_BASE_URL", "https://sync.example.com/"),
        ("HMSYNC_ADMIN_TOKEN_SECRET", "hmsync-admin-token/prod"),
        ("HUBSPOT_API_URL", "http://127.0.0.1:8010"),
        ("MAILERLITE_API_URL", "http://127.0.0.1:8020/"),
        ("HMSYNC_DAILY_LIMIT_PROBE_SECONDS", "60"),
    ]))
    .expect("settings");
    assert_eq!(s.daily_limit_probe, Some(std::time::Duration::from_secs(60)));
    assert_eq!(s.dlq_url.as_deref(), Some("https://sqs.eu-west-1.amazonaws.com/123456789012/dlq.fifo"));
    assert_eq!(s.secret_prefix, "hmsync/prod/");
    assert_eq!(s.public_base_url.as_deref(), Some("https://sync.example.com"), "the trailing slash is dropped");
    assert_eq!(s.admin_token_secret.as_deref(), Some("hmsync-admin-token/prod"));
    assert_eq!(s.hubspot_api_url.as_deref(), Some("http://127.0.0.1:8010"));
    assert_eq!(s.mailerlite_api_url.as_deref(), Some("http://127.0.0.1:8020"));
}

#[test]
fn a_missing_variable_is_named() {
    let err = Settings::from_lookup(lookup(&[("HMSYNC_QUEUE_URL", QUEUE)])).unwrap_err();
    assert_eq!(err, SettingsError::Missing(env::TABLE));
    assert!(err.to_string().contains("HMSYNC_TABLE"), "{err}");

    let err = Settings::from_lookup(lookup(&[("HMSYNC_TABLE", "t")])).unwrap_err();
    assert_eq!(err, SettingsError::Missing(env::QUEUE_URL));
    assert!(err.to_string().contains("HMSYNC_QUEUE_URL"), "{err}");
}

#[test]
fn an_empty_value_counts_as_missing() {
    // CloudFormation passes "" for an optional parameter left empty.
    let err = Settings::from_lookup(lookup(&[("HMSYNC_TABLE", " "), ("HMSYNC_QUEUE_URL", QUEUE)])).unwrap_err();
    assert_eq!(err, SettingsError::Missing(env::TABLE));
    let s = Settings::from_lookup(lookup(&[
        ("HMSYNC_TABLE", "t"),
        ("HMSYNC_QUEUE_URL", QUEUE),
        ("HMSYNC_PUBLIC_BASE_URL", ""),
        ("HMSYNC_SECRET_PREFIX", ""),
    ]))
    .expect("settings");
    assert_eq!(s.public_base_url, None);
    assert_eq!(s.secret_prefix, "hmsync/");
}

#[test]
fn unusable_values_are_named() {
    let err = Settings::from_lookup(lookup(&[
        ("HMSYNC_TABLE", "t"),
        ("HMSYNC_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/standard-queue"),
    ]))
    .unwrap_err();
    assert!(matches!(err, SettingsError::Invalid { name: "HMSYNC_QUEUE_URL", .. }), "{err:?}");
    assert!(err.to_string().contains("FIFO"), "{err}");

    let err = Settings::from_lookup(lookup(&[
        ("HMSYNC_TABLE", "t"),
        ("HMSYNC_QUEUE_URL", QUEUE),
        ("HUBSPOT_API_URL", "api.hubapi.com"),
    ]))
    .unwrap_err();
    assert!(matches!(err, SettingsError::Invalid { name: "HUBSPOT_API_URL", .. }), "{err:?}");
    assert!(err.to_string().contains("HUBSPOT_API_URL") && err.to_string().contains("api.hubapi.com"), "{err}");
}

#[test]
fn a_daily_limit_probe_that_is_not_a_positive_number_of_seconds_is_named() {
    for bad in ["0", "-5", "15m", "1.5"] {
        let err = Settings::from_lookup(lookup(&[
            ("HMSYNC_TABLE", "t"),
            ("HMSYNC_QUEUE_URL", QUEUE),
            ("HMSYNC_DAILY_LIMIT_PROBE_SECONDS", bad),
        ]))
        .unwrap_err();
        assert!(matches!(err, SettingsError::Invalid { name: env::DAILY_LIMIT_PROBE_SECONDS, .. }), "{bad}: {err}");
    }
}
