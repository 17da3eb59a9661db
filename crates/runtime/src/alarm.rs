//! `Alarm`: waits on deadlines without piling up timers. madsim's sleep adds a timer to the
//! runtime each time it is polled, and a timer is never removed before it fires (it then wakes
//! its task for nothing). A loop that waits on a deadline across many events, or a client that
//! races every call against a timeout, would leave a timer behind at each poll. An `Alarm`
//! arms a timer only when none is already armed for an instant between now and the deadline;
//! the armed one wakes the task, which then arms the next.
//!
//! A timer wakes the task that armed it, so an alarm reuses its armed timer only for the task
//! that armed it: an alarm moved into another task (a client handed from one task to the
//! next) arms again for the new one. Outside simulation the armed sleep is kept alive
//! (dropping a tokio sleep disarms it).

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use madsim::time::Instant;

use crate::clock::RuntimeTime;

type BoxedSleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// See the module documentation.
#[derive(Default)]
pub struct Alarm {
    /// The armed sleep, its deadline, and the waker (task) its timer wakes.
    armed: Option<(Instant, BoxedSleep, Waker)>,
    /// Timers armed so far (each is one timer in the runtime).
    armed_count: u64,
    time: RuntimeTime,
}

impl std::fmt::Debug for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alarm")
            .field("armed_at", &self.armed.as_ref().map(|(at, ..)| *at))
            .field("armed_count", &self.armed_count)
            .finish()
    }
}

impl Alarm {
    /// Ready once `deadline` has passed.
    pub fn poll_until(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        let now = self.time.now();
        if now >= deadline {
            return Poll::Ready(());
        }
        if let Some((armed_at, _, waker)) = &self.armed
            && *armed_at > now
            && *armed_at <= deadline
            && waker.will_wake(cx.waker())
        {
            return Poll::Pending;
        }
        let mut sleep: BoxedSleep = Box::pin(madsim::time::sleep_until(deadline));
        self.armed_count += 1;
        let poll = sleep.as_mut().poll(cx);
        self.armed = Some((deadline, sleep, cx.waker().clone()));
        poll
    }

    /// `future`'s output, or `None` if `deadline` passes first (`future` is polled first).
    pub async fn race<F: Future>(&mut self, deadline: Instant, future: F) -> Option<F::Output> {
        let mut future = pin!(future);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            self.poll_until(cx, deadline).map(|()| None)
        })
        .await
    }

    /// How many timers this alarm armed.
    pub fn armed_count(&self) -> u64 {
        self.armed_count
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use std::future::pending;
    use std::time::Duration;

    use madsim::time::{Instant, sleep};

    use super::Alarm;

    #[madsim::test]
    async fn a_deadline_waited_on_across_many_wakeups_arms_one_timer() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(1);
        let mut alarm = Alarm::default();
        // A hundred events, a millisecond apart, each raced against the same deadline.
        for _ in 0..100 {
            assert_eq!(alarm.race(deadline, sleep(Duration::from_millis(1))).await, Some(()));
        }
        assert_eq!(alarm.armed_count(), 1, "one timer for one deadline");
        // Nothing more comes in time: the race ends at the deadline, not before.
        assert_eq!(alarm.race(deadline, sleep(Duration::from_secs(10))).await, None);
        assert!(Instant::now() >= deadline);
        assert!(Instant::now() < deadline + Duration::from_millis(1));
    }

    #[madsim::test]
    async fn an_earlier_deadline_arms_its_own_timer_and_a_later_one_waits_for_the_armed() {
        let start = Instant::now();
        let mut alarm = Alarm::default();
        // Armed for 1 s out; a 10 ms deadline cannot wait for it.
        let far = start + Duration::from_secs(1);
        let near = start + Duration::from_millis(10);
        assert!(poll_once(&mut alarm, far));
        assert_eq!(alarm.race(near, pending::<()>()).await, None);
        assert!(Instant::now() >= near && Instant::now() < far);
        assert_eq!(alarm.armed_count(), 2);
        // The armed deadline has passed: a later one arms again and fires at its own time.
        let later = start + Duration::from_millis(30);
        assert_eq!(alarm.race(later, pending::<()>()).await, None);
        assert!(Instant::now() >= later && Instant::now() < far);
        assert_eq!(alarm.armed_count(), 3);
    }

    #[madsim::test]
    async fn an_alarm_moved_to_another_task_wakes_that_task() {
        let deadline = Instant::now() + Duration::from_millis(50);
        let mut alarm = Alarm::default();
        // Armed by this task, for a deadline that the next task waits on too.
        assert_eq!(alarm.race(deadline, sleep(Duration::from_millis(1))).await, Some(()));
        let waiter = madsim::task::spawn(async move {
            let fired = alarm.race(deadline, pending::<()>()).await.is_none();
            (fired, Instant::now())
        });
        // Only the new task's own timer can wake it; the first task's wakes the first task.
        let (fired, at) = madsim::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the moved alarm never woke its new task")
            .expect("the task ran");
        assert!(fired && at >= deadline && at < deadline + Duration::from_millis(1));
    }

    /// Polls the alarm once for `deadline`; true if it was pending.
    fn poll_once(alarm: &mut Alarm, deadline: Instant) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        alarm.poll_until(&mut cx, deadline).is_pending()
    }
}
