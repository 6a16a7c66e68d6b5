//! Oldest first: the order in which the invocations of one process that are still
//! starting get the CPU, when the process serves many at once (Lambda Managed Instances).
//!
//! An invocation's start (its event checked, the request signed, the SDK's call, the
//! answer's first bytes turned into a response) costs the one thread a few hundred
//! microseconds, spread over several polls between network waits. Tokio runs the tasks that
//! are ready in the order they became ready, so when a burst of invocations arrives at
//! once, every step of every start queues behind every other: a start takes one pass over
//! the whole queue per network round trip, and the streams already answering wait behind
//! the queue as well. `make bench` at e9cba97 measured it at 1,024 invocations arriving in
//! the same millisecond: the first event of each stream waited 146 ms (p50) and 309 ms (p99),
//! and the event p99 over all streams was 139 ms (2.3 ms with this order, docs/FINDINGS.md §6).
//!
//! [`StartOrder::run`] lets only the oldest start that is ready take its next step; the
//! others step aside (a poll of a microsecond) until it waits on the network again. The
//! starts then finish in the order they arrived, one after the other, each taking its steps
//! without a queue in front of it, and the streams that are answering go first. No start
//! holds its turn while it waits for the network, so a slow agent (AgentCore answers a new
//! session after its microVM starts, seconds later) never holds up the next start; the
//! order is all that changes, not how much CPU the starts take.
//!
//! The order is kept without a lock held across a poll: the waker each start gives its
//! inner future records that the start is ready again, which is how the order knows, at
//! every moment, which waiting start is the oldest.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// The starts of one process, in the order they arrived (see the module documentation).
#[derive(Default)]
pub struct StartOrder {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Sequence number of the next start to arrive.
    next: u64,
    /// The starts that are ready to take a step, by arrival; the oldest goes first.
    ready: BTreeMap<u64, Arc<Start>>,
}

/// One start: its place in the order and the task that runs it.
struct Start {
    order: Arc<StartOrder>,
    seq: u64,
    task: AtomicWaker,
    /// The start is over (its response is out, or it was dropped). Read and written under
    /// the order's lock: a wake that comes later (a connection pool keeps wakers) must not
    /// make it the oldest ready start forever, which every later start would wait for.
    over: AtomicBool,
}

impl Wake for Start {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The inner future can go on: the start is ready again, in its place.
        {
            let mut state = self.order.lock();
            if self.over.load(Ordering::Relaxed) {
                return;
            }
            state.ready.insert(self.seq, Arc::clone(self));
        }
        self.task.wake();
    }
}

impl StartOrder {
    /// A new, empty order, shared by the process's invocations.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Runs `start`, the part of an invocation up to its response, in its place among the
    /// process's starts. What comes after it (the body of a streamed answer) is not
    /// ordered.
    pub fn run<F: Future>(self: &Arc<Self>, start: F) -> Ordered<F> {
        let mut state = self.lock();
        state.next += 1;
        let start_state = Arc::new(Start {
            order: Arc::clone(self),
            seq: state.next,
            task: AtomicWaker::new(),
            over: AtomicBool::new(false),
        });
        // A new start is ready: its first step waits for the CPU only.
        state
            .ready
            .insert(start_state.seq, Arc::clone(&start_state));
        drop(state);
        Ordered {
            waker: Waker::from(Arc::clone(&start_state)),
            start_state,
            inner: Box::pin(start),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic cannot leave the map half-changed (each change is one call), so a
        // poisoned lock holds consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the oldest ready start: after a step, it is its turn.
    fn wake_oldest(&self) {
        let oldest = self
            .lock()
            .ready
            .first_key_value()
            .map(|(_, s)| Arc::clone(s));
        if let Some(start) = oldest {
            start.task.wake();
        }
    }
}

/// A start run by [`StartOrder::run`].
pub struct Ordered<F> {
    start_state: Arc<Start>,
    /// Wakes the task through `start_state`, which records the start as ready first.
    waker: Waker,
    /// Boxed: the runtime's pollers hold this future, and an idle one should not carry the
    /// space of a whole AgentCore call.
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Ordered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let start = &this.start_state;
        start.task.register(cx.waker());
        let order = &start.order;
        {
            let mut state = order.lock();
            match state.ready.first_key_value() {
                // An older start is ready: it goes first, and wakes this one after its step
                // (`wake_oldest`) if this one is the oldest then.
                Some((&oldest, _)) if oldest < start.seq => return Poll::Pending,
                _ => {
                    state.ready.remove(&start.seq);
                }
            }
        }
        // Whatever the step does (also when it panics), the next oldest is woken after it.
        let _next = WakeOldestOnDrop(order);
        let step = this
            .inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker));
        if step.is_ready() {
            start.finish();
        }
        step
    }
}

impl Start {
    /// Takes the start out of the order for good; `true` when it was waiting for its turn.
    fn finish(&self) -> bool {
        let mut state = self.order.lock();
        self.over.store(true, Ordering::Relaxed);
        state.ready.remove(&self.seq).is_some()
    }
}

impl<F> Drop for Ordered<F> {
    fn drop(&mut self) {
        // Dropped while it waited for its turn, it may have been the oldest ready start,
        // which the others wait for.
        if self.start_state.finish() {
            self.start_state.order.wake_oldest();
        }
    }
}

struct WakeOldestOnDrop<'a>(&'a StartOrder);

impl Drop for WakeOldestOnDrop<'_> {
    fn drop(&mut self) {
        self.0.wake_oldest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// Ends the step: the future is ready again at once (its waker is called before the
    /// poll returns), as a start is when its next step only waits for the CPU.
    async fn ready_again() {
        let mut woke = false;
        std::future::poll_fn(move |cx| {
            if std::mem::replace(&mut woke, true) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }

    /// A start of `steps` steps, each logged and followed by [`ready_again`].
    async fn start(id: usize, steps: usize, log: Arc<StdMutex<Vec<usize>>>) {
        for _ in 0..steps {
            log.lock().expect("log").push(id);
            ready_again().await;
        }
    }

    fn spawn_starts(order: Option<&Arc<StartOrder>>, n: usize) -> Vec<usize> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let log = Arc::new(StdMutex::new(Vec::new()));
        rt.block_on(async {
            let tasks: Vec<_> = (0..n)
                .map(|id| {
                    let s = start(id, 3, Arc::clone(&log));
                    match order {
                        Some(o) => tokio::spawn(o.run(s)),
                        None => tokio::spawn(s),
                    }
                })
                .collect();
            let all = futures_util::future::join_all(tasks);
            for t in tokio::time::timeout(std::time::Duration::from_secs(20), all)
                .await
                .expect("a start waited for a turn that never came")
            {
                t.expect("a start");
            }
        });
        Arc::try_unwrap(log)
            .ok()
            .and_then(|l| l.into_inner().ok())
            .expect("the log, its tasks over")
    }

    #[test]
    fn ready_starts_take_their_steps_oldest_first() {
        // Without the order, tokio runs the ready tasks round robin: every start's first
        // step, then every second step...
        assert_eq!(spawn_starts(None, 3), [0, 1, 2, 0, 1, 2, 0, 1, 2]);
        // With it, each start takes all its steps before the next one begins.
        let order = StartOrder::new();
        assert_eq!(spawn_starts(Some(&order), 3), [0, 0, 0, 1, 1, 1, 2, 2, 2]);
        assert!(order.lock().ready.is_empty());
    }

    #[test]
    fn many_starts_with_waits_all_end_on_a_multi_threaded_runtime_too() {
        // Steps and waits interleaved across threads: every start ends (no start waits for a
        // turn that never comes), and the order is empty afterwards.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("a runtime");
        let order = StartOrder::new();
        rt.block_on(async {
            let starts: Vec<_> = (0..200u64)
                .map(|i| {
                    tokio::spawn(order.run(async move {
                        for step in 0..4u64 {
                            ready_again().await;
                            if (i + step) % 3 == 0 {
                                tokio::time::sleep(std::time::Duration::from_micros(200)).await;
                            }
                        }
                        i
                    }))
                })
                .collect();
            let all = futures_util::future::join_all(starts);
            let ended = tokio::time::timeout(std::time::Duration::from_secs(20), all)
                .await
                .expect("a start waited for a turn that never came");
            assert_eq!(ended.into_iter().filter(Result::is_ok).count(), 200);
        });
        assert!(order.lock().ready.is_empty());
    }

    #[tokio::test]
    async fn a_start_waiting_on_the_network_does_not_hold_up_younger_ones() {
        let order = StartOrder::new();
        let (answer, answered) = tokio::sync::oneshot::channel::<()>();
        let (second_done, second_done_rx) = tokio::sync::oneshot::channel::<()>();
        // The oldest start waits for an answer that only comes once the younger one is over.
        let oldest = tokio::spawn(order.run(async move {
            answered.await.expect("the answer");
        }));
        tokio::task::yield_now().await;
        let younger = tokio::spawn(order.run(async move {
            ready_again().await;
            second_done.send(()).expect("a receiver");
        }));
        second_done_rx.await.expect("the younger start");
        answer.send(()).expect("the oldest start");
        younger.await.expect("the younger start");
        oldest.await.expect("the oldest start");
    }

    #[tokio::test]
    async fn a_dropped_oldest_start_lets_the_others_go_on() {
        let order = StartOrder::new();
        // Always ready: while it runs, nothing younger takes a step.
        let busy = tokio::spawn(order.run(async {
            loop {
                ready_again().await;
            }
        }));
        tokio::task::yield_now().await;
        let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
        let younger = tokio::spawn(order.run(async move {
            done.send(()).expect("a receiver");
        }));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !younger.is_finished(),
            "the younger start went before the oldest ready one"
        );
        busy.abort();
        tokio::time::timeout(std::time::Duration::from_secs(5), done_rx)
            .await
            .expect("the younger start waited for a start that is gone")
            .expect("the younger start");
        younger.await.expect("the younger start");
    }

    #[tokio::test]
    async fn a_wake_after_the_end_of_a_start_does_not_take_a_place() {
        let order = StartOrder::new();
        let kept: Arc<StdMutex<Option<Waker>>> = Arc::default();
        let keep = Arc::clone(&kept);
        // A start whose waker outlives it (as a connection pool keeps the wakers it saw).
        order
            .run(std::future::poll_fn(move |cx| {
                *keep.lock().expect("kept") = Some(cx.waker().clone());
                Poll::Ready(())
            }))
            .await;
        // That start has the smallest number; woken now, it must not become the oldest
        // ready start, which the next one would wait for forever.
        let late = kept.lock().expect("kept").take().expect("a waker");
        late.wake();
        tokio::time::timeout(std::time::Duration::from_secs(5), order.run(ready_again()))
            .await
            .expect("a later start waited for one that is over");
        assert!(order.lock().ready.is_empty());
    }
}
