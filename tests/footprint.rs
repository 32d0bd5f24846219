//! What the operator keeps per resource, in heap bytes: its watch cache's
//! `CachedInstance` (as the apiserver returns a resource after the operator
//! wrote its status) and the observer's `Observation` (from a DescribeInstances
//! answer). The 10,000-resource memory target (64 MiB RSS) rests on these.
//!
//! Counted by a global allocator that tallies the live bytes of the thread
//! that allocates, so tests running beside it do not disturb the count.

use cvm_operator::cloud::model::Instance;
use cvm_operator::controller::cache::CachedInstance;
use cvm_operator::controller::observation::Observation;
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

struct Counting;

thread_local! {
    /// Live bytes as glibc's malloc holds them: each block with its 8-byte
    /// header, rounded up to 16, 32 at least — what RSS pays, not the
    /// bytes asked for.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn chunk(size: usize) -> isize {
    ((size + 8).div_ceil(16) * 16).max(32) as isize
}

fn add(n: isize) {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    let _ = LIVE.try_with(|l| l.set(l.get() + n));
}

// SAFETY: every call is forwarded to `System` unchanged; the counting only
// touches a const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(chunk(layout.size()));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-chunk(layout.size()));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(chunk(new_size) - chunk(layout.size()));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ITEMS: usize = 10_000;

/// Live heap bytes per item that `make` builds, kept as the cache keeps them
/// (one `Arc` each).
fn bytes_per_item<T>(make: impl Fn(usize) -> T) -> usize {
    let mut kept: Vec<Arc<T>> = Vec::with_capacity(ITEMS);
    let before = LIVE.with(Cell::get);
    for i in 0..ITEMS {
        kept.push(Arc::new(make(i)));
    }
    let after = LIVE.with(Cell::get);
    drop(kept);
    ((after - before) as usize) / ITEMS
}

/// A resource as the watch delivers it once the operator has run it:
/// Ready, priced, its account recorded, kubectl's last-applied annotation.
fn resource_json(i: usize) -> String {
    let name = format!("vm-{i:05}");
    let spec = json!({
        "region": "ap-guangzhou", "zone": "ap-guangzhou-3", "imageId": "img-pi0ii46r",
        "instanceType": "S5.SMALL1", "instanceName": format!("renamed-{i}"),
        "internetAccessible": {"internetMaxBandwidthOut": 1},
    });
    let condition = |type_: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": "True", "reason": reason, "message": message,
               "lastTransitionTime": "2026-11-30T10:00:00Z", "observedGeneration": 2})
    };
    json!({
        "apiVersion": "cvm.tencentcloud.io/v1alpha1", "kind": "CvmInstance",
        "metadata": {
            "name": name, "namespace": "bench-ns-1234", "generation": 2,
            "uid": format!("5f0c6a2e-8d3b-4b7e-9c1a-{i:012}"),
            "resourceVersion": format!("{}", 1_000_000 + i),
            "creationTimestamp": "2026-11-30T10:00:00Z",
            "labels": {"bench": "1"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                            serde_json::to_string(&json!({"spec": spec})).unwrap()},
            "finalizers": ["cvm.tencentcloud.io/finalizer"],
            "managedFields": [{"manager": "cvm-operator", "operation": "Update",
                               "apiVersion": "cvm.tencentcloud.io/v1alpha1",
                               "time": "2026-11-30T10:00:00Z", "fieldsType": "FieldsV1",
                               "subresource": "status", "fieldsV1": {"f:status": {}}}],
        },
        "spec": spec,
        "status": {
            "instanceId": format!("ins-{i:08}"), "instanceState": "RUNNING",
            "instanceType": "S5.SMALL1", "instanceName": format!("renamed-{i}"),
            "zone": "ap-guangzhou-3", "privateIpAddresses": ["172.16.3.2"],
            "publicIpAddresses": ["43.138.10.2"], "internetMaxBandwidthOut": 1,
            "securityGroupIds": ["sg-gz000001"], "createdTime": "2026-11-30T10:00:03Z",
            "lastOperation": {"action": "RunInstances", "state": "Succeeded",
                              "requestId": "6f1d8e0a-1c2b-4d3e-8f4a-5b6c7d8e9f00",
                              "generation": 1, "time": "2026-11-30T10:00:01Z"},
            "account": {"kind": "CvmAccount", "name": "default", "uin": "100012345678"},
            "price": {
                "instance": {"chargeUnit": "HOUR", "unitPrice": "0.35"},
                "bandwidth": {"chargeUnit": "HOUR", "unitPrice": "0.06"},
                "currency": "CNY", "summary": "0.35 CNY/HOUR + 0.06 CNY/HOUR",
                "instanceType": "S5.SMALL1", "internetMaxBandwidthOut": 1,
                "action": "InquiryPriceRunInstances",
                "requestId": "7a2e9f1b-2d3c-4e5f-9a6b-7c8d9e0f1a2b",
                "time": "2026-11-30T10:00:00Z"},
            "observedGeneration": 2,
            "conditions": [
                condition("Ready", "Running", "the instance is running"),
                condition("Synced", "ReconcileSuccess", "the instance matches the spec"),
                condition("Stalled", "NotStalled", ""),
            ],
        },
    })
    .to_string()
}

/// An instance as DescribeInstances answers for a resource of
/// [`resource_json`].
fn instance_json(i: usize) -> String {
    json!({
        "InstanceId": format!("ins-{i:08}"), "Uuid": "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d",
        "InstanceState": "RUNNING", "InstanceType": "S5.SMALL1", "CPU": 1, "Memory": 1,
        "InstanceName": format!("renamed-{i}"), "InstanceChargeType": "POSTPAID_BY_HOUR",
        "Placement": {"Zone": "ap-guangzhou-3", "ProjectId": 0},
        "SystemDisk": {"DiskType": "CLOUD_PREMIUM", "DiskId": format!("disk-{i:08}"),
                       "DiskSize": 50},
        "DataDisks": [],
        "PrivateIpAddresses": ["172.16.3.2"], "PublicIpAddresses": ["43.138.10.2"],
        "InternetAccessible": {"InternetChargeType": "TRAFFIC_POSTPAID_BY_HOUR",
                               "InternetMaxBandwidthOut": 1},
        "VirtualPrivateCloud": {"VpcId": "vpc-gz000001", "SubnetId": "subnet-gz000003",
                                "AsVpcGateway": false},
        "ImageId": "img-pi0ii46r", "OsName": "TencentOS Server 3.1 (TK4)",
        "RenewFlag": "NOTIFY_AND_MANUAL_RENEW", "CreatedTime": "2026-11-30T10:00:03Z",
        "ExpiredTime": null, "SecurityGroupIds": ["sg-gz000001"],
        "LoginSettings": {"KeyIds": []},
        "Tags": [
            {"Key": "cvm.tencentcloud.io/uid", "Value": format!("5f0c6a2e-8d3b-4b7e-9c1a-{i:012}")},
            {"Key": "cvm.tencentcloud.io/namespace", "Value": "bench-ns-1234"},
            {"Key": "cvm.tencentcloud.io/name", "Value": format!("vm-{i:05}")},
        ],
        "LatestOperation": "ModifyInstancesAttribute", "LatestOperationState": "SUCCESS",
        "LatestOperationRequestId": "8b3f0a2c-3e4d-4f5a-8b7c-9d0e1f2a3b4c",
        "RestrictState": "NORMAL", "StopChargingMode": "NOT_APPLICABLE",
        "DisableApiTermination": false, "DefaultLoginUser": "root", "DefaultLoginPort": 22,
        "CamRoleName": "", "HostName": format!("VM-3-{i}-tencentos"),
        "DisasterRecoverGroupId": "", "DisasterRecoverGroupIds": [],
    })
    .to_string()
}

fn cached(i: usize) -> CachedInstance {
    let mut c: CachedInstance = serde_json::from_str(&resource_json(i)).unwrap();
    c.slim();
    c
}

fn observation(i: usize) -> Observation {
    let instance: Instance = serde_json::from_str(&instance_json(i)).unwrap();
    Observation::from_instance(&instance)
}

#[test]
fn the_watch_cache_keeps_a_resource_in_few_bytes() {
    // The objects are sound: what reconciles read survives the slimming.
    let (obj, fingerprint) = cached(7).expand().unwrap();
    assert_eq!(obj.spec.instance_name.as_deref(), Some("renamed-7"));
    let status = obj.status.unwrap();
    assert_eq!(status.instance_id.as_deref(), Some("ins-00000007"));
    assert_eq!(status.conditions.len(), 3);
    assert!(fingerprint.is_some());

    let bytes = bytes_per_item(cached);
    println!("CachedInstance: {bytes} bytes per resource");
    assert!(
        bytes <= CACHED_BYTES_MAX,
        "{bytes} bytes per cached resource"
    );
}

#[test]
fn the_watch_cache_store_adds_its_index() {
    use kube::runtime::{reflector, watcher};
    // Built before counting: what the store adds on top of the objects.
    let objects: Vec<CachedInstance> = (0..ITEMS).map(cached).collect();
    let (reader, mut writer) = reflector::store::<CachedInstance>();
    let before = LIVE.with(Cell::get);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(o));
    }
    let after = LIVE.with(Cell::get);
    assert_eq!(reader.state().len(), ITEMS);
    // The store holds its own copies and the originals are gone: what is
    // left is its index (an `ObjectRef` of four strings per resource, the
    // table) and the `Arc`s.
    let bytes = (after - before) as usize / ITEMS;
    println!("reflector store: {bytes} bytes per resource besides the object");
    assert!(bytes <= 400, "{bytes} bytes of index per resource");
}

#[test]
fn an_observation_keeps_an_instance_in_few_bytes() {
    let o = observation(7);
    assert_eq!(o.name, "renamed-7");
    assert_eq!(o.settings.vpc_id, "vpc-gz000001");

    let bytes = bytes_per_item(observation);
    println!("Observation: {bytes} bytes per instance");
    assert!(
        bytes <= OBSERVATION_BYTES_MAX,
        "{bytes} bytes per observation"
    );
}

/// Measured 2,016 (2026-11-30): metadata 688 (of which the `ObjectMeta`
/// struct itself 360), the spec's JSON 179, the slim status's JSON 1,089
/// (a third of it the price, which status writes carry whole).
const CACHED_BYTES_MAX: usize = 2_200;
/// Measured 1,168 (2026-11-30), 1,584 before the shared values were
/// interned ([`cvm_operator::controller::observation::Word`]).
const OBSERVATION_BYTES_MAX: usize = 1_300;
