//! Stopping a job, as one noun: the deadlines a running job lives under.
//!
//! - **cancel** and **timeout** take the same path: [`Deadlines::stop`]
//!   records why, the driver asks the tree to terminate (`SIGTERM` to the
//!   group), and the *kill* deadline is armed for the grace period later;
//!   when it fires ([`Fired::Kill`]) the driver kills the tree.
//! - **drain**: after the main process exited, a descendant may still hold
//!   the pipes open; [`Deadlines::exited`] arms a deadline after which the
//!   driver kills the tree and finishes with what it read.
//! - **idle flush**: an unfinished line (a prompt) is shown provisionally
//!   once the pipes have been quiet for a moment.
//! - **idle timeout** ([`Command::idle_timeout`](crate::Command::idle_timeout)):
//!   no output at all for that long stops the job like the timeout, with its
//!   own reason ([`StopReason::Idle`]). Every read pushes it back
//!   ([`Deadlines::activity`]); it is disarmed once the job is being stopped
//!   or the main process exited (draining is the drain deadline's business).
//!
//! - **pause probe**: while the process runs, the tree's frozen state is
//!   read every [`StopPolicy::probe`] so a pause or resume made by another
//!   process (`execra pause ID`) is noticed: the job then shows `Paused`
//!   and its timeout stops counting as for [`Runtime::pause`](crate::Runtime::pause).
//!   Disarmed once the job is being stopped or the main process exited.
//!
//! Every deadline is `now + duration` computed with `checked_add`: a
//! duration too large to represent (`Duration::MAX`) means "never", not a
//! panic. One timer serves all deadlines; [`Deadlines::next`] sleeps until
//! the earliest armed one and says which fired.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Why a job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Somebody called `cancel` (or the runtime is shutting down).
    Cancel,
    /// The command's wall-clock timeout passed.
    Timeout,
    /// No output for the command's idle timeout.
    Idle {
        /// The idle timeout, in milliseconds.
        after_ms: u64,
    },
}

/// Which deadline fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fired {
    /// The wall-clock timeout: stop the job with [`StopReason::Timeout`].
    Timeout,
    /// No output for the idle timeout: stop the job with
    /// [`StopReason::Idle`].
    IdleTimeout,
    /// The grace period after a stop request ran out: kill the tree.
    Kill,
    /// The main process exited long enough ago and the pipes are still
    /// open: kill the tree and finish.
    Drain,
    /// The pipes have been quiet: show unfinished lines.
    IdleFlush,
    /// Time to look whether another process paused or resumed the tree
    /// (re-armed by itself).
    Probe,
}

/// The durations a job's deadlines are computed from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StopPolicy {
    /// Wall-clock limit from the start of the process.
    pub timeout: Option<Duration>,
    /// Between the polite request (TERM) and the kill.
    pub grace: Duration,
    /// How long pipes may stay open after the main process exited.
    pub drain: Duration,
    /// Quiet time after which an unfinished line is shown.
    pub idle_flush: Duration,
    /// Quiet time after which the job is stopped.
    pub idle_timeout: Option<Duration>,
    /// How often to look for a pause or resume made by another process
    /// (`None`: never).
    pub probe: Option<Duration>,
}

/// `at + d`, or `None` ("never") when that is not representable.
fn after(at: Instant, d: Duration) -> Option<Instant> {
    at.checked_add(d)
}

/// The armed deadlines of one running job.
pub(crate) struct Deadlines {
    policy: StopPolicy,
    timeout: Option<Instant>,
    kill: Option<Instant>,
    drain: Option<Instant>,
    idle_flush: Option<Instant>,
    idle_timeout: Option<Instant>,
    probe: Option<Instant>,
    stopping: Option<StopReason>,
    /// While paused: the timeout's remaining time (the timeout is disarmed).
    paused_left: Option<Duration>,
    /// While paused: the idle timeout was armed (it restarts on resume).
    paused_idle: bool,
    paused: bool,
    /// A backpressure subscriber holds the pipes: the child is blocked
    /// writing, not idle, and its pipes are not drained (see [`hold`]).
    ///
    /// [`hold`]: Deadlines::hold
    held: bool,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
}

impl Deadlines {
    /// Deadlines for a process started now: only the timeout is armed.
    pub fn start(policy: StopPolicy) -> Self {
        let now = Instant::now();
        Deadlines {
            policy,
            timeout: policy.timeout.and_then(|d| after(now, d)),
            kill: None,
            drain: None,
            idle_flush: None,
            idle_timeout: policy.idle_timeout.and_then(|d| after(now, d)),
            probe: policy.probe.and_then(|d| after(now, d)),
            stopping: None,
            paused_left: None,
            paused_idle: false,
            paused: false,
            held: false,
            timer: Box::pin(tokio::time::sleep_until(now)),
            timer_at: None,
        }
    }

    /// Why the job is being stopped, once it is.
    pub fn stopping(&self) -> Option<StopReason> {
        self.stopping
    }

    /// Begin stopping for `why`. Returns `true` the first time (the caller
    /// then asks the tree to terminate); later requests change nothing. Arms
    /// the kill deadline one grace period from now and disarms the timeout.
    pub fn stop(&mut self, why: StopReason) -> bool {
        if self.stopping.is_some() {
            return false;
        }
        self.stopping = Some(why);
        self.timeout = None;
        self.idle_timeout = None;
        self.probe = None;
        self.kill = after(Instant::now(), self.policy.grace);
        true
    }

    /// The job was paused (`true`) or resumed (`false`): paused time does
    /// not count toward the timeout, so pausing disarms it keeping what is
    /// left, and resuming re-arms it with that; the idle timeout is off
    /// while paused and starts afresh on resume.
    pub fn paused(&mut self, paused: bool) {
        if paused == self.paused {
            return;
        }
        self.paused = paused;
        let now = Instant::now();
        if paused {
            self.paused_left = self
                .timeout
                .take()
                .map(|t| t.saturating_duration_since(now));
            // A frozen tree prints nothing: no idle timeout while paused.
            self.paused_idle = self.idle_timeout.take().is_some();
        } else {
            if let Some(left) = self.paused_left.take() {
                if self.stopping.is_none() {
                    self.timeout = after(now, left);
                }
            }
            if std::mem::take(&mut self.paused_idle) && self.stopping.is_none() {
                self.idle_timeout = self.policy.idle_timeout.and_then(|d| after(now, d));
            }
        }
    }

    /// The main process exited; if the pipes are still open, arm the drain
    /// deadline.
    pub fn exited(&mut self, pipes_open: bool) {
        self.idle_timeout = None;
        self.probe = None;
        if pipes_open && self.drain.is_none() {
            self.drain = after(Instant::now(), self.policy.drain);
        }
    }

    /// Whether a backpressure subscriber holds the pipes now. While held,
    /// the inactivity timeout, the idle flush and (unless the job is being
    /// stopped) the drain deadline do not fire: each starts over instead,
    /// since a child blocked in `write` is neither idle nor done.
    pub fn hold(&mut self, held: bool) {
        self.held = held;
    }

    /// Backpressure let the pipes be read again: an armed drain deadline
    /// starts over (the tail in the pipe is not cut off), the idle flush
    /// restarts if a line is unfinished, and the job counts as active.
    pub fn released(&mut self, unfinished: bool) {
        if self.drain.is_some() {
            self.drain = after(Instant::now(), self.policy.drain);
        }
        self.unfinished_output(unfinished);
        self.activity();
    }

    /// A deadline fired while the pipes are held: re-arm it from now instead
    /// of firing, if it is one that holding postpones.
    fn postponed(&mut self, which: Fired) -> bool {
        if !self.held {
            return false;
        }
        let now = Instant::now();
        match which {
            Fired::IdleTimeout => {
                self.idle_timeout = self.policy.idle_timeout.and_then(|d| after(now, d));
            }
            Fired::IdleFlush => self.idle_flush = after(now, self.policy.idle_flush),
            Fired::Drain if self.stopping.is_none() => {
                self.drain = after(now, self.policy.drain);
            }
            _ => return false,
        }
        true
    }

    /// After a read: arm the idle flush if some line is unfinished, else
    /// disarm it.
    pub fn unfinished_output(&mut self, pending: bool) {
        self.idle_flush = if pending {
            after(Instant::now(), self.policy.idle_flush)
        } else {
            None
        };
    }

    /// The job wrote something: push the idle timeout back (while it is
    /// armed, i.e. not stopping and not exited).
    pub fn activity(&mut self) {
        if self.idle_timeout.is_some() {
            self.idle_timeout = self
                .policy
                .idle_timeout
                .and_then(|d| after(Instant::now(), d));
        }
    }

    /// The reason to stop with when the idle timeout fired.
    pub fn idle_reason(&self) -> StopReason {
        let ms = self.policy.idle_timeout.map_or(0, |d| d.as_millis());
        StopReason::Idle {
            after_ms: u64::try_from(ms).unwrap_or(u64::MAX),
        }
    }

    /// The earliest armed deadline and which one it is. On a tie the order
    /// is kill, drain, timeout, idle timeout, idle flush, probe.
    fn earliest(&self) -> Option<(Instant, Fired)> {
        [
            (self.kill, Fired::Kill),
            (self.drain, Fired::Drain),
            (self.timeout, Fired::Timeout),
            (self.idle_timeout, Fired::IdleTimeout),
            (self.idle_flush, Fired::IdleFlush),
            (self.probe, Fired::Probe),
        ]
        .into_iter()
        .filter_map(|(at, which)| at.map(|at| (at, which)))
        .min_by_key(|(at, _)| *at)
    }

    fn disarm(&mut self, which: Fired) {
        match which {
            Fired::Timeout => self.timeout = None,
            Fired::Kill => self.kill = None,
            Fired::Drain => self.drain = None,
            Fired::IdleFlush => self.idle_flush = None,
            Fired::IdleTimeout => self.idle_timeout = None,
            // The probe re-arms itself.
            Fired::Probe => {
                self.probe = self.policy.probe.and_then(|d| after(Instant::now(), d));
            }
        }
    }

    /// Wait until the earliest armed deadline passes, disarm it and say which
    /// it was. Never resolves while nothing is armed. Cancel-safe: dropping
    /// the future loses nothing (the deadline stays armed).
    pub fn next(&mut self) -> impl Future<Output = Fired> + '_ {
        std::future::poll_fn(move |cx| loop {
            let Some((at, which)) = self.earliest() else {
                return std::task::Poll::Pending;
            };
            if self.timer_at != Some(at) {
                self.timer.as_mut().reset(at);
                self.timer_at = Some(at);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return std::task::Poll::Pending;
            }
            self.timer_at = None;
            if !self.postponed(which) {
                self.disarm(which);
                return std::task::Poll::Ready(which);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(timeout: Option<Duration>) -> StopPolicy {
        StopPolicy {
            timeout,
            grace: Duration::from_secs(5),
            drain: Duration::from_secs(2),
            idle_flush: Duration::from_millis(100),
            idle_timeout: None,
            probe: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_then_kill_after_grace() {
        let t0 = Instant::now();
        let mut d = Deadlines::start(policy(Some(Duration::from_secs(10))));
        assert_eq!(d.next().await, Fired::Timeout);
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
        assert!(d.stop(StopReason::Timeout));
        assert!(!d.stop(StopReason::Cancel), "a second stop changes nothing");
        assert_eq!(d.stopping(), Some(StopReason::Timeout));
        assert_eq!(d.next().await, Fired::Kill);
        assert_eq!(t0.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_disarms_the_timeout() {
        let mut d = Deadlines::start(policy(Some(Duration::from_secs(3))));
        assert!(d.stop(StopReason::Cancel));
        // Only the kill deadline (5 s) is left; the 3 s timeout must not fire.
        assert_eq!(d.next().await, Fired::Kill);
        assert_eq!(d.stopping(), Some(StopReason::Cancel));
    }

    #[tokio::test(start_paused = true)]
    async fn huge_durations_mean_never_instead_of_panicking() {
        let mut d = Deadlines::start(StopPolicy {
            timeout: Some(Duration::MAX),
            grace: Duration::MAX,
            drain: Duration::MAX,
            idle_flush: Duration::MAX,
            idle_timeout: Some(Duration::MAX),
            probe: Some(Duration::MAX),
        });
        assert!(d.stop(StopReason::Cancel));
        d.exited(true);
        d.unfinished_output(true);
        let waited = tokio::time::timeout(Duration::from_secs(365 * 24 * 3600), d.next()).await;
        assert!(waited.is_err(), "nothing may fire: {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_flush_rearms_and_disarms() {
        let t0 = Instant::now();
        let mut d = Deadlines::start(policy(None));
        d.unfinished_output(true);
        tokio::time::advance(Duration::from_millis(60)).await;
        d.unfinished_output(true); // more output: wait again
        assert_eq!(d.next().await, Fired::IdleFlush);
        assert_eq!(t0.elapsed(), Duration::from_millis(160));
        d.unfinished_output(true);
        d.unfinished_output(false); // the line was finished
        let r = tokio::time::timeout(Duration::from_secs(60), d.next()).await;
        assert!(r.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn paused_time_does_not_count_toward_the_timeout() {
        let mut d = Deadlines::start(policy(Some(Duration::from_secs(10))));
        tokio::time::advance(Duration::from_secs(4)).await;
        d.paused(true);
        tokio::time::advance(Duration::from_secs(100)).await;
        d.paused(false);
        // 6 s were left when paused.
        tokio::time::advance(Duration::from_millis(5900)).await;
        assert!(futures_ready(&mut d).await.is_none());
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(futures_ready(&mut d).await, Some(Fired::Timeout));
    }

    /// `next()` if it is ready now.
    async fn futures_ready(d: &mut Deadlines) -> Option<Fired> {
        tokio::time::timeout(Duration::ZERO, d.next()).await.ok()
    }

    #[tokio::test(start_paused = true)]
    async fn the_probe_rearms_until_stop_or_exit() {
        let t0 = Instant::now();
        let mut d = Deadlines::start(StopPolicy {
            probe: Some(Duration::from_millis(250)),
            ..policy(Some(Duration::from_secs(1)))
        });
        for i in 1..=3 {
            assert_eq!(d.next().await, Fired::Probe);
            assert_eq!(t0.elapsed(), Duration::from_millis(250 * i));
        }
        // Paused: the probe keeps running, the timeout does not.
        d.paused(true);
        assert_eq!(d.next().await, Fired::Probe);
        d.paused(false);
        d.exited(false);
        let rest = tokio::time::timeout(Duration::from_secs(60), d.next()).await;
        assert_eq!(rest.ok(), Some(Fired::Timeout), "only the timeout is left");
        let mut d = Deadlines::start(StopPolicy {
            probe: Some(Duration::from_millis(250)),
            ..policy(None)
        });
        assert!(d.stop(StopReason::Cancel));
        assert_eq!(d.next().await, Fired::Kill, "no probe while stopping");
    }

    #[tokio::test(start_paused = true)]
    async fn activity_pushes_the_idle_timeout_back() {
        let t0 = Instant::now();
        let mut d = Deadlines::start(StopPolicy {
            idle_timeout: Some(Duration::from_secs(2)),
            ..policy(None)
        });
        tokio::time::advance(Duration::from_millis(1500)).await;
        d.activity();
        assert_eq!(d.next().await, Fired::IdleTimeout);
        assert_eq!(t0.elapsed(), Duration::from_millis(3500));
        assert_eq!(d.idle_reason(), StopReason::Idle { after_ms: 2000 });
        assert!(d.stop(d.idle_reason()));
        d.activity(); // stopping: stays disarmed
        assert_eq!(d.next().await, Fired::Kill);
    }

    #[tokio::test(start_paused = true)]
    async fn exit_disarms_the_idle_timeout() {
        let mut d = Deadlines::start(StopPolicy {
            idle_timeout: Some(Duration::from_secs(1)),
            ..policy(None)
        });
        d.exited(true);
        // Only the drain deadline (2 s) is left.
        assert_eq!(d.next().await, Fired::Drain);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_only_when_pipes_are_open() {
        let mut d = Deadlines::start(policy(None));
        d.exited(false);
        assert!(d.earliest().is_none());
        d.exited(true);
        assert_eq!(d.next().await, Fired::Drain);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_wait_keeps_the_deadline() {
        let mut d = Deadlines::start(policy(Some(Duration::from_secs(1))));
        let early = tokio::time::timeout(Duration::from_millis(500), d.next()).await;
        assert!(early.is_err());
        assert_eq!(d.next().await, Fired::Timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn held_pipes_postpone_idle_deadlines_but_not_a_stop() {
        let t0 = Instant::now();
        let mut d = Deadlines::start(StopPolicy {
            idle_timeout: Some(Duration::from_secs(1)),
            ..policy(None)
        });
        d.unfinished_output(true);
        d.exited(true); // drain at 2 s
        d.hold(true);
        let waited = tokio::time::timeout(Duration::from_secs(10), d.next()).await;
        assert!(waited.is_err(), "held: nothing idle or drain fires");
        d.hold(false);
        d.released(false);
        assert_eq!(d.next().await, Fired::Drain);
        assert!(t0.elapsed() >= Duration::from_secs(12));
        // A stop is never postponed: its drain fires even while held.
        let mut d = Deadlines::start(policy(None));
        d.exited(true);
        assert!(d.stop(StopReason::Cancel));
        d.hold(true);
        assert_eq!(d.next().await, Fired::Drain);
    }
}
