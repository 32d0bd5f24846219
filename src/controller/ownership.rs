//! Whose is what, decided in one place and pure: which account a resource
//! may use (its choice, the account's namespace selection, the account it
//! recorded), and — before anything is mutated, terminated or reported —
//! whether an instance is this resource's. Every rule has a row in the tests
//! below; the reconciler only carries the answers out.

use super::status::reason;
use crate::api::account::{DEFAULT_ACCOUNT, Selection};
use crate::api::{AccountKind, AccountRecord, CvmAccount, CvmInstanceSpec};
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
}
