//! What the operator's surroundings do to a pass.
//!
//! Keys rotated under it: the API refused the keys this pass used, but the
//! Secret they came from holds other keys by now (a rotation whose old key
//! was disabled before the Secret reads caught up). That is no reason to
//! back off as for wrong credentials: the pass is tried again at once.
//!
//! The API not answering: a pass that failed for want of an answer waits
//! in the observer, which wakes it the moment the API answers again.

use super::{Error, Reconciling};
use crate::cloud::{ErrorClass, Identity};
use crate::controller::accounts::Access;
use crate::controller::observe::ResourceKey;
use crate::controller::ownership::AccountChoice;
use crate::controller::report::{Report, StatusWrite};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use std::time::Duration;

/// A pass whose keys were refused but replaced meanwhile tries again this soon.
const KEYS_REPLACED_RETRY: Duration = Duration::from_millis(200);

impl Reconciling<'_> {
    /// When `report` is a refusal of keys that were replaced meanwhile: the
    /// retry (only its `lastOperation` is written; the failure is not the
    /// resource's to report).
    pub(super) async fn keys_rotated_under(
        &mut self,
        report: &Report,
    ) -> Result<Option<Action>, Error> {
        if report.error != Some(ErrorClass::Auth) {
            return Ok(None);
        }
        let Some(used) = self.used.take() else {
            return Ok(None);
        };
        if self.keys_replaced(&used).await.is_none() {
            return Ok(None);
        }
        self.ctx.metrics.error(Some(ErrorClass::Auth));
        self.keep_last_operation(report).await?;
        Ok(Some(Action::requeue(KEYS_REPLACED_RETRY)))
    }

    /// Failed for want of an answer (or not sent for that reason): woken the
    /// moment the API answers again, whatever its backoff says.
    pub(super) fn park_if_waiting(&self, report: &Report) {
        let waits = matches!(
            report.error,
            Some(ErrorClass::Unreachable | ErrorClass::Transient)
        );
        let key = ResourceKey {
            namespace: self.obj.namespace().unwrap_or_default(),
            name: self.obj.name_any(),
        };
        self.ctx.observer.park(key, waits);
    }

    /// The credentials now, when the keys `used` were replaced: the Secret
    /// is read afresh and resolves to other keys.
    async fn keys_replaced(&self, used: &Identity) -> Option<Access> {
        let choice = AccountChoice::of(&self.obj.spec);
        let ns = self.obj.namespace().unwrap_or_default();
        self.ctx.accounts.forget_keys(&ns, &choice);
        match self.ctx.accounts.resolve(&self.obj, &choice).await {
            Ok(now) if now.provider.identity() != used => {
                tracing::info!(account = %now.record, "the keys the API refused were replaced meanwhile; trying the new ones at once");
                Some(now)
            }
            _ => None,
        }
    }

    /// `access`, unless the API refused its keys in a sweep and the Secret
    /// holds new ones by now (a settled resource calls nothing itself, so
    /// only its sweep learns that its keys were rotated out).
    pub(super) async fn unrefused(&self, access: Access) -> Access {
        let identity = access.provider.identity();
        if !self.ctx.observer.refused(identity) {
            return access;
        }
        match self.keys_replaced(identity).await {
            Some(now) => {
                self.ctx.accounts.remember(&self.uid, &now);
                now
            }
            None => access,
        }
    }

    /// Writes the `lastOperation` `report` ends with, and nothing else of
    /// it: a create refused for the old keys made nothing, so its intent
    /// (written before the call) goes, or a deletion would wait for it.
    async fn keep_last_operation(&mut self, report: &Report) -> Result<(), Error> {
        let (Some(last), Some(mut status)) = (report.last_operation(), self.obj.status.clone())
        else {
            return Ok(());
        };
        if status.last_operation.as_ref() == last {
            return Ok(());
        }
        status.last_operation = last.cloned();
        self.write(StatusWrite::Apply(Box::new(status))).await
    }
}
