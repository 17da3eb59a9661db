//! The per-thread session of one simulated run: the canaries switched on, each BUGGIFY point's
//! enablement, seeded stream and firing count, and the probe counters.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::rc::Rc;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::message::{MessageFault, MessageRule, judge};
use crate::{Canary, Point, Probe};

/// What a run switches on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionConfig {
    /// The run's seed: it decides which BUGGIFY points are enabled and when they fire.
    pub seed: u64,
    /// Planted bugs to switch on (simulation builds only).
    pub canaries: Vec<Canary>,
    /// Chance, in parts per million, that each BUGGIFY point is enabled for the run (0: BUGGIFY
    /// off). An enabled point then fires with its own probability each time it is reached.
    pub buggify_enable_ppm: u32,
}

/// Why a session could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// Canary switches exist only in simulation builds.
    CanaryOffSimulator(&'static str),
    /// Another session is open on this thread.
    AlreadyOpen,
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::CanaryOffSimulator(name) => write!(
                f,
                "canary `{name}`: canary switches exist only in simulation builds (--cfg madsim)"
            ),
            SessionError::AlreadyOpen => {
                write!(f, "a hooks session is already open on this thread")
            }
        }
    }
}

impl std::error::Error for SessionError {}

/// What the hooks saw in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// The canaries that were on.
    pub canaries: Vec<&'static str>,
    /// Each BUGGIFY point enabled for the run, with how often it fired.
    pub buggify: BTreeMap<&'static str, u64>,
    /// Each probe that was hit, with how often.
    pub probes: BTreeMap<&'static str, u64>,
}

#[derive(Debug)]
struct PointState {
    enabled: bool,
    rng: ChaCha8Rng,
    fired: u64,
}

/// What the simulator does when a store hits a probe it strikes at.
type Strike = Rc<dyn Fn(Probe)>;

#[derive(Default)]
struct State {
    open: bool,
    /// The message rule in force, and the stream its verdicts draw from.
    message_rule: Option<(MessageRule, ChaCha8Rng)>,
    /// The seed of the open session (message rules draw their streams from it).
    seed: u64,
    /// How many rules were set, so each draws its own stream.
    rules_set: u64,
    /// Probes the simulator strikes at (bit `i`: `Probe::ALL[i]`), and what it does then.
    strike: Option<(u64, Strike)>,
    /// Bit `i`: `Canary::ALL[i]` is on.
    canaries: u64,
    points: Vec<PointState>,
    probes: Vec<u64>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("open", &self.open)
            .field("canaries", &self.canaries)
            .field("strike", &self.strike.as_ref().map(|(bits, _)| bits))
            .finish_non_exhaustive()
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// The guard of the session open on this thread: dropping it (also while unwinding from a
/// panicking run) closes the session and switches every canary and point off.
#[derive(Debug)]
pub struct Session {
    /// The session lives in a thread-local: the guard must not move to another thread.
    _not_send: PhantomData<*const ()>,
}

fn stream(seed: u64, label: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(xxhash_rust::xxh64::xxh64(label.as_bytes(), 0));
    rng
}

fn chance(rng: &mut ChaCha8Rng, ppm: u32) -> bool {
    (rng.next_u32() % 1_000_000) < ppm
}

impl Session {
    /// Opens the session of a run on this thread; probe counts start from zero.
    pub fn start(config: &SessionConfig) -> Result<Session, SessionError> {
        if !cfg!(madsim)
            && let Some(c) = config.canaries.first()
        {
            return Err(SessionError::CanaryOffSimulator(c.name()));
        }
        const _: () = assert!(Canary::ALL.len() <= 64, "canaries are a 64-bit set");
        STATE.with_borrow_mut(|s| {
            if s.open {
                return Err(SessionError::AlreadyOpen);
            }
            s.open = true;
            s.seed = config.seed;
            s.rules_set = 0;
            s.message_rule = None;
            s.strike = None;
            s.canaries = config.canaries.iter().fold(0, |bits, c| bits | 1 << c.index());
            s.points = Point::ALL
                .iter()
                .map(|p| {
                    let mut decide = stream(config.seed, &format!("buggify-enable/{}", p.name()));
                    PointState {
                        enabled: chance(&mut decide, config.buggify_enable_ppm),
                        rng: stream(config.seed, &format!("buggify/{}", p.name())),
                        fired: 0,
                    }
                })
                .collect();
            s.probes = vec![0; Probe::ALL.len()];
            Ok(Session { _not_send: PhantomData })
        })
    }

    /// What the hooks saw so far.
    pub fn tally(&self) -> Tally {
        STATE.with_borrow(|s| Tally {
            canaries: Canary::ALL
                .iter()
                .filter(|c| s.canaries & (1 << c.index()) != 0)
                .map(|c| c.name())
                .collect(),
            buggify: Point::ALL
                .iter()
                .zip(&s.points)
                .filter(|(_, st)| st.enabled)
                .map(|(p, st)| (p.name(), st.fired))
                .collect(),
            probes: Probe::ALL
                .iter()
                .zip(&s.probes)
                .filter(|(_, n)| **n > 0)
                .map(|(p, n)| (p.name(), *n))
                .collect(),
        })
    }

    /// Closes the session and returns what the hooks saw.
    pub fn finish(self) -> Tally {
        self.tally()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        STATE.with_borrow_mut(|s| {
            s.open = false;
            s.canaries = 0;
            s.points.clear();
            s.message_rule = None;
            s.strike = None;
        });
    }
}

#[cfg_attr(not(madsim), allow(dead_code))]
pub(crate) fn canary_on(c: Canary) -> bool {
    STATE.with_borrow(|s| s.canaries & (1 << c.index()) != 0)
}

#[cfg_attr(not(madsim), allow(dead_code))]
pub(crate) fn buggify_fires(p: Point) -> bool {
    STATE.with_borrow_mut(|s| {
        let Some(st) = s.points.get_mut(p.index()).filter(|st| st.enabled) else {
            return false;
        };
        let fires = chance(&mut st.rng, p.ppm());
        st.fired += u64::from(fires);
        fires
    })
}

#[cfg_attr(not(any(madsim, debug_assertions)), allow(dead_code))]
pub(crate) fn probe_hit(p: Probe) {
    let strike = STATE.with_borrow_mut(|s| {
        if s.probes.len() < Probe::ALL.len() {
            s.probes.resize(Probe::ALL.len(), 0);
        }
        s.probes[p.index()] += 1;
        s.strike.as_ref().filter(|(bits, _)| bits & (1 << p.index()) != 0).map(|(_, f)| f.clone())
    });
    // Called with the session released: the callback may set message rules or strikes.
    if let Some(f) = strike {
        f(p);
    }
}

/// Makes every hit of a probe in `probes` call `strike` synchronously, inside the store's code
/// at that point (the simulator cuts or crashes the node there); `None` stops it. A no-op
/// without a session.
pub fn strike_at(probes: &[Probe], strike: Option<Strike>) {
    const _: () = assert!(Probe::ALL.len() <= 64, "probes are a 64-bit set");
    STATE.with_borrow_mut(|s| {
        if s.open {
            let bits = probes.iter().fold(0, |bits, p| bits | 1 << p.index());
            s.strike = strike.map(|f| (bits, f));
        }
    });
}

/// Sets (or, with `None`, clears) the message rule of the session open on this thread; a no-op
/// without a session.
pub fn set_message_rule(rule: Option<MessageRule>) {
    STATE.with_borrow_mut(|s| {
        if !s.open {
            return;
        }
        s.rules_set += 1;
        let rng = stream(s.seed, &format!("message-rule/{}", s.rules_set));
        s.message_rule = rule.map(|r| (r, rng));
    });
}

#[cfg_attr(not(madsim), allow(dead_code))]
pub(crate) fn message_rule_set() -> bool {
    STATE.with_borrow(|s| s.message_rule.is_some())
}

#[cfg_attr(not(madsim), allow(dead_code))]
pub(crate) fn message_fault(
    from_store: u64,
    to_store: u64,
    region: u64,
    kind: &str,
) -> MessageFault {
    STATE.with_borrow_mut(|s| match &mut s.message_rule {
        Some((rule, rng)) => judge(rule, rng, from_store, to_store, region, kind),
        None => MessageFault::Deliver,
    })
}

/// How often probe `p` was hit on this thread (since the session opened, or since the thread
/// started outside a session). Tests compare it before and after the path they drive.
pub fn probe_hits(p: Probe) -> u64 {
    STATE.with_borrow(|s| s.probes.get(p.index()).copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64, enable_ppm: u32) -> SessionConfig {
        SessionConfig { seed, canaries: Vec::new(), buggify_enable_ppm: enable_ppm }
    }

    fn firing_pattern(seed: u64) -> Vec<bool> {
        let s = Session::start(&config(seed, 1_000_000)).unwrap();
        let pattern = (0..200).map(|_| buggify_fires(Point::RaftSplitAppend)).collect();
        drop(s);
        pattern
    }

    #[test]
    fn buggify_is_a_function_of_the_seed() {
        assert_eq!(firing_pattern(3), firing_pattern(3));
        assert_ne!(firing_pattern(3), firing_pattern(4));
        let fired = firing_pattern(3).iter().filter(|f| **f).count();
        assert!((30..=90).contains(&fired), "fires at about its 30%: {fired} of 200");
    }

    #[test]
    fn buggify_off_never_fires_and_the_tally_names_enabled_points_only() {
        let s = Session::start(&config(1, 0)).unwrap();
        assert!((0..1000).all(|_| !buggify_fires(Point::RaftSplitAppend)));
        assert!(s.finish().buggify.is_empty());
        let s = Session::start(&config(1, 1_000_000)).unwrap();
        while !buggify_fires(Point::StoreForceLogGc) {}
        let tally = s.finish();
        assert_eq!(tally.buggify.len(), Point::ALL.len());
        assert_eq!(tally.buggify["store-force-log-gc"], 1);
    }

    #[test]
    fn a_closed_session_switches_everything_off_and_one_session_per_thread() {
        let s = Session::start(&config(1, 1_000_000)).unwrap();
        assert_eq!(Session::start(&config(1, 0)).unwrap_err(), SessionError::AlreadyOpen);
        drop(s);
        assert!(!buggify_fires(Point::RaftSplitAppend));
        assert!(!canary_on(Canary::EarlyAcks));
    }

    #[test]
    fn probes_count_per_session_and_outside_one() {
        let before = probe_hits(Probe::StoreLogCompacted);
        crate::probe(Probe::StoreLogCompacted);
        assert_eq!(probe_hits(Probe::StoreLogCompacted), before + 1);
        let s = Session::start(&config(1, 0)).unwrap();
        assert_eq!(probe_hits(Probe::StoreLogCompacted), 0, "a session starts from zero");
        crate::probe(Probe::StoreLogCompacted);
        crate::probe(Probe::StoreLogCompacted);
        assert_eq!(s.finish().probes, BTreeMap::from([("store-log-compacted", 2)]));
    }

    #[test]
    fn a_strike_runs_at_its_probes_only_and_may_reenter_the_session() {
        let s = Session::start(&config(1, 0)).unwrap();
        let hits = Rc::new(std::cell::Cell::new(0));
        let seen = hits.clone();
        let strike: Rc<dyn Fn(Probe)> = Rc::new(move |p| {
            assert_eq!(p, Probe::StoreSnapshotApplied);
            seen.set(seen.get() + 1);
            set_message_rule(None); // The session is free while the strike runs.
        });
        strike_at(&[Probe::StoreSnapshotApplied], Some(strike));
        crate::probe(Probe::StoreLogCompacted);
        crate::probe(Probe::StoreSnapshotApplied);
        assert_eq!(hits.get(), 1);
        strike_at(&[], None);
        crate::probe(Probe::StoreSnapshotApplied);
        assert_eq!(hits.get(), 1);
        drop(s);
    }

    #[test]
    fn canaries_are_on_only_in_simulation_builds() {
        let cfg = SessionConfig { canaries: vec![Canary::RaftFigure8], ..config(1, 0) };
        let simulated = cfg!(madsim);
        match Session::start(&cfg) {
            Ok(s) => {
                assert!(simulated);
                assert!(crate::canary(Canary::RaftFigure8));
                assert!(!crate::canary(Canary::EarlyAcks));
                assert_eq!(s.finish().canaries, vec!["raft-figure-8"]);
            }
            Err(e) => {
                assert!(!simulated);
                assert!(e.to_string().contains("raft-figure-8"), "{e}");
            }
        }
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for c in Canary::ALL {
            assert_eq!(Canary::from_name(c.name()), Some(*c));
            assert!(!c.doc().is_empty());
        }
        let mut names: Vec<&str> = Point::ALL.iter().map(|p| p.name()).collect();
        names.extend(Probe::ALL.iter().map(|p| p.name()));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
