//! The real apiserver refuses what the CVM and Tag APIs would refuse, and
//! anything oversized, at admission, with a message naming the field.

use crate::support::*;
use kube::api::PostParams;
use serde_json::{Value, json};

/// Creates `spec.<field> = value` on a valid manifest; the apiserver's
/// refusal, or None when admitted.
async fn create_with(env: &TestEnv, name: &str, field: &str, value: Value) -> Option<String> {
    let mut m = base_manifest(name);
    m["apiVersion"] = "cvm.tencentcloud.io/v1alpha1".into();
    m["kind"] = "CvmInstance".into();
    m["metadata"]["namespace"] = env.ns.clone().into();
    m["spec"][field] = value;
    let obj: cvm_operator::api::CvmInstance = serde_json::from_value(m).unwrap();
    match env.api().create(&PostParams::default(), &obj).await {
        Ok(_) => None,
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            Some(s.message)
        }
        Err(e) => panic!("create {name}: {e}"),
    }
}

async fn assert_refused(env: &TestEnv, field: &str, value: Value, wants: &[&str]) {
    let shown = value.to_string().chars().take(80).collect::<String>();
    let Some(message) = create_with(env, "refused", field, value).await else {
        panic!("spec.{field}={shown} was admitted");
    };
    for want in wants {
        assert!(
            message.contains(want),
            "spec.{field}={shown}: {want:?} not in {message:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_refuses_bad_input_naming_the_field() {
    let env = TestEnv::new("admission").await;
    // 1.3 MB of tags (40 values of 32,000 characters) was once admitted.
    let huge: serde_json::Map<String, Value> = (0..40)
        .map(|i| (format!("k{i}"), json!("v".repeat(32_000))))
        .collect();
    assert!(Value::Object(huge.clone()).to_string().len() > 1_280_000);
    assert_refused(
        &env,
        "tags",
        Value::Object(huge),
        &["spec.tags.k0", "may not be more than 255"],
    )
    .await;
    let many: serde_json::Map<String, Value> =
        (0..48).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_refused(
        &env,
        "tags",
        Value::Object(many),
        &["spec.tags", "must have at most 47"],
    )
    .await;
    assert_refused(
        &env,
        "tags",
        json!({"team#1": "a"}),
        &["spec.tags keys must be 1-127 characters"],
    )
    .await;
    assert_refused(
        &env,
        "hostName",
        json!("web--1"),
        &["spec.hostName", "must be 2-60 letters and digits"],
    )
    .await;
    assert_refused(
        &env,
        "userData",
        json!("abcde"),
        &["spec.userData", "must be standard base64"],
    )
    .await;
    assert_refused(
        &env,
        "securityGroupIds",
        json!(["sg-gz000001", "sg-gz000002", "sg-gz000001"]),
        &["spec.securityGroupIds[2]", "Duplicate value"],
    )
    .await;
    assert_refused(
        &env,
        "loginSettings",
        json!({"keyIds": ["skey-gz000001", "skey-gz000001"]}),
        &["spec.loginSettings.keyIds[1]", "Duplicate value"],
    )
    .await;
    // Nothing was stored; valid values of the same fields are admitted.
    assert!(
        env.api()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    for (i, (field, value)) in [
        (
            "tags",
            json!({"team": "payments", "团队": "研发 一", "cost center": "R+D 2"}),
        ),
        ("hostName", json!("web-1.internal")),
        ("userData", json!("ZWNobyBoaQo=")),
        ("securityGroupIds", json!(["sg-gz000001", "sg-gz000002"])),
    ]
    .into_iter()
    .enumerate()
    {
        let refused = create_with(&env, &format!("ok-{i}"), field, value).await;
        assert_eq!(refused, None, "spec.{field}");
    }
}
