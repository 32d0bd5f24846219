use super::*;
use kube::core::cel::Validator;
use serde_json::json;

/// A minimal valid CvmInstanceSet.
fn base() -> Value {
    json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1",
        "kind": "CvmInstanceSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "region": "ap-guangzhou",
                    "zone": "ap-guangzhou-3",
                    "imageId": "img-pi0ii46r",
                    "instanceType": "S5.MEDIUM4",
                },
            },
        }
    })
}

fn schema() -> Value {
    let crd = serde_json::to_value(crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The admission errors of `new` (an update of `old` when given), as text.
fn refusal(new: &Value, old: Option<&Value>) -> String {
    match Validator::new().validate(&schema(), new, old) {
        Ok(()) => String::new(),
        Err(e) => format!("{e:?}"),
    }
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    v
}

#[test]
fn defaults_and_the_selector_string() {
    let set: CvmInstanceSet = serde_json::from_value(base()).unwrap();
    assert_eq!(set.spec.update_strategy, UpdateStrategy::default());
    assert_eq!(set.selector_string(), "cvm.tencentcloud.io/set=web");
    let mut v = base();
    v["spec"]["selector"] = json!({"matchLabels": {"app": "web"}});
    v["spec"].as_object_mut().unwrap().remove("replicas");
    let set: CvmInstanceSet = serde_json::from_value(v).unwrap();
    assert_eq!(set.spec.replicas, 1);
    assert_eq!(set.selector_string(), "cvm.tencentcloud.io/set=web,app=web");
}

#[test]
fn the_update_strategy_resolves_like_a_deployments() {
    let s = |u: Value, g: Value| -> UpdateStrategy {
        serde_json::from_value(json!({"maxUnavailable": u, "maxSurge": g})).unwrap()
    };
    // Percentages: unavailable rounds down, surge up.
    assert_eq!(s(json!("25%"), json!("10%")).resolve(10), (2, 1));
    assert_eq!(s(json!("25%"), json!(0)).resolve(1000), (250, 0));
    // Both zero would stall: one may be unavailable.
    assert_eq!(s(json!("25%"), json!(0)).resolve(3), (1, 0));
    assert_eq!(s(json!(0), json!(0)).resolve(3), (1, 0));
    assert_eq!(s(json!(0), json!(1)).resolve(3), (0, 1));
    assert_eq!(s(json!(2), json!("50%")).resolve(3), (2, 2));
}

#[test]
fn the_template_may_change_what_a_cvm_instance_keeps_immutable() {
    // zone and imageId are immutable on a CvmInstance; a set replaces members.
    let old = base();
    for (pointer, value) in [
        ("/spec/template/spec/zone", json!("ap-guangzhou-4")),
        ("/spec/template/spec/imageId", json!("img-eb30mz89")),
    ] {
        let new = with(old.clone(), pointer, value);
        assert_eq!(refusal(&new, Some(&old)), "", "{pointer}");
    }
    // The CvmInstance CRD itself still refuses them.
    let cvm = serde_json::to_value(crate::api::CvmInstance::crd())
        .unwrap()
        .to_string();
    assert!(cvm.contains("spec.zone is immutable"));
    assert!(
        !serde_json::to_value(crd())
            .unwrap()
            .to_string()
            .contains("oldSelf.zone")
    );
}

#[test]
fn the_template_keeps_the_instance_rules_that_need_no_history() {
    let bad_zone = with(base(), "/spec/template/spec/zone", json!("ap-shanghai-2"));
    assert!(refusal(&bad_zone, None).contains("spec.zone must be a zone of spec.region"));
}

#[test]
fn what_a_set_cannot_do_is_refused_naming_the_field() {
    let cases = [
        (
            "/spec/template/spec/instanceId",
            json!("ins-abcdefgh"),
            "spec.template.spec.instanceId is not allowed",
        ),
        (
            "/spec/template/spec/managementPolicy",
            json!("ObserveOnly"),
            "managementPolicy ObserveOnly is not allowed",
        ),
        (
            "/spec/template/metadata/labels",
            json!({"cvm.tencentcloud.io/set": "other"}),
            "reserved prefix cvm.tencentcloud.io/",
        ),
        (
            "/metadata/name",
            json!("a".repeat(51)),
            "at most 50 characters",
        ),
        (
            "/spec/updateStrategy",
            json!({"maxUnavailable": "many"}),
            "a percentage from 0% to 100%",
        ),
    ];
    for (pointer, value, message) in cases {
        let mut v = base();
        if v.pointer(pointer).is_none() {
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            v.pointer_mut(parent).unwrap()[key] = Value::Null;
        }
        let v = with(v, pointer, value);
        let got = refusal(&v, None);
        assert!(got.contains(message), "{pointer}: {got}");
    }
}

#[test]
fn the_selector_must_select_the_template_and_never_change() {
    let mut v = base();
    v["spec"]["selector"] = json!({"matchLabels": {"app": "api"}});
    assert!(refusal(&v, None).contains("spec.selector.matchLabels must all be among"));
    v["spec"]["selector"] = json!({"matchLabels": {"app": "web"}});
    assert_eq!(refusal(&v, None), "");
    let mut changed = v.clone();
    changed["spec"]["selector"] = json!({"matchLabels": {}});
    assert!(refusal(&changed, Some(&v)).contains("spec.selector is immutable"));
}

#[test]
fn the_scale_subresource_and_the_columns() {
    let crd = serde_json::to_value(crd()).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(
        version["subresources"]["scale"],
        json!({"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"})
    );
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["Desired", "Ready", "Up-to-date", "Available", "Age"]
    );
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["cvmset"]));
}

#[test]
fn the_template_hash_is_stable_and_tracks_changes() {
    let set: CvmInstanceSet = serde_json::from_value(base()).unwrap();
    let h = template_hash(&set.spec.template);
    assert_eq!(h.len(), 10);
    assert_eq!(h, template_hash(&set.spec.template.clone()));
    let mut other = set.spec.template.clone();
    other.spec.instance_type = "S5.LARGE8".into();
    assert_ne!(h, template_hash(&other));
}

#[test]
fn the_committed_crd_is_fresh() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/cvminstancesets.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == crd_yaml(),
        "crds/cvminstancesets.yaml is stale: run `make crds`"
    );
}
