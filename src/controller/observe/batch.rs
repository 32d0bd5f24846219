//! The coalescing batcher behind both of the observer's lookups (by id and
//! by UID tag) and the actor's batched mutations: queries for one key that
//! arrive within a short window share one call.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Coalesces lookups: queries for one key that arrive within a short window
/// share one call. The first query of a batch starts the window; the query
/// that fills a batch sends it at once. Both of the observer's lookups (by id
/// and by UID tag) are this one machine with a different flush.
pub struct Batcher<K, Q, R, E> {
    max: usize,
    queues: Queues<K, Q, R, E>,
}

type Queues<K, Q, R, E> = Arc<Mutex<HashMap<K, Queue<Q, R, E>>>>;

struct Queue<Q, R, E> {
    waiting: Vec<(Q, oneshot::Sender<Result<R, E>>)>,
    /// The first waiter's window is running.
    scheduled: bool,
    /// Which batch is waiting (a window that wakes after its batch went,
    /// full, leaves the next one alone).
    generation: u64,
    /// When the last query joined.
    last: Option<Instant>,
}

impl<Q, R, E> Default for Queue<Q, R, E> {
    fn default() -> Self {
        Self {
            waiting: Vec::new(),
            scheduled: false,
            generation: 0,
            last: None,
        }
    }
}

/// How long a batch stays open: at most `max` after its first query, and,
/// with `idle`, only as long as queries keep coming at least that often
/// (the batch goes as soon as they stop: in a mass operation bounded by the
/// controller's concurrency, no more will come until it is answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max: Duration,
    pub idle: Option<Duration>,
}

impl From<Duration> for Window {
    fn from(max: Duration) -> Self {
        Window { max, idle: None }
    }
}

/// What a new query does to its batch.
enum Joined<T> {
    /// It filled the batch: send these now.
    Full(Vec<T>),
    /// It is the first: start the window of this batch.
    First(u64),
    /// A window is already running.
    Waiting,
}

impl<K, Q, R, E> Batcher<K, Q, R, E>
where
    K: Eq + Hash + Clone + Send + 'static,
    Q: Send + 'static,
    R: Send + 'static,
    E: Clone + Send + 'static,
{
    pub fn new(max: usize) -> Self {
        Self {
            max,
            queues: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Queue<Q, R, E>>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `query` in `key`'s batch and waits for its answer. `flush`
    /// answers a whole batch, in order (whichever query sends the batch
    /// supplies it). `None` when the batch was dropped unanswered.
    pub async fn submit<F, Fut>(
        &self,
        key: &K,
        query: Q,
        window: impl Into<Window>,
        flush: F,
    ) -> Option<Result<R, E>>
    where
        F: FnOnce(Vec<Q>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>, E>> + Send + 'static,
    {
        let window: Window = window.into();
        let (tx, rx) = oneshot::channel();
        let joined = {
            let mut queues = self.lock();
            let queue = queues.entry(key.clone()).or_default();
            queue.waiting.push((query, tx));
            queue.last = Some(Instant::now());
            if queue.waiting.len() >= self.max {
                queue.scheduled = false;
                queue.generation += 1;
                Joined::Full(std::mem::take(&mut queue.waiting))
            } else if !queue.scheduled {
                queue.scheduled = true;
                Joined::First(queue.generation)
            } else {
                Joined::Waiting
            }
        };
        match joined {
            Joined::Full(batch) => {
                tokio::spawn(answer(batch, flush));
            }
            Joined::First(generation) => {
                let (queues, key) = (self.queues.clone(), key.clone());
                tokio::spawn(async move {
                    if let Some(batch) = close(queues, key, generation, window).await {
                        answer(batch, flush).await;
                    }
                });
            }
            Joined::Waiting => {}
        }
        rx.await.ok()
    }
}

type Waiters<Q, R, E> = Vec<(Q, oneshot::Sender<Result<R, E>>)>;

/// Waits out batch `generation`'s window and takes its queries; `None` when
/// it went meanwhile (full).
async fn close<K: Eq + Hash + Clone, Q, R, E>(
    queues: Queues<K, Q, R, E>,
    key: K,
    generation: u64,
    window: Window,
) -> Option<Waiters<Q, R, E>> {
    let start = Instant::now();
    let mut nap = window.idle.map_or(window.max, |i| i.min(window.max));
    loop {
        tokio::time::sleep(nap).await;
        let taken = {
            let mut queues = queues.lock().unwrap_or_else(|e| e.into_inner());
            let queue = queues.get_mut(&key)?;
            if queue.generation != generation {
                return None;
            }
            let since_last = queue.last.map_or(Duration::MAX, |t| t.elapsed());
            let left = window.max.saturating_sub(start.elapsed());
            match window.idle {
                // Still coming: look again when this last one has been
                // alone for the idle time.
                Some(idle) if since_last < idle && !left.is_zero() => {
                    nap = (idle - since_last).min(left);
                    None
                }
                _ => {
                    queue.scheduled = false;
                    queue.generation += 1;
                    Some(std::mem::take(&mut queue.waiting))
                }
            }
        };
        if taken.is_some() {
            return taken;
        }
    }
}

/// Sends one batch and hands each waiter its answer (or the shared error).
async fn answer<Q, R, E: Clone, F, Fut>(batch: Vec<(Q, oneshot::Sender<Result<R, E>>)>, flush: F)
where
    F: FnOnce(Vec<Q>) -> Fut,
    Fut: Future<Output = Result<Vec<R>, E>>,
{
    let (queries, waiters): (Vec<Q>, Vec<_>) = batch.into_iter().unzip();
    match flush(queries).await {
        Ok(answers) => {
            for (waiter, a) in waiters.into_iter().zip(answers) {
                let _ = waiter.send(Ok(a));
            }
        }
        Err(e) => {
            for waiter in waiters {
                let _ = waiter.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::{Ready, join_all, ready};
    use tokio::time::{Instant as Clock, sleep};

    const WINDOW: Duration = Duration::from_millis(25);

    type Calls = Arc<Mutex<Vec<Vec<u32>>>>;
    type Answer = Option<Result<u32, String>>;

    /// A flush that records each batch it sends and answers every query
    /// with its double.
    fn doubling(
        calls: &Calls,
    ) -> impl FnOnce(Vec<u32>) -> Ready<Result<Vec<u32>, String>> + Send + use<> {
        let calls = calls.clone();
        move |batch: Vec<u32>| {
            calls.lock().unwrap().push(batch.clone());
            ready(Ok(batch.iter().map(|q| q * 2).collect()))
        }
    }

    /// Submits `query` after `delay`; returns the answer and when it came.
    async fn ask(
        batcher: &Batcher<&'static str, u32, u32, String>,
        calls: &Calls,
        key: &'static str,
        query: u32,
        delay: Duration,
    ) -> (Answer, Duration) {
        let start = Clock::now();
        sleep(delay).await;
        let answer = batcher.submit(&key, query, WINDOW, doubling(calls)).await;
        (answer, start.elapsed())
    }

    fn batches(calls: &Calls) -> Vec<Vec<u32>> {
        let mut b = calls.lock().unwrap().clone();
        b.sort();
        b
    }

    #[tokio::test(start_paused = true)]
    async fn queries_within_the_window_share_one_call() {
        let (batcher, calls) = (Batcher::new(100), Calls::default());
        let ms = Duration::from_millis;
        let answers = join_all([
            ask(&batcher, &calls, "fleet", 1, ms(0)),
            ask(&batcher, &calls, "fleet", 2, ms(10)),
            ask(&batcher, &calls, "fleet", 3, ms(20)),
        ])
        .await;
        assert_eq!(batches(&calls), [vec![1, 2, 3]]);
        for (q, (answer, at)) in (1..).zip(answers) {
            assert_eq!(answer, Some(Ok(q * 2)), "each waiter gets its own answer");
            assert_eq!(at, WINDOW, "answered when the first query's window closed");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_at_once() {
        let (batcher, calls) = (Batcher::new(3), Calls::default());
        let now = Duration::ZERO;
        let answers = join_all((1..=4).map(|q| ask(&batcher, &calls, "fleet", q, now))).await;
        assert_eq!(batches(&calls), [vec![1, 2, 3], vec![4]]);
        let times: Vec<Duration> = answers.iter().map(|(_, at)| *at).collect();
        assert_eq!(
            times,
            [now, now, now, WINDOW],
            "the fourth starts a new batch"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn later_queries_and_other_keys_do_not_share() {
        let (batcher, calls) = (Batcher::new(100), Calls::default());
        let later = WINDOW + Duration::from_millis(5);
        join_all([
            ask(&batcher, &calls, "a", 1, Duration::ZERO),
            ask(&batcher, &calls, "b", 2, Duration::ZERO),
            ask(&batcher, &calls, "a", 3, later),
        ])
        .await;
        assert_eq!(batches(&calls), [vec![1], vec![2], vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_query_sets_the_window() {
        let (batcher, calls) = (Batcher::new(100), Calls::default());
        let long = Duration::from_millis(500);
        let first = batcher.submit(&"fleet", 1, long, doubling(&calls));
        let second = async {
            sleep(Duration::from_millis(100)).await;
            batcher.submit(&"fleet", 2, WINDOW, doubling(&calls)).await
        };
        let start = Clock::now();
        let (a, b) = tokio::join!(first, second);
        assert_eq!((a, b), (Some(Ok(2)), Some(Ok(4))));
        assert_eq!(start.elapsed(), long);
        assert_eq!(batches(&calls), [vec![1, 2]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_call_fails_every_waiter_and_a_short_answer_none() {
        let batcher: Batcher<&str, u32, u32, String> = Batcher::new(100);
        let fail = |_: Vec<u32>| ready(Err::<Vec<u32>, _>("throttled".to_string()));
        let (a, b) = tokio::join!(
            batcher.submit(&"fleet", 1, WINDOW, fail),
            batcher.submit(&"fleet", 2, WINDOW, fail),
        );
        assert_eq!(
            (a, b),
            (Some(Err("throttled".into())), Some(Err("throttled".into())))
        );
        // An answer missing for a query leaves it unanswered, never wrong.
        let short = |_: Vec<u32>| ready(Ok::<_, String>(vec![10]));
        let (a, b) = tokio::join!(
            batcher.submit(&"fleet", 1, WINDOW, short),
            batcher.submit(&"fleet", 2, WINDOW, short),
        );
        assert_eq!((a, b), (Some(Ok(10)), None));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_window_stays_open_while_queries_keep_coming() {
        let (batcher, calls) = (Batcher::new(100), Calls::default());
        let window = Window {
            max: Duration::from_secs(3),
            idle: Some(Duration::from_millis(300)),
        };
        let ms = Duration::from_millis;
        // Every 200 ms for a second: one batch, sent 300 ms after the last.
        let asks = (0..6).map(|q| {
            let (batcher, calls) = (&batcher, &calls);
            async move {
                let start = Clock::now();
                sleep(ms(200 * q as u64)).await;
                batcher.submit(&"k", q, window, doubling(calls)).await;
                start.elapsed()
            }
        });
        let times = join_all(asks).await;
        assert_eq!(batches(&calls), [vec![0, 1, 2, 3, 4, 5]]);
        assert!(times.iter().all(|t| *t == ms(1300)), "{times:?}");
        // Never longer than max, however steady the stream.
        let calls = Calls::default();
        let asks = (0..40).map(|q| {
            let (batcher, calls) = (&batcher, &calls);
            async move {
                sleep(ms(100 * q as u64)).await;
                batcher.submit(&"k", q, window, doubling(calls)).await
            }
        });
        join_all(asks).await;
        let sizes: Vec<usize> = batches(&calls).iter().map(Vec::len).collect();
        assert!(
            sizes.len() >= 2 && sizes.iter().all(|n| *n <= 31),
            "{sizes:?}"
        );
    }
}
