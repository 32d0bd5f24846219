use super::*;
use serde_json::json;

/// A minimal valid CvmInstance.
pub(super) fn base() -> serde_json::Value {
    json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1",
        "kind": "CvmInstance",
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": {
            "region": "ap-guangzhou",
            "zone": "ap-guangzhou-3",
            "imageId": "img-pi0ii46r",
            "instanceType": "S5.MEDIUM4",
        }
    })
}

fn cr(v: serde_json::Value) -> CvmInstance {
    serde_json::from_value(v).expect("valid CvmInstance JSON")
}

fn with(mut v: serde_json::Value, path: &[&str], value: serde_json::Value) -> serde_json::Value {
    let mut node = &mut v;
    for p in &path[..path.len() - 1] {
        node = node.get_mut(*p).unwrap();
    }
    node[path[path.len() - 1]] = value;
    v
}

fn update_error(old: serde_json::Value, new: serde_json::Value) -> String {
    match cr(new).validate_cel_update(&cr(old)) {
        Ok(()) => String::new(),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn defaults_fill_in_policies() {
    let c = cr(base());
    assert_eq!(c.spec.run_state, RunState::Running);
    assert_eq!(c.spec.stop_type, StopType::SOFT_FIRST);
    assert_eq!(c.spec.stopped_mode, StoppedMode::KEEP_CHARGING);
    assert_eq!(c.spec.resize_policy, None);
    assert_eq!(
        c.spec.disruptions(),
        Disruptions {
            stop_start: true,
            reboot: true,
            reinstall: false
        }
    );
    assert_eq!(c.spec.deletion_policy, None);
    assert_eq!(c.spec.effective_deletion_policy(), DeletionPolicy::Delete);
    assert_eq!(c.spec.management_policy, ManagementPolicy::Full);
    assert_eq!(
        c.spec.instance_charge_type,
        InstanceChargeType::POSTPAID_BY_HOUR
    );
    assert_eq!(c.desired_instance_name(), "web-1");
    assert!(c.validate_cel().is_ok(), "{:?}", c.validate_cel());
    assert_eq!(InstanceChargeType::PREPAID.as_str(), "PREPAID");
    assert_eq!(StopType::SOFT_FIRST.as_str(), "SOFT_FIRST");
}

/// `old` → `new` refused with a message containing `message`.
fn refused(old: serde_json::Value, new: serde_json::Value, message: &str) {
    let err = update_error(old, new.clone());
    assert!(err.contains(message), "{}: {err}", new["spec"]);
}

#[test]
fn immutable_fields_are_rejected_on_update_naming_the_field() {
    let cases: Vec<(&[&str], serde_json::Value, &str)> = vec![
        (
            &["spec", "zone"],
            json!("ap-guangzhou-4"),
            "spec.zone is immutable",
        ),
        (
            &["spec", "region"],
            json!("ap-shanghai"),
            "spec.region is immutable",
        ),
        (
            &["spec", "instanceChargeType"],
            json!("SPOTPAID"),
            "SPOTPAID is fixed at purchase",
        ),
        (
            &["spec", "systemDisk"],
            json!({"diskType": "CLOUD_SSD", "diskSize": 60}),
            "spec.systemDisk cannot be added or removed",
        ),
        (
            &["spec", "dataDisks"],
            json!([{"diskSize": 100}]),
            "spec.dataDisks cannot be added or removed",
        ),
        (
            &["spec", "vpc"],
            json!({"vpcId": "vpc-gz000001", "subnetId": "subnet-gz000003"}),
            "spec.vpc cannot be added or removed",
        ),
        (
            &["spec", "instanceId"],
            json!("ins-abcdefgh"),
            "spec.instanceId is immutable",
        ),
    ];
    for (path, value, message) in cases {
        refused(base(), with(base(), path, value), message);
    }
    let prepaid = with(
        with(base(), &["spec", "instanceChargeType"], json!("PREPAID")),
        &["spec", "prepaid"],
        json!({"period": 1}),
    );
    // A prepaid instance stays prepaid, saying why; and its period stays.
    let mut back = prepaid.clone();
    back["spec"]["instanceChargeType"] = json!("POSTPAID_BY_HOUR");
    back["spec"].as_object_mut().unwrap().remove("prepaid");
    refused(
        prepaid.clone(),
        back,
        "a PREPAID instance cannot become postpaid — the API refuses it",
    );
    let longer = with(prepaid.clone(), &["spec", "prepaid", "period"], json!(12));
    refused(
        prepaid,
        longer,
        "spec.prepaid.period is the length of the purchase",
    );
    // Disks: only grow, keep their type, count and snapshots; local ones stay.
    let disks = with(
        with(
            base(),
            &["spec", "systemDisk"],
            json!({"diskType": "CLOUD_PREMIUM", "diskSize": 50}),
        ),
        &["spec", "dataDisks"],
        json!([{"diskSize": 100}, {"diskType": "LOCAL_BASIC", "diskSize": 100}]),
    );
    let disk = |path: &[&str], v: serde_json::Value| with(disks.clone(), path, v);
    for (new, message) in [
        (
            disk(&["spec", "systemDisk", "diskSize"], json!(40)),
            "spec.systemDisk.diskSize can only grow",
        ),
        (
            disk(&["spec", "systemDisk", "diskType"], json!("CLOUD_SSD")),
            "spec.systemDisk.diskType is immutable",
        ),
        (
            disk(
                &["spec", "dataDisks"],
                json!([{"diskSize": 90}, {"diskType": "LOCAL_BASIC", "diskSize": 100}]),
            ),
            "spec.dataDisks[].diskSize can only grow",
        ),
        (
            disk(
                &["spec", "dataDisks"],
                json!([{"diskSize": 100}, {"diskType": "LOCAL_BASIC", "diskSize": 200}]),
            ),
            "spec.dataDisks[].diskSize of a local disk cannot change",
        ),
        (
            disk(&["spec", "dataDisks"], json!([{"diskSize": 100}])),
            "the number of spec.dataDisks cannot change",
        ),
        (
            disk(
                &["spec", "dataDisks"],
                json!([{"diskSize": 100, "diskType": "CLOUD_SSD"}, {"diskType": "LOCAL_BASIC", "diskSize": 100}]),
            ),
            "spec.dataDisks[].diskType is immutable",
        ),
        (
            disk(
                &["spec", "dataDisks"],
                json!([{"diskSize": 100, "snapshotId": "snap-abcdefgh"}, {"diskType": "LOCAL_BASIC", "diskSize": 100}]),
            ),
            "spec.dataDisks[].snapshotId is immutable",
        ),
    ] {
        refused(disks.clone(), new, message);
    }
}

#[test]
fn mutable_fields_pass_update_rules() {
    let mut new = base();
    new["spec"]["instanceType"] = json!("S5.LARGE8");
    new["spec"]["instanceName"] = json!("renamed");
    new["spec"]["runState"] = json!("Stopped");
    new["spec"]["internetAccessible"] = json!({"internetMaxBandwidthOut": 10});
    new["spec"]["securityGroupIds"] = json!(["sg-gz000002"]);
    new["spec"]["deletionPolicy"] = json!("Retain");
    new["spec"]["managementPolicy"] = json!("ObserveOnly");
    new["spec"]["disableApiTermination"] = json!(true);
    new["spec"]["credentialsSecretRef"] = json!({"name": "other"});
    // In place since issue 10.
    new["spec"]["hostName"] = json!("web-2");
    new["spec"]["userData"] = json!("ZWNobyBoaQ==");
    new["spec"]["tags"] = json!({"team": "b"});
    new["spec"]["camRoleName"] = json!("CVM_QcsRole");
    assert_eq!(update_error(base(), new.clone()), "");
    let mut back = new.clone();
    back["spec"]["userDataSecretRef"] = json!({"name": "ud", "key": "cloud-init"});
    back["spec"].as_object_mut().unwrap().remove("userData");
    back["spec"].as_object_mut().unwrap().remove("hostName");
    back["spec"]["camRoleName"] = json!("");
    assert_eq!(update_error(new, back), "");
    // Issue 10's other rows.
    let before = with(
        with(
            with(
                base(),
                &["spec", "systemDisk"],
                json!({"diskType": "CLOUD_PREMIUM", "diskSize": 50}),
            ),
            &["spec", "dataDisks"],
            json!([{"diskSize": 100}]),
        ),
        &["spec", "vpc"],
        json!({"vpcId": "vpc-gz000001", "subnetId": "subnet-gz000003"}),
    );
    let mut after = before.clone();
    after["spec"]["imageId"] = json!("img-487zeit5");
    after["spec"]["projectId"] = json!(1000001);
    after["spec"]["instanceChargeType"] = json!("PREPAID");
    after["spec"]["prepaid"] = json!({"period": 1, "renewFlag": "NOTIFY_AND_AUTO_RENEW"});
    after["spec"]["systemDisk"]["diskSize"] = json!(60);
    after["spec"]["dataDisks"][0]["diskSize"] = json!(200);
    after["spec"]["vpc"] = json!({"vpcId": "vpc-gz000002", "subnetId": "subnet-gz200003", "privateIpAddress": "10.2.3.7"});
    after["spec"]["loginSettings"] = json!({"keyIds": ["skey-gz000002"]});
    after["spec"]["disasterRecoverGroupIds"] = json!(["ps-gz000001"]);
    assert_eq!(update_error(before, after.clone()), "");
    // Then the renew flag, keys to a password, leaving the group.
    let mut later = after.clone();
    later["spec"]["prepaid"]["renewFlag"] = json!("DISABLE_NOTIFY_AND_MANUAL_RENEW");
    later["spec"]["loginSettings"] =
        json!({"passwordSecretRef": {"name": "pw", "key": "password"}});
    later["spec"]["disasterRecoverGroupIds"] = json!([]);
    assert_eq!(update_error(after, later), "");
}

#[test]
fn creation_rules_check_combinations() {
    let bad: Vec<(serde_json::Value, &str)> = vec![
        (
            with(base(), &["spec", "zone"], json!("ap-shanghai-2")),
            "spec.zone must be a zone of spec.region",
        ),
        (
            with(base(), &["spec", "instanceChargeType"], json!("PREPAID")),
            "spec.prepaid is required",
        ),
        (
            with(base(), &["spec", "prepaid"], json!({"period": 1})),
            "spec.prepaid is only allowed",
        ),
        (
            with(
                with(base(), &["spec", "instanceChargeType"], json!("PREPAID")),
                &["spec", "prepaid"],
                json!({"period": 13}),
            ),
            "spec.prepaid.period must be",
        ),
        (
            with(
                base(),
                &["spec", "tags"],
                json!({"cvm.tencentcloud.io/uid": "x"}),
            ),
            "reserved prefix",
        ),
        (
            with(
                base(),
                &["spec", "loginSettings"],
                json!({"keyIds": ["skey-gz000001"], "passwordSecretRef": {"name": "p", "key": "k"}}),
            ),
            "mutually exclusive",
        ),
        (
            with(
                base(),
                &["spec", "internetAccessible"],
                json!({"internetMaxBandwidthOut": 0, "publicIpAssigned": true}),
            ),
            "publicIpAssigned needs",
        ),
        (
            with(base(), &["spec", "dataDisks"], json!([{"diskSize": 15}])),
            "multiple of 10",
        ),
    ];
    for (v, msg) in bad {
        let err = format!("{:?}", cr(v.clone()).validate_cel());
        assert!(err.contains(msg), "{v}: {err}");
    }
}

#[test]
fn generated_crd_has_the_promised_shape() {
    let crd = CvmInstance::crd();
    assert_eq!(crd.spec.group, GROUP);
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["cvm".to_string()][..])
    );
    assert_eq!(
        crd.spec.names.categories.as_deref(),
        Some(&["tencentcloud".to_string()][..])
    );
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let cols: Vec<&str> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for want in [
        "Instance ID",
        "State",
        "Type",
        "Zone",
        "Public IP",
        "Ready",
        "Age",
    ] {
        assert!(cols.contains(&want), "{cols:?}");
    }
    let json = serde_json::to_string(&crd).unwrap();
    assert!(json.contains(r#""pattern":"^ins-[0-9a-z]{8}$""#));
    assert!(json.contains(r#""x-kubernetes-list-type":"map""#));
    // Structural: no junctors or refs the apiserver would refuse.
    for forbidden in ["\"$ref\"", "\"anyOf\"", "\"oneOf\"", "\"allOf\""] {
        assert!(!json.contains(forbidden), "{forbidden} in the CRD");
    }
}

#[test]
fn committed_crd_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/cvminstances.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == crd_yaml(),
        "crds/cvminstances.yaml is stale: run `make crds`"
    );
}

#[test]
fn wire_names_are_the_serde_spellings_and_allocate_nothing() {
    fn check<T: Serialize + Copy + std::fmt::Debug + PartialEq>(
        all: &[T],
        as_str: fn(&T) -> &'static str,
        parse: fn(&str) -> Option<T>,
    ) {
        for v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), as_str(v), "{v:?}");
            assert_eq!(parse(as_str(v)), Some(*v));
            // The same literal every time (a static, not a new allocation).
            assert!(std::ptr::eq(as_str(v), as_str(v)));
        }
        assert_eq!(parse("NOT_A_VALUE"), None);
    }
    use InstanceChargeType as C;
    check(
        &[C::POSTPAID_BY_HOUR, C::PREPAID, C::SPOTPAID],
        C::as_str,
        C::parse,
    );
    check(
        &[StopType::SOFT_FIRST, StopType::SOFT, StopType::HARD],
        StopType::as_str,
        StopType::parse,
    );
    check(
        &[StoppedMode::KEEP_CHARGING, StoppedMode::STOP_CHARGING],
        StoppedMode::as_str,
        StoppedMode::parse,
    );
    check(
        &[
            DiskType::CLOUD_PREMIUM,
            DiskType::CLOUD_BSSD,
            DiskType::LOCAL_SSD,
        ],
        DiskType::as_str,
        DiskType::parse,
    );
    check(
        &[
            InternetChargeType::TRAFFIC_POSTPAID_BY_HOUR,
            InternetChargeType::BANDWIDTH_PACKAGE,
        ],
        InternetChargeType::as_str,
        InternetChargeType::parse,
    );
    check(
        &[RenewFlag::NOTIFY_AND_AUTO_RENEW],
        RenewFlag::as_str,
        RenewFlag::parse,
    );
}

#[test]
fn last_operation_keeps_its_wire_format() {
    let failed = LastOperation::failed(
        "RunInstances",
        Failure {
            code: "InvalidParameterValue.InstanceTypeNotFound".into(),
            message: "no such type".into(),
            request_id: Some("req-1".into()),
        },
        Some(4),
        "2026-12-01T10:00:00Z".into(),
    );
    assert_eq!(
        serde_json::to_value(&failed).unwrap(),
        json!({"action": "RunInstances", "state": "Failed", "requestId": "req-1",
               "code": "InvalidParameterValue.InstanceTypeNotFound", "message": "no such type",
               "generation": 4, "time": "2026-12-01T10:00:00Z"})
    );
    assert!(failed.blocks(Some(4)) && !failed.blocks(Some(5)));
    let pending = LastOperation::pending("RunInstances", Some(1), "t".into());
    assert_eq!(serde_json::to_value(&pending).unwrap()["state"], "Pending");
    assert!(!pending.blocks(Some(1)));
    let ok = LastOperation::succeeded("StopInstances", "req-2", Some(1), "t".into());
    assert_eq!(ok.state, "Succeeded");
    let back: LastOperation = serde_json::from_value(serde_json::to_value(&ok).unwrap()).unwrap();
    assert_eq!(back, ok);
}

#[test]
fn known_instance_id_prefers_the_adopted_one() {
    let mut obj = cr(base());
    assert_eq!(obj.known_instance_id(), None);
    obj.status = Some(CvmInstanceStatus {
        instance_id: Some("ins-fromstat".into()),
        ..Default::default()
    });
    assert_eq!(obj.known_instance_id(), Some("ins-fromstat"));
    obj.spec.instance_id = Some("ins-adopted1".into());
    assert_eq!(obj.known_instance_id(), Some("ins-adopted1"));
}

#[test]
fn disruption_policy_defaults_and_the_deprecated_resize_policy() {
    let d = |v: serde_json::Value| cr(v).spec.disruptions();
    let all = |stop_start, reboot, reinstall| Disruptions {
        stop_start,
        reboot,
        reinstall,
    };
    assert_eq!(d(base()), all(true, true, false));
    // Old manifests keep working: Never maps to stopStart: Never, and the
    // StopAndStart every stored object carries (it was the schema default)
    // means nothing more.
    let old = |p: &str| with(base(), &["spec", "resizePolicy"], json!(p));
    assert_eq!(d(old("Never")), all(false, true, false));
    assert_eq!(d(old("StopAndStart")), all(true, true, false));
    let policy = |p: serde_json::Value| with(base(), &["spec", "disruptionPolicy"], p);
    assert_eq!(
        d(policy(json!({"reboot": "Never", "reinstall": "Allowed"}))),
        all(true, false, true)
    );
    // The new field wins over the stored default.
    let both = with(
        old("StopAndStart"),
        &["spec", "disruptionPolicy"],
        json!({"stopStart": "Never"}),
    );
    assert_eq!(d(both.clone()), all(false, true, false));
    assert!(cr(both).validate_cel().is_ok());
    // A contradiction is refused with what to write instead.
    let contradiction = with(
        old("Never"),
        &["spec", "disruptionPolicy"],
        json!({"stopStart": "Allowed"}),
    );
    let err = format!("{:?}", cr(contradiction).validate_cel());
    assert!(
        err.contains("resizePolicy is deprecated: remove it and keep disruptionPolicy.stopStart"),
        "{err}"
    );
}

#[test]
fn restart_requests_are_read_from_the_annotation() {
    let mut c = cr(base());
    assert_eq!(c.restart_requested(), None);
    c.metadata.annotations = Some(
        [(
            RESTARTED_AT_ANNOTATION.to_string(),
            "2026-12-01T10:00:00Z".to_string(),
        )]
        .into(),
    );
    assert_eq!(c.restart_requested(), Some("2026-12-01T10:00:00Z"));
    c.metadata.annotations = Some([(RESTARTED_AT_ANNOTATION.to_string(), String::new())].into());
    assert_eq!(
        c.restart_requested(),
        None,
        "an empty value asks for nothing"
    );
}
