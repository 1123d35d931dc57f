//! `template.yaml` (AWS) and the local emulator (`hookline local up`, the tests) must declare the
//! same table and queues: this test creates them with the shared code and compares them with the
//! template, so the two cannot drift.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_sqs::types::QueueAttributeName;
use hookline_tests::Stack;
use serde_yaml::Value;

/// An index as compared: name, key schema, projection type.
type Gsi = (String, Vec<(String, String)>, String);

fn template() -> Value {
    let path = format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resources_of(t: &Value, ty: &str) -> Vec<(String, Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(ty))
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r["Properties"].clone()))
        .collect()
}

fn keys(schema: &Value) -> Vec<(String, String)> {
    schema
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_owned(),
                k["KeyType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn table_in_template_matches_the_local_table() {
    let t = template();
    let tables = resources_of(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table");
    let props = &tables[0].1;
    let stack = Stack::new().await.unwrap();
    let desc = stack
        .dynamo
        .describe_table()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    let local = desc.table().unwrap();

    assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        local
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str()),
        Some("PAY_PER_REQUEST")
    );
    let local_keys: Vec<(String, String)> = local
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(keys(&props["KeySchema"]), local_keys);

    let tmpl_attrs: BTreeSet<(String, String)> = props["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap().to_owned(),
                a["AttributeType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let local_attrs: BTreeSet<(String, String)> = local
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(tmpl_attrs, local_attrs);

    let mut tmpl_gsis: Vec<Gsi> = props["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["IndexName"].as_str().unwrap().to_owned(),
                keys(&g["KeySchema"]),
                g["Projection"]["ProjectionType"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let mut local_gsis: Vec<Gsi> = local
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            (
                g.index_name().unwrap().to_owned(),
                g.key_schema()
                    .iter()
                    .map(|k| {
                        (
                            k.attribute_name().to_owned(),
                            k.key_type().as_str().to_owned(),
                        )
                    })
                    .collect(),
                g.projection()
                    .unwrap()
                    .projection_type()
                    .unwrap()
                    .as_str()
                    .to_owned(),
            )
        })
        .collect();
    tmpl_gsis.sort();
    local_gsis.sort();
    assert_eq!(tmpl_gsis, local_gsis);

    let ttl = stack
        .dynamo
        .describe_time_to_live()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    let local_ttl = ttl
        .time_to_live_description()
        .unwrap()
        .attribute_name()
        .unwrap()
        .to_owned();
    assert_eq!(
        props["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(local_ttl.as_str())
    );
    assert_eq!(
        props["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true),
        "point-in-time recovery in AWS"
    );
}

#[tokio::test]
async fn queues_in_template_match_the_local_queues() {
    let t = template();
    let queues = resources_of(&t, "AWS::SQS::Queue");
    let main = queues
        .iter()
        .find(|(_, p)| !p["RedrivePolicy"].is_null())
        .map(|(_, p)| p.clone())
        .expect("a queue with a redrive policy");
    let dlq = queues
        .iter()
        .find(|(_, p)| p["RedrivePolicy"].is_null())
        .map(|(_, p)| p.clone())
        .expect("a dead-letter queue");

    let stack = Stack::new().await.unwrap();
    let attrs = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes().unwrap();
    let local_visibility: u64 = attrs[&QueueAttributeName::VisibilityTimeout]
        .parse()
        .unwrap();
    assert_eq!(main["VisibilityTimeout"].as_u64(), Some(local_visibility));
    let local_main_retention: u64 = attrs[&QueueAttributeName::MessageRetentionPeriod]
        .parse()
        .unwrap();
    assert_eq!(
        main["MessageRetentionPeriod"].as_u64(),
        Some(local_main_retention)
    );
    assert_eq!(
        Some(hookline::followup::Timers::default().retention.as_secs()),
        main["MessageRetentionPeriod"].as_u64(),
        "the timers count the queue's retention"
    );
    let redrive: serde_json::Value =
        serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
    let local_max = redrive["maxReceiveCount"].as_u64().unwrap();
    assert_eq!(
        main["RedrivePolicy"]["maxReceiveCount"].as_u64(),
        Some(local_max)
    );

    let dlq_attrs = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.dlq_url)
        .attribute_names(QueueAttributeName::MessageRetentionPeriod)
        .send()
        .await
        .unwrap();
    let local_retention: u64 = dlq_attrs.attributes().unwrap()
        [&QueueAttributeName::MessageRetentionPeriod]
        .parse()
        .unwrap();
    assert_eq!(
        dlq["MessageRetentionPeriod"].as_u64(),
        Some(local_retention)
    );
}

/// The value under a `!Ref` tag, if `v` is one.
fn ref_of(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str(),
        _ => None,
    }
}

/// Every mapping nested anywhere in `v`.
fn mappings(v: &Value) -> Vec<&serde_yaml::Mapping> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Mapping(m) => {
                out.push(m);
                stack.extend(m.values());
            }
            Value::Sequence(s) => stack.extend(s),
            Value::Tagged(t) => stack.push(&t.value),
            _ => {}
        }
    }
    out
}

/// The receivers in the template: functions with an HTTP API route.
fn receivers(t: &Value) -> Vec<(String, Value)> {
    resources_of(t, "AWS::Serverless::Function")
        .into_iter()
        .filter(|(_, p)| p["Events"]["Webhook"]["Type"].as_str() == Some("HttpApi"))
        .collect()
}

#[test]
fn each_receiver_reads_its_own_secret_and_only_it_does() {
    let t = template();
    let secrets: BTreeSet<String> = resources_of(&t, "AWS::SecretsManager::Secret")
        .into_iter()
        .map(|(name, props)| {
            assert!(
                props["SecretString"].is_null() && props["GenerateSecretString"].is_null(),
                "{name}: no secret value in the template"
            );
            name
        })
        .collect();
    let rx = receivers(&t);
    assert_eq!(
        rx.len(),
        hookline_receivers::all().len(),
        "the registry's receivers"
    );
    assert_eq!(secrets.len(), rx.len(), "one secret per receiver");
    let mut used = BTreeSet::new();
    for (name, props) in &rx {
        let env = &props["Environment"]["Variables"];
        assert!(env[hookline::config::WEBHOOK_SECRETS].is_null(), "{name}");
        let secret = ref_of(&env[hookline::config::WEBHOOK_SECRETS_ID])
            .unwrap_or_else(|| panic!("{name}: WEBHOOK_SECRETS_ID is a !Ref"))
            .to_owned();
        assert!(secrets.contains(&secret), "{name}: {secret} is a secret");
        assert!(
            used.insert(secret.clone()),
            "{secret} shared by two receivers"
        );
        assert!(
            ref_of(&env[hookline::config::ALLOWED_SOURCE_CIDRS]).is_some(),
            "{name}: ALLOWED_SOURCE_CIDRS from a parameter"
        );
        for var in [
            hookline::config::WEBHOOK_SECRETS_REFRESH_SECS,
            hookline::config::WEBHOOK_SECRETS_MAX_AGE_SECS,
        ] {
            let v = env[var].as_str().unwrap_or_else(|| panic!("{name}: {var}"));
            assert!(v.parse::<u32>().is_ok_and(|n| n > 0), "{name}: {var}");
        }
    }
    // GetSecretValue: granted by each receiver on its own secret, by nothing else, on nothing else.
    for (name, props) in resources_of(&t, "AWS::Serverless::Function") {
        let own = ref_of(&props["Environment"]["Variables"][hookline::config::WEBHOOK_SECRETS_ID])
            .map(str::to_owned);
        let grants: Vec<Option<String>> = mappings(&props["Policies"])
            .into_iter()
            .filter(|m| {
                let actions: Vec<&str> = match m.get("Action") {
                    Some(Value::String(a)) => vec![a.as_str()],
                    Some(Value::Sequence(s)) => s.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                actions.iter().any(|a| a.starts_with("secretsmanager:"))
            })
            .map(|m| m.get("Resource").and_then(ref_of).map(str::to_owned))
            .collect();
        match &own {
            Some(secret) => assert_eq!(grants, [Some(secret.clone())], "{name}"),
            None => assert!(grants.is_empty(), "{name} reads no secret"),
        }
    }
    let no_echo = t["Parameters"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, p)| !p["NoEcho"].is_null())
        .count();
    assert_eq!(no_echo, 0, "no secret parameters");
}

#[test]
fn alarms_watch_metric_names_and_dimensions_the_code_emits() {
    use hookline::metrics as m;
    let t = template();
    let known: BTreeSet<&str> = [
        m::RECEIVED,
        m::ACCEPTED,
        m::DUPLICATE,
        m::STALE,
        m::IGNORED,
        m::QUARANTINED,
        m::REJECTED,
        m::UNAVAILABLE,
        m::ENQUEUE_FAILED,
        m::HANDLER_DURATION_MS,
        m::FOLLOWUPS_DONE,
        m::FOLLOWUPS_RETRIED,
        m::FOLLOWUPS_FAILED,
        m::FOLLOWUPS_SKIPPED,
        m::RECONCILER_REENQUEUED,
        m::RECONCILER_CORRUPT,
        m::RECONCILER_BACKLOG_AGE_MS,
    ]
    .into_iter()
    .chain(
        [400, 401, 403, 405, 413, 415, 422]
            .map(|s| m::rejection(http::StatusCode::from_u16(s).unwrap())),
    )
    .collect();
    let specs = hookline_receivers::all();
    let mut watched = BTreeSet::new();
    let mut aggregate = BTreeSet::new();
    for (name, alarm) in resources_of(&t, "AWS::CloudWatch::Alarm") {
        assert!(
            ref_of(&alarm["AlarmActions"][0]) == Some("AlarmTopic"),
            "{name} notifies the alarm topic"
        );
        for metric in mappings(&alarm) {
            if metric.get("Namespace").and_then(Value::as_str) != Some(m::NAMESPACE) {
                continue;
            }
            let metric_name = metric["MetricName"].as_str().unwrap();
            assert!(known.contains(metric_name), "{name}: {metric_name}");
            let Some(dims) = metric.get("Dimensions") else {
                // The dimension-less total over every function (shared/src/metrics.rs): it
                // covers every receiver of the registry, present and future.
                aggregate.insert(metric_name.to_owned());
                watched.insert(metric_name.to_owned());
                continue;
            };
            watched.insert(metric_name.to_owned());
            let dims: Vec<(String, String)> = dims
                .as_sequence()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["Name"].as_str().unwrap().to_owned(),
                        d["Value"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let names: Vec<&str> = dims.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["function", "source"], "{name}");
            let (function, source) = (&dims[0].1, &dims[1].1);
            let from_a_receiver = specs
                .iter()
                .any(|s| s.function == function && s.source == source);
            // The worker counts per source of the follow-up it ran.
            let from_the_worker =
                function == "followup-worker" && specs.iter().any(|s| s.source == source);
            assert!(
                from_a_receiver || from_the_worker || (function == "reconciler" && source == "all"),
                "{name}: ({function}, {source}) is emitted by no function"
            );
            assert!(
                !from_a_receiver,
                "{name}: a receiver's alarm on one function leaves the others unwatched; alarm on \
                 the dimension-less total"
            );
        }
    }
    // What every receiver must be watched on: the totals over all of them.
    for needed in ["rejected_401", m::QUARANTINED, m::ENQUEUE_FAILED] {
        assert!(
            aggregate.contains(needed),
            "an alarm on the total of {needed}"
        );
    }
    for needed in [
        "rejected_401",
        m::QUARANTINED,
        m::ENQUEUE_FAILED,
        m::RECONCILER_BACKLOG_AGE_MS,
        m::FOLLOWUPS_FAILED,
        m::RECONCILER_CORRUPT,
    ] {
        assert!(watched.contains(needed), "an alarm on {needed}");
    }
}

/// The template's receivers are the registry's: each registry entry has a function built from
/// `functions/<function>` (binary `<function>`) on its route, with a log group of its own; and
/// no receiver in the template is missing from the registry (so `make dev`, `hookline send`,
/// the worker's action kinds and the fuzzer know it).
#[test]
fn the_templates_receivers_are_the_registrys() {
    let t = template();
    let mut in_template: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for (name, props) in receivers(&t) {
        let binary = t["Resources"][name.as_str()]["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: Metadata.BuildProperties.Binary"))
            .to_owned();
        in_template.insert(binary, (name, props));
    }
    for spec in hookline_receivers::all() {
        let f = spec.function;
        let (name, props) = in_template
            .remove(f)
            .unwrap_or_else(|| panic!("{f}: no function in template.yaml builds binary {f}"));
        assert_eq!(
            props["CodeUri"].as_str(),
            Some(format!("functions/{f}").as_str()),
            "{name}: CodeUri"
        );
        let webhook = &props["Events"]["Webhook"]["Properties"];
        assert_eq!(webhook["Path"].as_str(), Some(spec.route), "{name}: route");
        assert_eq!(webhook["Method"].as_str(), Some("POST"), "{name}: method");
        assert_eq!(
            ref_of(&webhook["ApiId"]),
            Some("HttpApi"),
            "{name}: on the HTTP API"
        );
        let group = ref_of(&props["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| panic!("{name}: LoggingConfig.LogGroup is a !Ref"));
        assert_eq!(
            t["Resources"][group]["Type"].as_str(),
            Some("AWS::Logs::LogGroup"),
            "{name}: its own log group"
        );
        // Its source allowlist and reserved concurrency are parameters of its own.
        let cidrs = ref_of(&props["Environment"]["Variables"]["ALLOWED_SOURCE_CIDRS"])
            .unwrap_or_else(|| panic!("{name}: ALLOWED_SOURCE_CIDRS is a !Ref to a parameter"));
        assert_eq!(
            t["Parameters"][cidrs]["Default"].as_str(),
            Some(""),
            "{name}: {cidrs} is a parameter, empty by default (any source)"
        );
        let reserved = match &props["ReservedConcurrentExecutions"] {
            Value::Tagged(tag) if tag.tag == "!If" => tag.value.clone(),
            other => panic!("{name}: ReservedConcurrentExecutions is an !If, not {other:?}"),
        };
        let condition = reserved[0].as_str().unwrap_or_default();
        assert!(
            !t["Conditions"][condition].is_null(),
            "{name}: the condition {condition} is declared"
        );
        let param = ref_of(&reserved[1]).unwrap_or_default();
        assert_eq!(
            t["Parameters"][param]["Default"].as_str(),
            Some(""),
            "{name}: {param} is a parameter, empty by default (unreserved)"
        );
        // Its outputs: the URL to give the sender and the secret to fill in.
        let outputs: Vec<String> = t["Outputs"]
            .as_mapping()
            .unwrap()
            .values()
            .map(|o| serde_yaml::to_string(&o["Value"]).unwrap())
            .collect();
        assert!(
            outputs.iter().any(|o| o.contains(spec.route)),
            "{name}: an output gives the URL of {}",
            spec.route
        );
        let secret = ref_of(&props["Environment"]["Variables"]["WEBHOOK_SECRETS_ID"])
            .unwrap_or_else(|| panic!("{name}: WEBHOOK_SECRETS_ID is a !Ref"));
        assert!(
            outputs.iter().any(|o| o.trim() == format!("!Ref {secret}")),
            "{name}: an output names its secret {secret}"
        );
    }
    assert!(
        in_template.is_empty(),
        "receivers in template.yaml but not in receivers/src/lib.rs: {:?}",
        in_template.keys().collect::<Vec<_>>()
    );
}

#[test]
fn the_table_is_protected_from_deletion() {
    let t = template();
    let tables = resources_of(&t, "AWS::DynamoDB::Table");
    assert_eq!(
        tables[0].1["DeletionProtectionEnabled"].as_bool(),
        Some(true)
    );
}

#[test]
fn the_worker_in_template_runs_the_timers_the_code_validates() {
    use hookline::followup::{Timers, WORKER_TIMEOUT};
    let t = template();
    let worker = &t["Resources"]["FollowupWorkerFunction"]["Properties"];
    assert_eq!(worker["Timeout"].as_u64(), Some(WORKER_TIMEOUT.as_secs()));
    let env = &worker["Environment"]["Variables"];
    let number = |var: &str| env[var].as_str().unwrap().parse::<u64>().unwrap();
    let d = Timers::default();
    let deployed = Timers {
        action_timeout: std::time::Duration::from_millis(number("ACTION_TIMEOUT_MS")),
        lease: std::time::Duration::from_secs(number("FOLLOWUP_LEASE_SECS")),
        backoff_base: std::time::Duration::from_secs(number("FOLLOWUP_BACKOFF_BASE_SECS")),
        backoff_cap: std::time::Duration::from_secs(number("FOLLOWUP_BACKOFF_CAP_SECS")),
        max_attempts: u32::try_from(number("FOLLOWUP_MAX_ATTEMPTS")).unwrap(),
        ..d
    };
    assert_eq!(deployed, d, "the template sets the code's defaults");
    assert_eq!(deployed.validate(), Ok(()));
}

#[test]
fn every_declared_action_kind_has_a_template_parameter_and_a_worker_target() {
    let t = template();
    let env = t["Resources"]["FollowupWorkerFunction"]["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    let mut declared = BTreeSet::new();
    for spec in hookline_receivers::all() {
        for kind in spec.action_kinds {
            declared.insert(*kind);
            let camel: String = kind
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            let param = format!("Action{camel}Url");
            assert!(
                t["Parameters"][param.as_str()].is_mapping(),
                "{}: kind {kind} has no template parameter {param}",
                spec.function
            );
            let var = format!(
                "{}{}_URL",
                hookline::config::ACTION_URL_PREFIX,
                kind.to_ascii_uppercase()
            );
            assert_eq!(
                env.get(var.as_str()).and_then(ref_of),
                Some(param.as_str()),
                "{}: the worker's {var} is !Ref {param}",
                spec.function
            );
        }
    }
    // No target the worker is given for a kind no receiver declares.
    let targets: BTreeSet<String> = env
        .keys()
        .filter_map(Value::as_str)
        .filter(|k| k.starts_with(hookline::config::ACTION_URL_PREFIX) && k.ends_with("_URL"))
        .map(str::to_owned)
        .collect();
    let wanted: BTreeSet<String> = declared
        .iter()
        .map(|k| {
            format!(
                "{}{}_URL",
                hookline::config::ACTION_URL_PREFIX,
                k.to_ascii_uppercase()
            )
        })
        .collect();
    assert_eq!(targets, wanted);
}
