//! Whose is what, decided in one place and pure: which account a resource
//! may use (its choice, the account's namespace selection, the account it
//! recorded), and — before anything is mutated, terminated or reported —
//! whether an instance is this resource's. Every rule has a row in the tests
//! below; the reconciler only carries the answers out.

use super::observation::Observation;
use super::status::reason;
use crate::api::account::{DEFAULT_ACCOUNT, Selection};
use crate::api::set::SET_TAG;
use crate::api::{
    AccountKind, AccountRecord, CvmAccount, CvmInstance, CvmInstanceSpec, ManagementPolicy,
    NAMESPACE_TAG, UID_TAG,
};
use std::collections::BTreeMap;

/// Where a resource's credentials come from, by its spec alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChoice {
    /// A `CvmAccount`: the one `spec.accountRef` names (`explicit`), or the
    /// one named `default`.
    Account { name: String, explicit: bool },
    /// The resource's own keys (`spec.credentialsSecretRef`).
    Secret { name: String },
}

impl AccountChoice {
    /// `accountRef`, else `credentialsSecretRef`, else the default account.
    /// (Admission refuses both at once.)
    pub fn of(spec: &CvmInstanceSpec) -> Self {
        Self::from_refs(
            spec.account_ref.as_ref().map(|r| r.name.as_str()),
            spec.credentials_secret_ref
                .as_ref()
                .map(|r| r.name.as_str()),
        )
    }

    /// From the names in `spec.accountRef` and `spec.credentialsSecretRef`.
    pub fn from_refs(account_ref: Option<&str>, secret_ref: Option<&str>) -> Self {
        match (account_ref, secret_ref) {
            (Some(a), _) => AccountChoice::Account {
                name: a.to_string(),
                explicit: true,
            },
            (None, Some(s)) => AccountChoice::Secret {
                name: s.to_string(),
            },
            (None, None) => AccountChoice::Account {
                name: DEFAULT_ACCOUNT.into(),
                explicit: false,
            },
        }
    }

    pub fn kind(&self) -> AccountKind {
        match self {
            AccountChoice::Account { .. } => AccountKind::CvmAccount,
            AccountChoice::Secret { .. } => AccountKind::Secret,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            AccountChoice::Account { name, .. } | AccountChoice::Secret { name } => name,
        }
    }

    /// How a message names it.
    pub fn describe(&self) -> String {
        match self {
            AccountChoice::Account { name, .. } => format!("CvmAccount {name}"),
            AccountChoice::Secret { name } => format!("Secret {name}"),
        }
    }
}

/// What the operator knows of the account a resource chose.
#[derive(Debug, Clone, Copy)]
pub enum AccountLookup<'a> {
    Found(&'a CvmAccount),
    Missing,
    /// Not among the accounts this operator serves (its
    /// `--account-selector`): missing, or left to another operator.
    NotServed {
        selector: &'a str,
    },
}

/// Why a resource may not use the account it chose; no Secret is read and no
/// cloud call made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The condition reason (`NoAccount`, `AccountNotAllowed`, …).
    pub reason: &'static str,
    pub message: String,
}

/// Whether a resource in `namespace` (with these labels) may use the
/// `CvmAccount` it chose.
pub fn admit_account(
    choice: &AccountChoice,
    lookup: AccountLookup<'_>,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    let AccountChoice::Account { name, explicit } = choice else {
        // A resource may always use keys from its own namespace.
        return Ok(());
    };
    let refuse = |message: String| {
        Err(Refusal {
            reason: reason::NO_ACCOUNT,
            message,
        })
    };
    let served = match lookup {
        AccountLookup::Found(_) | AccountLookup::Missing => String::new(),
        AccountLookup::NotServed { selector } => format!(
            " (this operator serves the CvmAccounts matching {selector:?}; another operator may serve it)"
        ),
    };
    let account = match lookup {
        AccountLookup::Found(a) => a,
        _ if !explicit => {
            return refuse(format!(
                "no account to use: set spec.accountRef to a CvmAccount that selects namespace {namespace}, or spec.credentialsSecretRef to a Secret with your own keys; or an admin creates the CvmAccount {DEFAULT_ACCOUNT} selecting namespace {namespace}{served}"
            ));
        }
        _ => {
            return refuse(format!(
                "CvmAccount {name} does not exist{served}: an admin must create it, selecting namespace {namespace}"
            ));
        }
    };
    match account.selects(namespace_labels) {
        Selection::Selected => Ok(()),
        Selection::NotSelected => Err(Refusal {
            reason: reason::ACCOUNT_NOT_ALLOWED,
            message: format!(
                "CvmAccount {name} does not allow namespace {namespace}: an admin must add it to the account's spec.namespaceSelector"
            ),
        }),
        Selection::Invalid => Err(Refusal {
            reason: reason::ACCOUNT_NOT_ALLOWED,
            message: format!(
                "CvmAccount {name} has an invalid spec.namespaceSelector and allows no namespace: an admin must fix it"
            ),
        }),
    }
}

/// A resource's instance lives in the account recorded at create or
/// adoption; using another one — another source (`same_uin: None`, decided
/// before any Secret is read or cloud call made), or the same source now
/// acting in another account — is refused. `None`: no change.
pub fn account_change(
    recorded: Option<&AccountRecord>,
    choice: &AccountChoice,
    uin: Option<&str>,
) -> Option<Refusal> {
    let recorded = recorded?;
    let same_source = recorded.kind == choice.kind() && recorded.name == choice.name();
    let now = match uin {
        _ if !same_source => choice.describe(),
        Some(uin) if uin != recorded.uin => {
            format!("{} acting in account {uin}", choice.describe())
        }
        _ => return None,
    };
    Some(Refusal {
        reason: reason::CREDENTIALS_ACCOUNT_CHANGED,
        message: format!(
            "the instance belongs to {recorded}, but the resource now uses {now}: nothing is done (no cloud call, and a deletion waits) until the resource names the recorded account again, or deletionPolicy is Retain"
        ),
    })
}

/// How a resource came to the instance it is looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `status.instanceId`: learnt by the operator, but anyone with status
    /// access can write it.
    Status,
    /// `spec.instanceId`: an adoption.
    Adoption,
    /// Found by this resource's UID tag (the create guard).
    UidTag,
}

/// What the apiserver says of the resource an instance's UID tag names
/// (looked for by the instance's namespace and name tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimant {
    /// It exists, with that UID.
    Live,
    /// No resource of that name, or one with another UID: it is gone.
    Gone,
    /// Cannot tell (no name tag, or the lookup was refused).
    Unknown,
}

/// Whose the instance is, as far as this resource may act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// This resource's: observe, report, change, terminate.
    Owned,
    /// Given to this namespace and unclaimed: tag it with this resource's
    /// UID (and name), then it is owned.
    Adopt,
    /// Another resource's UID tag: ask the apiserver whether it is live,
    /// then decide again with the answer.
    AskClaimant,
    /// Not this resource's: no mutation, no termination, nothing reported.
    Refused(Refusal),
}

/// The resource asking.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub uid: &'a str,
    pub namespace: &'a str,
    /// `managementPolicy: ObserveOnly`: reads need the adoption proof but
    /// claim nothing (a claim is a tag write).
    pub observe_only: bool,
    /// The UID of the `CvmInstanceSet` that is the asker's controller (its
    /// owner reference), when it is a set's member.
    pub set: Option<&'a str>,
}

impl<'a> Asker<'a> {
    /// `obj` asking, under its `uid`.
    pub fn of(obj: &'a CvmInstance, uid: &'a str) -> Self {
        Asker {
            uid,
            namespace: obj.metadata.namespace.as_deref().unwrap_or_default(),
            observe_only: obj.spec.management_policy == ManagementPolicy::ObserveOnly,
            set: obj.controlling_set(),
        }
    }
}

impl Source {
    /// How `obj` came to the instance it looks at.
    pub fn of(obj: &CvmInstance) -> Self {
        match (&obj.spec.instance_id, obj.known_instance_id()) {
            (Some(_), _) => Source::Adoption,
            (None, Some(_)) => Source::Status,
            (None, None) => Source::UidTag,
        }
    }
}

/// Whether `o` is the asker's. Decided before anything is mutated,
/// terminated or reported; `claimant` is the answer to
/// [`Ownership::AskClaimant`] (`None` before it was asked).
pub fn ownership(
    asker: Asker<'_>,
    source: Source,
    o: &Observation,
    claimant: Option<Claimant>,
) -> Ownership {
    let id = &o.id;
    if o.uid_tag.as_deref() == Some(asker.uid) {
        return Ownership::Owned;
    }
    let refuse = |reason, message| Ownership::Refused(Refusal { reason, message });
    if source != Source::Adoption {
        return refuse(
            reason::INSTANCE_NOT_OWNED,
            format!(
                "status.instanceId names instance {id}, which does not carry this resource's tag {UID_TAG}: the operator neither changes nor reports it (clear status.instanceId: the operator then finds this resource's own instance by its tag)"
            ),
        );
    }
    if o.namespace_tag.as_deref() != Some(asker.namespace) {
        let ns = asker.namespace;
        return refuse(
            reason::ADOPTION_REFUSED,
            format!(
                "instance {id} is not given to namespace {ns}: adopting it needs the tag {NAMESPACE_TAG}={ns} on the instance, which only whoever controls the cloud account can set (`cvm-operator import --namespace {ns}` does); until then nothing is done to it and nothing of it is reported"
            ),
        );
    }
    if asker.observe_only {
        return Ownership::Owned;
    }
    if let (Some(set), None) = (&o.set_tag, &o.uid_tag) {
        return member(asker, id, set);
    }
    let claimed_by = match (&o.namespace_tag, &o.name_tag) {
        (Some(ns), Some(name)) => format!("CvmInstance {ns}/{name}"),
        _ => "another resource".into(),
    };
    match (&o.uid_tag, claimant) {
        (None, _) | (Some(_), Some(Claimant::Gone)) => Ownership::Adopt,
        (Some(_), None) => Ownership::AskClaimant,
        (Some(_), Some(Claimant::Live)) => refuse(
            reason::INSTANCE_CLAIMED,
            format!(
                "instance {id} is managed by {claimed_by}: nothing is done; delete that resource (deletionPolicy Retain keeps the instance) to hand the instance over"
            ),
        ),
        (Some(other), Some(Claimant::Unknown)) => refuse(
            reason::INSTANCE_CLAIMED,
            format!(
                "instance {id} carries the tag {UID_TAG}={other} of {claimed_by}, which the operator cannot find: nothing is done; whoever controls the cloud account can remove that tag to hand the instance over"
            ),
        ),
    }
}

/// An instance a `CvmInstanceSet` launched (its UID in the set tag, the
/// namespace tag already checked, no resource's UID tag): its set's members'
/// without a claim — the set launched it for the member that adopts it, and
/// 1,000 members need no 1,000 tag writes — and nobody else's. A member is
/// a `CvmInstance` whose controller owner reference names the set: only
/// someone who may create `CvmInstance`s in the set's own namespace can
/// make one, someone who could change the set's members anyway.
fn member(asker: Asker<'_>, id: &str, set: &str) -> Ownership {
    if asker.set == Some(set) {
        return Ownership::Owned;
    }
    Ownership::Refused(Refusal {
        reason: reason::INSTANCE_CLAIMED,
        message: format!(
            "instance {id} was launched by the CvmInstanceSet with UID {set} for its members (tag {SET_TAG}): nothing is done; whoever controls the cloud account can remove that tag to hand the instance over"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::account::NAMESPACE_NAME_LABEL;
    use serde_json::json;

    fn spec(extra: serde_json::Value) -> CvmInstanceSpec {
        let mut v = json!({"region": "ap-guangzhou", "zone": "ap-guangzhou-3",
            "imageId": "img-pi0ii46r", "instanceType": "S5.SMALL1"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn account(name: &str, selector: serde_json::Value) -> CvmAccount {
        let mut spec = json!({"credentials": {"source": "Environment"}});
        for (k, val) in selector.as_object().unwrap() {
            spec[k] = val.clone();
        }
        serde_json::from_value(json!({"apiVersion": "cvm.tencentcloud.io/v1alpha1",
            "kind": "CvmAccount", "metadata": {"name": name}, "spec": spec}))
        .unwrap()
    }

    fn ns(name: &str) -> BTreeMap<String, String> {
        [(NAMESPACE_NAME_LABEL.to_string(), name.to_string())].into()
    }

    #[test]
    fn the_choice_follows_the_spec_and_defaults_to_the_default_account() {
        let by_ref = AccountChoice::of(&spec(json!({"accountRef": {"name": "team-a"}})));
        assert_eq!(
            by_ref,
            AccountChoice::Account {
                name: "team-a".into(),
                explicit: true
            }
        );
        let own = AccountChoice::of(&spec(json!({"credentialsSecretRef": {"name": "keys"}})));
        assert_eq!((own.kind(), own.name()), (AccountKind::Secret, "keys"));
        let none = AccountChoice::of(&spec(json!({})));
        assert_eq!(
            none,
            AccountChoice::Account {
                name: "default".into(),
                explicit: false
            }
        );
    }

    #[test]
    fn an_account_is_used_only_where_it_selects_the_namespace() {
        let team_a = account(
            "team-a",
            json!({"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "team-a"}}}),
        );
        let everyone = account("default", json!({"allNamespaces": true}));
        let nobody = account("default", json!({"namespaceSelector": {}}));
        let named = |n: &str| AccountChoice::Account {
            name: n.into(),
            explicit: n != "default",
        };
        let secret = AccountChoice::Secret {
            name: "keys".into(),
        };
        use AccountLookup::*;
        type Row<'a> = (
            AccountChoice,
            AccountLookup<'a>,
            &'a str,
            Option<(&'a str, &'a str)>,
        );
        let rows: Vec<Row> = vec![
            (named("team-a"), Found(&team_a), "team-a", None),
            (
                named("team-a"),
                Found(&team_a),
                "team-b",
                Some((
                    reason::ACCOUNT_NOT_ALLOWED,
                    "does not allow namespace team-b",
                )),
            ),
            (named("default"), Found(&everyone), "team-b", None),
            (
                named("default"),
                Found(&nobody),
                "team-b",
                Some((reason::ACCOUNT_NOT_ALLOWED, "spec.namespaceSelector")),
            ),
            (
                named("default"),
                Missing,
                "team-b",
                Some((
                    reason::NO_ACCOUNT,
                    "an admin creates the CvmAccount default",
                )),
            ),
            (
                named("team-z"),
                Missing,
                "team-b",
                Some((reason::NO_ACCOUNT, "CvmAccount team-z does not exist")),
            ),
            (
                named("team-a"),
                NotServed {
                    selector: "shard=b",
                },
                "team-a",
                Some((
                    reason::NO_ACCOUNT,
                    "this operator serves the CvmAccounts matching \"shard=b\"",
                )),
            ),
            (secret, Missing, "team-b", None),
        ];
        for (choice, lookup, namespace, want) in rows {
            let got = admit_account(&choice, lookup, namespace, &ns(namespace));
            match want {
                None => assert_eq!(got, Ok(()), "{choice:?} in {namespace}"),
                Some((reason, text)) => {
                    let r = got.expect_err(namespace);
                    assert_eq!(r.reason, reason, "{choice:?}");
                    assert!(r.message.contains(text), "{}", r.message);
                }
            }
        }
    }

    #[test]
    fn a_recorded_account_is_never_swapped_for_another() {
        let recorded = AccountRecord {
            kind: AccountKind::CvmAccount,
            name: "team-a".into(),
            uin: "100000000001".into(),
        };
        let same = AccountChoice::Account {
            name: "team-a".into(),
            explicit: true,
        };
        let other = AccountChoice::Account {
            name: "team-b".into(),
            explicit: true,
        };
        let own = AccountChoice::Secret {
            name: "team-a".into(),
        };
        // Nothing recorded yet: anything goes.
        assert_eq!(account_change(None, &other, None), None);
        // Same source: fine before the UIN is known and when it matches…
        assert_eq!(account_change(Some(&recorded), &same, None), None);
        assert_eq!(
            account_change(Some(&recorded), &same, Some("100000000001")),
            None
        );
        // …refused when it now acts in another account.
        let moved = account_change(Some(&recorded), &same, Some("200000000002")).unwrap();
        assert_eq!(moved.reason, reason::CREDENTIALS_ACCOUNT_CHANGED);
        assert!(moved.message.contains("acting in account 200000000002"));
        // Another source, even of the same name: refused before any lookup.
        for choice in [&other, &own] {
            let r = account_change(Some(&recorded), choice, None).unwrap();
            assert_eq!(r.reason, reason::CREDENTIALS_ACCOUNT_CHANGED);
            assert!(
                r.message
                    .contains("belongs to CvmAccount team-a (account 100000000001)"),
                "{}",
                r.message
            );
        }
    }

    #[test]
    fn an_instance_is_acted_on_only_when_it_is_this_resources() {
        let me = Asker {
            uid: "uid-me",
            namespace: "team-b",
            observe_only: false,
            set: None,
        };
        let tagged = |uid: Option<&str>, ns: Option<&str>, name: Option<&str>| Observation {
            uid_tag: uid.map(str::to_string),
            namespace_tag: (ns.map(str::to_string)).map(Into::into),
            name_tag: name.map(str::to_string),
            ..Observation::fixture()
        };
        let ours = tagged(Some("uid-me"), Some("team-b"), Some("web"));
        let victims = tagged(Some("uid-victim"), Some("team-a"), Some("db"));
        let untagged = tagged(None, None, None);
        let given = tagged(None, Some("team-b"), None);
        let given_claimed = tagged(Some("uid-old"), Some("team-b"), Some("old"));
        let given_claimed_anon = tagged(Some("uid-old"), Some("team-b"), None);
        use Source::*;
        let refused = |reason: &'static str| Some(reason);
        type Row<'a> = (
            Source,
            &'a Observation,
            Option<Claimant>,
            Result<Ownership, Option<&'a str>>,
        );
        let rows: Vec<Row> = vec![
            // Our own UID: ours, however we came to it.
            (Status, &ours, None, Ok(Ownership::Owned)),
            (Adoption, &ours, None, Ok(Ownership::Owned)),
            (UidTag, &ours, None, Ok(Ownership::Owned)),
            // A status id without our UID: never, whatever else it carries.
            (
                Status,
                &victims,
                None,
                Err(refused(reason::INSTANCE_NOT_OWNED)),
            ),
            (
                Status,
                &untagged,
                None,
                Err(refused(reason::INSTANCE_NOT_OWNED)),
            ),
            (
                Status,
                &given,
                None,
                Err(refused(reason::INSTANCE_NOT_OWNED)),
            ),
            // Adoption needs the proof for this namespace…
            (
                Adoption,
                &victims,
                None,
                Err(refused(reason::ADOPTION_REFUSED)),
            ),
            (
                Adoption,
                &victims,
                Some(Claimant::Gone),
                Err(refused(reason::ADOPTION_REFUSED)),
            ),
            (
                Adoption,
                &untagged,
                None,
                Err(refused(reason::ADOPTION_REFUSED)),
            ),
            // …and an unclaimed instance, or one whose claimant is gone.
            (Adoption, &given, None, Ok(Ownership::Adopt)),
            (Adoption, &given_claimed, None, Ok(Ownership::AskClaimant)),
            (
                Adoption,
                &given_claimed,
                Some(Claimant::Gone),
                Ok(Ownership::Adopt),
            ),
            (
                Adoption,
                &given_claimed,
                Some(Claimant::Live),
                Err(refused(reason::INSTANCE_CLAIMED)),
            ),
            (
                Adoption,
                &given_claimed_anon,
                Some(Claimant::Unknown),
                Err(refused(reason::INSTANCE_CLAIMED)),
            ),
        ];
        for (source, o, claimant, want) in rows {
            let got = ownership(me, source, o, claimant);
            match (want, &got) {
                (Ok(w), g) => assert_eq!(g, &w, "{source:?} {o:?} {claimant:?}"),
                (Err(Some(reason)), Ownership::Refused(r)) => {
                    assert_eq!(r.reason, reason, "{source:?} {o:?}");
                    assert!(r.message.contains(&o.id), "{}", r.message);
                }
                (Err(_), g) => panic!("{source:?} {o:?} {claimant:?}: {g:?}"),
            }
        }
        // Messages say what to do.
        let Ownership::Refused(r) = ownership(me, Adoption, &victims, None) else {
            unreachable!()
        };
        assert!(
            r.message.contains("cvm.tencentcloud.io/namespace=team-b"),
            "{}",
            r.message
        );
        assert!(
            r.message.contains("cvm-operator import --namespace team-b"),
            "{}",
            r.message
        );
        let Ownership::Refused(r) = ownership(me, Adoption, &given_claimed, Some(Claimant::Live))
        else {
            unreachable!()
        };
        assert!(
            r.message.contains("CvmInstance team-b/old"),
            "{}",
            r.message
        );
        // ObserveOnly reads with the proof, and claims nothing.
        let watcher = Asker {
            observe_only: true,
            ..me
        };
        assert_eq!(
            ownership(watcher, Adoption, &given_claimed, None),
            Ownership::Owned
        );
        assert!(matches!(
            ownership(watcher, Adoption, &victims, None),
            Ownership::Refused(_)
        ));
    }

    #[test]
    fn a_sets_instance_is_its_members_and_nobody_elses() {
        let member = Asker {
            uid: "uid-member",
            namespace: "team-b",
            observe_only: false,
            set: Some("uid-set"),
        };
        let launched = |set: &str, ns: &str, uid: Option<&str>| Observation {
            set_tag: Some(set.to_string()),
            namespace_tag: Some((ns.to_string()).into()),
            uid_tag: uid.map(str::to_string),
            ..Observation::fixture()
        };
        let ours = launched("uid-set", "team-b", None);
        let refused = |o: Ownership| match o {
            Ownership::Refused(r) => r.reason,
            other => panic!("{other:?}"),
        };
        use Source::*;
        // The set's member adopting it: owned at once, no claim (no tag write).
        assert_eq!(ownership(member, Adoption, &ours, None), Ownership::Owned);
        // A member of another set, or a resource that is nobody's member.
        let other_member = Asker {
            set: Some("uid-other"),
            ..member
        };
        let loner = Asker {
            set: None,
            ..member
        };
        for asker in [other_member, loner] {
            let r = refused(ownership(asker, Adoption, &ours, None));
            assert_eq!(r, reason::INSTANCE_CLAIMED);
        }
        // The namespace proof still comes first: a set's instance given to
        // another namespace is refused to a member claiming the set's UID.
        let elsewhere = launched("uid-set", "team-a", None);
        let r = refused(ownership(member, Adoption, &elsewhere, None));
        assert_eq!(r, reason::ADOPTION_REFUSED);
        // A status id is never enough, member or not.
        let r = refused(ownership(member, Status, &ours, None));
        assert_eq!(r, reason::INSTANCE_NOT_OWNED);
        // Once a resource's UID tag is on it, the ordinary claim rules hold.
        let claimed = launched("uid-set", "team-b", Some("uid-someone"));
        assert_eq!(
            ownership(member, Adoption, &claimed, None),
            Ownership::AskClaimant
        );
    }
}
