//! The chart's RBAC, asked of the real apiserver: exactly the verbs the
//! operator uses; Secrets readable (get only) in the namespaces an admin
//! lists and nowhere else; the optional NetworkPolicy.

use crate::support::CHART_IMAGE;
use crate::support::control_plane::ControlPlane;
use serde_json::{Value, json};

const CVM: &str = "cvminstances.cvm.tencentcloud.io";
const SETS: &str = "cvminstancesets.cvm.tencentcloud.io";
const LEASES: &str = "leases.coordination.k8s.io";
const ACCOUNTS: &str = "cvmaccounts.cvm.tencentcloud.io";

fn chart() -> String {
    format!("{}/deploy/helm/cvm-operator", env!("CARGO_MANIFEST_DIR"))
}

/// `helm install release` into `ns` (CRDs are installed once per run) with
/// `--set` values; the name of its ServiceAccount as a user.
pub fn install(cp: &ControlPlane, release: &str, ns: &str, values: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["install", release, &chart, "-n", ns, "--skip-crds"];
    args.extend(["--set", CHART_IMAGE]);
    for v in values {
        args.extend(["--set", v]);
    }
    cp.run_tool("helm", &args, None);
    format!("system:serviceaccount:{ns}:{release}-cvm-operator")
}

/// `kubectl auth can-i` as `sa`, in `ns` or (None) across all namespaces.
/// `resource/status` and `resource/finalizers` ask about the subresource
/// (kubectl would read them as an object's name).
fn can_i(cp: &ControlPlane, sa: &str, verb: &str, resource: &str, ns: Option<&str>) -> bool {
    let mut cmd = cp.tool("kubectl");
    match resource.split_once('/') {
        Some((res, sub @ ("status" | "finalizers"))) => {
            cmd.args(["auth", "can-i", verb, res, "--subresource", sub, "--as", sa])
        }
        _ => cmd.args(["auth", "can-i", verb, resource, "--as", sa]),
    };
    match ns {
        Some(ns) => cmd.args(["-n", ns]),
        None => cmd.arg("--all-namespaces"),
    };
    let out = cmd.output().unwrap();
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "can-i {verb} {resource}: {other} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn assert_grants(cp: &ControlPlane, sa: &str, cases: &[(&str, &str, Option<&str>, bool)]) {
    for &(verb, resource, ns, want) in cases {
        let got = can_i(cp, sa, verb, resource, ns);
        let where_ = ns.unwrap_or("all namespaces");
        assert_eq!(got, want, "{sa} can {verb} {resource} in {where_}");
    }
}

/// The rules of a Role or ClusterRole as the apiserver stores them.
fn rules(cp: &ControlPlane, kind: &str, name: &str, ns: Option<&str>) -> Value {
    let mut args = vec!["get", kind, name, "-o", "json"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let obj: Value = serde_json::from_str(&cp.run_tool("kubectl", &args, None)).unwrap();
    obj["rules"].clone()
}

/// Every (Cluster)Role and binding of `release`: kind/namespace/name.
fn rbac_objects(cp: &ControlPlane, release: &str) -> Vec<String> {
    let out = cp.run_tool(
        "kubectl",
        &[
            "get",
            "clusterroles,clusterrolebindings,roles,rolebindings",
            "-A",
            "-l",
            &format!("app.kubernetes.io/instance={release}"),
            "-o",
            r#"jsonpath={range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name}{"\n"}{end}"#,
        ],
        None,
    );
    let mut objects: Vec<String> = out.lines().map(str::to_string).collect();
    objects.sort();
    objects
}

/// What the default install (release `cvm-operator` in `ns`, no values)
/// grants: the exact objects and rules, and what they allow.
pub fn default_install_is_least_privilege(cp: &ControlPlane, ns: &str) {
    assert_eq!(
        rbac_objects(cp, "cvm-operator"),
        [
            "ClusterRole//cvm-operator".to_string(),
            "ClusterRole//cvm-operator-accounts".into(),
            "ClusterRoleBinding//cvm-operator".into(),
            "ClusterRoleBinding//cvm-operator-accounts".into(),
            format!("Role/{ns}/cvm-operator-leader-election"),
            format!("RoleBinding/{ns}/cvm-operator-leader-election"),
        ]
    );
    assert_eq!(
        rules(cp, "clusterrole", "cvm-operator", None),
        json!([
            {"apiGroups": ["cvm.tencentcloud.io"], "resources": ["cvminstances"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
            {"apiGroups": ["cvm.tencentcloud.io"], "resources": ["cvminstances/status"], "verbs": ["patch"]},
            {"apiGroups": ["cvm.tencentcloud.io"], "resources": ["cvminstancesets"], "verbs": ["list", "watch", "patch"]},
            {"apiGroups": ["cvm.tencentcloud.io"], "resources": ["cvminstancesets/status"], "verbs": ["patch"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
        ])
    );
    assert_eq!(
        rules(cp, "clusterrole", "cvm-operator-accounts", None),
        json!([
            {"apiGroups": ["cvm.tencentcloud.io"], "resources": ["cvmaccounts"], "verbs": ["list", "watch"]},
            {"apiGroups": ["cvm.tencentcloud.io"], "resources": ["cvmaccounts/status"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
        ])
    );
    assert_eq!(
        rules(cp, "role", "cvm-operator-leader-election", Some(ns)),
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["cvm-operator"], "verbs": ["get", "patch"]},
        ])
    );
    let sa = format!("system:serviceaccount:{ns}:cvm-operator");
    let lease = format!("{LEASES}/cvm-operator");
    let other_lease = format!("{LEASES}/someone-else");
    let status = format!("{CVM}/status");
    let finalizers = format!("{CVM}/finalizers");
    let set_status = format!("{SETS}/status");
    let n = Some(ns);
    assert_grants(
        cp,
        &sa,
        &[
            // What it does.
            ("list", CVM, None, true),
            ("get", CVM, n, true),
            ("watch", CVM, None, true),
            ("patch", CVM, n, true),
            ("patch", &status, n, true),
            // A set's members: created, updated, deleted.
            ("create", CVM, n, true),
            ("delete", CVM, n, true),
            ("list", SETS, None, true),
            ("watch", SETS, None, true),
            ("patch", SETS, n, true),
            ("patch", &set_status, n, true),
            ("create", "events.events.k8s.io", n, true),
            ("create", LEASES, n, true),
            ("get", &lease, n, true),
            ("patch", &lease, n, true),
            ("list", ACCOUNTS, None, true),
            ("watch", ACCOUNTS, None, true),
            ("patch", &format!("{ACCOUNTS}/status"), None, true),
            ("get", "namespaces", None, true),
            // Nothing else.
            ("patch", ACCOUNTS, None, false),
            ("create", ACCOUNTS, None, false),
            ("delete", ACCOUNTS, None, false),
            ("list", "namespaces", None, false),
            ("update", "namespaces", None, false),
            ("update", CVM, n, false),
            ("deletecollection", CVM, n, false),
            ("create", SETS, n, false),
            ("delete", SETS, n, false),
            ("update", &set_status, n, false),
            ("update", &status, n, false),
            ("update", &finalizers, n, false),
            ("patch", "events.events.k8s.io", n, false),
            ("create", "events", n, false),
            ("update", &lease, n, false),
            ("delete", &lease, n, false),
            ("patch", &other_lease, n, false),
            ("get", "configmaps", n, false),
            // No Secret anywhere, not even its own namespace's.
            ("get", "secrets", n, false),
            ("get", "secrets", Some("kube-system"), false),
            ("get", "secrets", Some("default"), false),
            ("get", "secrets", None, false),
            ("list", "secrets", None, false),
            ("watch", "secrets", None, false),
        ],
    );
}

fn create_namespaces(cp: &ControlPlane, names: &[&str]) {
    for n in names {
        cp.run_tool("kubectl", &["create", "namespace", n], None);
    }
}

#[test]
fn secrets_are_readable_only_in_listed_namespaces() {
    let cp = ControlPlane::shared();
    crate::support::install_crds(cp);
    let id = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let (ns, listed, unlisted) = (
        format!("rbac-{id}"),
        format!("team-a-{id}"),
        format!("team-b-{id}"),
    );
    create_namespaces(cp, &[&ns, &listed, &unlisted]);
    let release = format!("sec-{id}");
    let sa = install(
        cp,
        &release,
        &ns,
        &[&format!("rbac.secretNamespaces={{{listed}}}")],
    );
    let name = format!("{release}-cvm-operator");
    let mut want = vec![
        format!("ClusterRole//{name}"),
        format!("ClusterRole//{name}-accounts"),
        format!("ClusterRoleBinding//{name}"),
        format!("ClusterRoleBinding//{name}-accounts"),
        format!("Role/{listed}/{name}-secrets"),
        format!("Role/{ns}/{name}-leader-election"),
        format!("RoleBinding/{listed}/{name}-secrets"),
        format!("RoleBinding/{ns}/{name}-leader-election"),
    ];
    want.sort();
    assert_eq!(rbac_objects(cp, &release), want);
    assert_eq!(
        rules(cp, "role", &format!("{name}-secrets"), Some(&listed)),
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    );
    assert_grants(
        cp,
        &sa,
        &[
            ("get", "secrets", Some(&listed), true),
            ("list", "secrets", Some(&listed), false),
            ("watch", "secrets", Some(&listed), false),
            ("create", "secrets", Some(&listed), false),
            ("get", "secrets", Some(&unlisted), false),
            ("get", "secrets", Some(&ns), false),
            ("get", "secrets", Some("kube-system"), false),
            ("get", "secrets", None, false),
            ("list", "secrets", None, false),
        ],
    );
    // The old switch that granted get/list/watch everywhere is refused, not ignored.
    let old = cp.try_tool(
        "helm",
        &[
            "template",
            "x",
            &chart(),
            "--set",
            CHART_IMAGE,
            "--set",
            "rbac.perResourceCredentials=true",
        ],
    );
    assert!(
        old.as_ref()
            .is_err_and(|e| e.contains("rbac.secretNamespaces")),
        "{old:?}"
    );
}

/// Ports a NetworkPolicy rule allows: "port/protocol".
fn ports(rule: &Value) -> Vec<String> {
    rule["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["port"]
                    .as_str()
                    .map_or(p["port"].to_string(), str::to_string),
                p["protocol"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn network_policy_allows_only_dns_apiserver_cloud_and_metrics() {
    let cp = ControlPlane::shared();
    crate::support::install_crds(cp);
    let id = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let ns = format!("netpol-{id}");
    create_namespaces(cp, &[&ns]);
    let release = format!("np-{id}");
    install(
        cp,
        &release,
        &ns,
        &[
            "networkPolicy.enabled=true",
            "networkPolicy.apiServerCIDRs={10.0.0.1/32}",
            "networkPolicy.metadataService=true",
        ],
    );
    let np: Value = serde_json::from_str(&cp.run_tool(
        "kubectl",
        &[
            "get",
            "networkpolicy",
            &format!("{release}-cvm-operator"),
            "-n",
            &ns,
            "-o",
            "json",
        ],
        None,
    ))
    .unwrap();
    let spec = &np["spec"];
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        spec["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
        json!(release)
    );
    let ingress = spec["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ports(&ingress[0]), ["http/TCP"]);
    let egress: Vec<(Vec<String>, Value)> = spec["egress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (ports(r), r["to"].clone()))
        .collect();
    assert_eq!(
        egress,
        [
            (vec!["53/UDP".to_string(), "53/TCP".into()], Value::Null),
            (
                vec!["443/TCP".to_string(), "6443/TCP".into()],
                json!([{"ipBlock": {"cidr": "10.0.0.1/32"}}])
            ),
            (vec!["443/TCP".to_string()], Value::Null),
            (
                vec!["80/TCP".to_string()],
                json!([{"ipBlock": {"cidr": "169.254.0.23/32"}}])
            ),
        ]
    );
}
