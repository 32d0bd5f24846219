use super::*;
use serde_json::{Value, json};

fn set(template_spec: Value) -> CvmInstanceSet {
    let mut spec = json!({
        "region": "ap-guangzhou", "zone": "ap-guangzhou-3",
        "imageId": "img-pi0ii46r", "instanceType": "S5.MEDIUM4",
        "internetAccessible": {"internetMaxBandwidthOut": 10},
    });
    for (k, v) in template_spec.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstanceSet",
        "metadata": {"name": "web", "namespace": "team-a", "uid": "set-uid"},
        "spec": {"replicas": 2, "template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {"note": "x"}},
            "spec": spec}},
    }))
    .unwrap()
}

fn spec_of(s: &CvmInstanceSet) -> CvmInstanceSpec {
    member_spec(s, 3, "ins-abcdefgh")
}

#[test]
fn a_change_is_quiet_disruptive_or_a_replacement() {
    let old = spec_of(&set(json!({})));
    let rows: Vec<(Value, Update)> = vec![
        (json!({}), Update::Quiet),
        (
            json!({"internetAccessible": {"internetMaxBandwidthOut": 20}}),
            Update::Quiet,
        ),
        (json!({"securityGroupIds": ["sg-abcdefgh"]}), Update::Quiet),
        (json!({"instanceName": "api"}), Update::Quiet),
        (json!({"runState": "Stopped"}), Update::Quiet),
        (json!({"deletionPolicy": "Retain"}), Update::Quiet),
        (json!({"camRoleName": "app"}), Update::Quiet),
        (json!({"instanceType": "S5.LARGE8"}), Update::Disruptive),
        // A new host name takes a reboot.
        (json!({"hostName": "web"}), Update::Disruptive),
        (
            json!({"instanceType": "S5.LARGE8", "internetAccessible": {"internetMaxBandwidthOut": 20}}),
            Update::Disruptive,
        ),
        // Immutable on a CvmInstance (its CRD's transition rules say so).
        (json!({"zone": "ap-guangzhou-4"}), Update::Replace),
        (
            json!({"internetAccessible": {"internetMaxBandwidthOut": 10, "publicIpAssigned": true}}),
            Update::Replace,
        ),
        // Another account's credentials: another account's instance.
        (
            json!({"credentialsSecretRef": {"name": "other"}}),
            Update::Replace,
        ),
    ];
    for (change, want) in rows {
        let new = spec_of(&set(change.clone()));
        assert_eq!(classify(&old, &new), want, "{change}");
    }
}

#[test]
fn a_member_adopts_its_instance_and_carries_the_set() {
    let s = set(json!({"instanceName": "api"}));
    let m = manifest(&s, 7, "ins-abcdefgh", "h1");
    assert_eq!(m.metadata.name.as_deref(), Some("web-7"));
    assert_eq!(m.metadata.namespace.as_deref(), Some("team-a"));
    let labels = m.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["app"], "web");
    assert_eq!(labels[SET_LABEL], "web");
    assert_eq!(labels[TEMPLATE_HASH_LABEL], "h1");
    assert_eq!(m.metadata.annotations.as_ref().unwrap()["note"], "x");
    let owner = &m.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("CvmInstanceSet", "set-uid", Some(true))
    );
    assert_eq!(
        m.metadata.finalizers.as_deref(),
        Some(&[api::FINALIZER.to_string()][..])
    );
    assert_eq!(m.spec.instance_id.as_deref(), Some("ins-abcdefgh"));
    assert_eq!(m.spec.instance_name.as_deref(), Some("api-7"));
    // Without a template name, the instance is named like the member.
    let plain = manifest(&set(json!({})), 7, "ins-abcdefgh", "h1");
    assert_eq!(plain.desired_instance_name(), "web-7");
}

fn member(hash: &str, spec: &CvmInstanceSpec, status: Value) -> MemberObject {
    let mut m: MemberObject = serde_json::from_value(json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
        "metadata": {"name": "web-3", "namespace": "team-a", "generation": 2,
                     "labels": {SET_LABEL: "web", TEMPLATE_HASH_LABEL: hash, "app": "web"},
                     "annotations": {"note": "x"},
                     "ownerReferences": [{"apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstanceSet",
                                          "name": "web", "uid": "set-uid", "controller": true}]},
        "spec": spec,
        "status": status,
    }))
    .unwrap();
    m.slim();
    m
}

#[test]
fn members_are_read_from_the_slim_watch_form() {
    let s = set(json!({}));
    let hash = crate::api::set::template_hash(&s.spec.template);
    let ready = json!({"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Running", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "Synced", "status": "True", "reason": "ReconcileSuccess", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    let m = member(&hash, &spec_of(&s), ready.clone());
    assert!(m.owned_by("set-uid") && !m.owned_by("other"));
    assert_eq!(
        m.metadata.labels.as_ref().unwrap().len(),
        2,
        "only the set's labels are kept"
    );
    assert!(m.metadata.annotations.is_none());
    assert_eq!(m.instance_id().as_deref(), Some("ins-abcdefgh"));
    let mut classifier = Classifier::default();
    let v = view(&m, classifier.update(&s, &hash, &m), false);
    assert_eq!(
        v,
        Member {
            name: "web-3".into(),
            index: 3,
            deleting: false,
            ready: true,
            available: true,
            update: Update::Current
        }
    );
    // A spec not observed yet is not available; a stale launch is replaced.
    let mut moving = ready.clone();
    moving["observedGeneration"] = json!(1);
    let m = member(UNKNOWN_TEMPLATE, &spec_of(&s), moving);
    let v = view(&m, classifier.update(&s, &hash, &m), false);
    assert!(v.ready && !v.available);
    assert_eq!(v.update, Update::Replace);
    // An older template: classified against the current one.
    let bigger = set(json!({"instanceType": "S5.LARGE8"}));
    let new_hash = crate::api::set::template_hash(&bigger.spec.template);
    let m = member(&hash, &spec_of(&s), ready);
    assert_eq!(
        classifier.update(&bigger, &new_hash, &m),
        Update::Disruptive
    );
}

#[test]
fn an_update_sets_what_changed_and_removes_what_went() {
    let old = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "gone": true});
    let new = json!({"a": 1, "b": {"x": 1, "y": 3}, "c": [2], "added": "v"});
    assert_eq!(
        merge_patch(&old, &new),
        json!({"b": {"y": 3}, "c": [2], "added": "v", "gone": null})
    );
    // Applying it gives `new` (json-patch's merge, RFC 7386).
    let mut applied = old.clone();
    json_patch_merge(&mut applied, &merge_patch(&old, &new));
    assert_eq!(applied, new);
}

/// RFC 7386 application, to check the patch.
fn json_patch_merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    json_patch_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

#[test]
fn the_update_patch_brings_the_template_and_keeps_the_members_own() {
    let s = set(json!({"securityGroupIds": ["sg-abcdefgh"]}));
    let m = member("old", &spec_of(&s), json!({}));
    let bigger = set(json!({"instanceType": "S5.LARGE8"}));
    let p = update_patch(&bigger, &m, "h2");
    assert_eq!(
        p["spec"],
        json!({"instanceType": "S5.LARGE8", "securityGroupIds": null})
    );
    assert_eq!(p["metadata"]["labels"][TEMPLATE_HASH_LABEL], "h2");
    assert_eq!(p["metadata"]["labels"]["app"], "web");
}
