//! Batched mutations: the same action with the same parameters on many
//! resources' instances, under the same credentials in the same region, goes
//! out as one call of up to 100 `InstanceIds` (the limit the official schema
//! gives Start/Stop/Reboot/Terminate/ModifyInstancesAttribute). Deleting
//! 1,000 CvmInstances then costs about ten TerminateInstances, not 1,000.
//!
//! The API refuses a whole call when one of its instances is in the wrong
//! state, protected or gone, so a failure is never simply handed to every
//! resource of the batch: [`split`] decides how to retry so that each
//! instance ends with its own answer — the ids the error names alone and the
//! rest together, or the batch in halves. Only failures that are about the
//! call rather than any instance (throttling, network, credentials) are
//! shared as they are.

use crate::cloud::{CloudError, ErrorClass};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::future::Future;

/// The answer for one instance: the RequestId of the call that carried it.
pub type Answer = Result<String, CloudError>;

/// How a failed multi-id call continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// The error is every instance's (one id, or a failure of the call itself).
    Whole,
    /// The error names these ids: each goes alone, the rest together.
    Isolate {
        named: Vec<String>,
        rest: Vec<String>,
    },
    /// No id named: the halves go separately.
    Halves,
}

/// What to do after `error` failed a call for `ids`.
pub fn split(ids: &[String], error: &CloudError) -> Split {
    if ids.len() < 2 {
        return Split::Whole;
    }
    match error.class() {
        // About the call, not about any instance: the same for every id.
        ErrorClass::Throttled
        | ErrorClass::Transient
        | ErrorClass::Unreachable
        | ErrorClass::Auth
        | ErrorClass::ClockSkew => Split::Whole,
        ErrorClass::Busy | ErrorClass::NotFound | ErrorClass::Permanent => {
            let named = named_ids(ids, error);
            if named.is_empty() || named.len() == ids.len() {
                return Split::Halves;
            }
            let rest = ids.iter().filter(|id| !named.contains(id)).cloned();
            Split::Isolate {
                rest: rest.collect(),
                named,
            }
        }
    }
}

/// The ids of `ids` that the error's message names.
fn named_ids(ids: &[String], error: &CloudError) -> Vec<String> {
    let message = error.message();
    ids.iter()
        .filter(|id| message.contains(id.as_str()))
        .cloned()
        .collect()
}

/// Codes that refuse a mix of instances: always resolved by splitting.
const MIX_CODES: &[&str] = &["UnsupportedOperation.InstanceMixedPricingModel"];

/// Both halves of a batch failed alike (same permanent code, no id named):
/// the cause is what the instances share — the parameters, say a security
/// group that does not exist — not one instance, so splitting further would
/// only multiply the calls.
fn shared_cause(a: &CloudError, b: &CloudError, ids: &[String]) -> bool {
    a.class() == ErrorClass::Permanent
        && !MIX_CODES.contains(&a.code())
        && a.code() == b.code()
        && named_ids(ids, a).is_empty()
        && named_ids(ids, b).is_empty()
}

/// Sends `ids` with `send` and, when that fails, retries as [`split`] says
/// until every id has its own answer. Returns the answers in the order of
/// `ids` (which must be distinct).
pub async fn send_each<S, F>(ids: Vec<String>, send: S) -> Vec<Answer>
where
    S: Fn(Vec<String>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let order = ids.clone();
    let mut answers: HashMap<String, Answer> = attempt(ids, send).await.into_iter().collect();
    order
        .iter()
        .map(|id| answers.remove(id).expect("every id answered"))
        .collect()
}

fn attempt<S, F>(ids: Vec<String>, send: S) -> BoxFuture<'static, Vec<(String, Answer)>>
where
    S: Fn(Vec<String>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    Box::pin(async move {
        match send(ids.clone()).await {
            Ok(request_id) => every(ids, Ok(request_id)),
            Err(error) => resolve(ids, error, send).await,
        }
    })
}

/// Retries a failed part as [`split`] says.
fn resolve<S, F>(
    ids: Vec<String>,
    error: CloudError,
    send: S,
) -> BoxFuture<'static, Vec<(String, Answer)>>
where
    S: Fn(Vec<String>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    Box::pin(async move {
        match split(&ids, &error) {
            Split::Whole => every(ids, Err(error)),
            Split::Isolate { named, rest } => {
                let parts = named.into_iter().map(|id| vec![id]).chain([rest]);
                let sent = parts.map(|part| attempt(part, send.clone()));
                futures::future::join_all(sent).await.concat()
            }
            Split::Halves => {
                let mut a = ids;
                let b = a.split_off(a.len() / 2);
                let (ra, rb) = tokio::join!(send(a.clone()), send(b.clone()));
                match (ra, rb) {
                    (Err(ea), Err(eb))
                        if shared_cause(&ea, &eb, &[a.clone(), b.clone()].concat()) =>
                    {
                        let mut out = every(a, Err(ea));
                        out.extend(every(b, Err(eb)));
                        out
                    }
                    (ra, rb) => {
                        let (oa, ob) =
                            tokio::join!(settle(a, ra, send.clone()), settle(b, rb, send.clone()));
                        [oa, ob].concat()
                    }
                }
            }
        }
    })
}

/// A half's answer: done when it succeeded, else resolved further.
async fn settle<S, F>(ids: Vec<String>, answer: Answer, send: S) -> Vec<(String, Answer)>
where
    S: Fn(Vec<String>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    match answer {
        Ok(request_id) => every(ids, Ok(request_id)),
        Err(error) => resolve(ids, error, send).await,
    }
}

fn every(ids: Vec<String>, answer: Answer) -> Vec<(String, Answer)> {
    ids.into_iter().map(|id| (id, answer.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn api_error(code: &str, message: &str) -> CloudError {
        CloudError::Api {
            action: "StopInstances".into(),
            code: code.into(),
            message: message.into(),
            request_id: "req-err".into(),
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("ins-{i:08}")).collect()
    }

    /// A fake API: refuses a call containing any id in `bad` (naming it in
    /// the message when `names` is set), else answers a request id; records
    /// every call's ids.
    #[derive(Clone)]
    struct Fake {
        bad: Vec<String>,
        code: &'static str,
        names: bool,
        calls: Arc<Mutex<Vec<Vec<String>>>>,
    }

    impl Fake {
        fn new(bad: &[String], code: &'static str, names: bool) -> Self {
            Fake {
                bad: bad.to_vec(),
                code,
                names,
                calls: Default::default(),
            }
        }

        fn send(
            &self,
        ) -> impl Fn(Vec<String>) -> futures::future::Ready<Answer> + Clone + Send + Sync + 'static
        {
            let fake = self.clone();
            move |part: Vec<String>| {
                fake.calls.lock().unwrap().push(part.clone());
                let hit = part.iter().find(|id| fake.bad.contains(id));
                futures::future::ready(match hit {
                    Some(id) if fake.names => Err(api_error(
                        fake.code,
                        &format!("The instance `{id}` is in state STOPPING."),
                    )),
                    Some(_) => Err(api_error(fake.code, "refused")),
                    None => Ok(format!("req-{}", part.len())),
                })
            }
        }

        fn calls(&self) -> usize {
            self.calls.lock().unwrap().len()
        }
    }

    #[test]
    fn the_split_follows_the_error() {
        let batch = ids(4);
        let cases = [
            (api_error("RequestLimitExceeded", "slow down"), Split::Whole),
            (
                api_error("AuthFailure.SignatureFailure", "bad"),
                Split::Whole,
            ),
            (api_error("InternalError", "oops"), Split::Whole),
            (
                api_error(
                    "UnsupportedOperation.InstanceStateStopping",
                    "The instance `ins-00000002` is stopping.",
                ),
                Split::Isolate {
                    named: vec!["ins-00000002".into()],
                    rest: vec![
                        "ins-00000000".into(),
                        "ins-00000001".into(),
                        "ins-00000003".into(),
                    ],
                },
            ),
            (
                api_error("UnsupportedOperation.InstanceMixedPricingModel", "mixed"),
                Split::Halves,
            ),
            (
                api_error("InvalidInstanceId.NotFound", "not found"),
                Split::Halves,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(split(&batch, &error), want, "{error}");
        }
        // One id: its own error, whatever it is.
        let one = api_error("InvalidInstanceId.NotFound", "gone");
        assert_eq!(split(&batch[..1], &one), Split::Whole);
    }

    #[tokio::test]
    async fn a_batch_that_succeeds_is_one_call() {
        let fake = Fake::new(&[], "", true);
        let answers = send_each(ids(100), fake.send()).await;
        assert_eq!(fake.calls(), 1);
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().is_ok_and(|r| r == "req-100"))
        );
    }

    #[tokio::test]
    async fn a_named_bad_instance_fails_alone_and_the_rest_go_through() {
        let batch = ids(100);
        let bad = vec![batch[37].clone()];
        let fake = Fake::new(&bad, "UnsupportedOperation.InstanceStateStopping", true);
        let answers = send_each(batch.clone(), fake.send()).await;
        // The batch, the named id alone, the 99 others together.
        assert_eq!(fake.calls(), 3);
        for (id, a) in batch.iter().zip(&answers) {
            match a {
                Err(e) => {
                    assert_eq!(id, &batch[37]);
                    assert!(e.message().contains(id.as_str()), "its own error");
                }
                Ok(r) => assert_eq!(r, "req-99"),
            }
        }
        assert_eq!(answers.iter().filter(|a| a.is_err()).count(), 1);
    }

    #[tokio::test]
    async fn an_unnamed_bad_instance_is_found_by_halving() {
        let batch = ids(100);
        let bad = vec![batch[3].clone(), batch[88].clone()];
        let fake = Fake::new(&bad, "InvalidInstanceId.NotFound", false);
        let answers = send_each(batch.clone(), fake.send()).await;
        let failed: Vec<&String> = batch
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_err())
            .map(|(id, _)| id)
            .collect();
        assert_eq!(failed, [&batch[3], &batch[88]], "exactly the bad ones fail");
        // Two searches of about 2·log2(50) calls each, far below 100.
        assert!(fake.calls() <= 30, "{} calls", fake.calls());
    }

    #[tokio::test]
    async fn a_failure_of_the_call_itself_is_everyones_without_retries() {
        let fake = Fake::new(&ids(100), "RequestLimitExceeded", false);
        let answers = send_each(ids(100), fake.send()).await;
        assert_eq!(fake.calls(), 1);
        assert!(answers.iter().all(|a| {
            a.as_ref()
                .is_err_and(|e| e.code() == "RequestLimitExceeded")
        }));
    }

    #[tokio::test]
    async fn a_mix_of_charge_types_is_split_until_each_call_is_pure() {
        // TerminateInstances refuses prepaid and postpaid instances together;
        // two prepaid ones land in different halves.
        let batch = ids(8);
        let prepaid = [batch[1].clone(), batch[6].clone()];
        let calls = Arc::new(Mutex::new(0));
        let counter = calls.clone();
        let send = move |part: Vec<String>| {
            *counter.lock().unwrap() += 1;
            let kinds = part.iter().filter(|id| prepaid.contains(id)).count();
            futures::future::ready(if kinds == 0 || kinds == part.len() {
                Ok("req".to_string())
            } else {
                Err(api_error(
                    "UnsupportedOperation.InstanceMixedPricingModel",
                    "mixed",
                ))
            })
        };
        let answers = send_each(batch, send).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert!(*calls.lock().unwrap() <= 11);
    }

    #[tokio::test]
    async fn a_permanent_error_shared_by_both_halves_stops_splitting() {
        // Every instance refused alike (say, a security group that does not
        // exist): the batch and its two halves, not 199 calls.
        let fake = Fake::new(&ids(100), "InvalidSecurityGroupId.NotFound", false);
        let answers = send_each(ids(100), fake.send()).await;
        assert_eq!(fake.calls(), 3);
        assert!(answers.iter().all(|a| a.is_err()));
    }
}
