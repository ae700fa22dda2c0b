//! Which source of a run starts next. The run keeps at most `concurrency`
//! sources in flight and asks here for the next one whenever one ends, so
//! its memory is bounded by the concurrency, not by the number of sources.
//!
//! - hosts take turns: a host with a thousand sources never holds every
//!   slot while the other hosts wait;
//! - at most `per_host` sources of one host are in flight (the fetcher's own
//!   per-host limit and pace then rarely make a started source wait);
//! - with a jitter window (the daemon), each host's sources are spread
//!   evenly over the window from a random start: one government server
//!   sees its requests a window / k apart, not in a burst at second zero.
//!
//! Pure: the caller says how long the run has been going.
//! Not here: the request pace (`per_host_gap_ms`) and Retry-After pauses,
//! which the fetcher keeps per host.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

/// What the run should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Start the source at this index (of the slice given to [`Dispatch::new`]).
    Start(usize),
    /// Nothing may start before this much of the run has passed.
    Wait(Duration),
    /// Nothing may start until a source in flight finishes.
    Busy,
    /// Every source has been started.
    Done,
}

struct Host {
    /// Its sources not started yet, in the file's order, with the earliest
    /// time into the run each may start (milliseconds).
    queue: VecDeque<(u32, u32)>,
    in_flight: usize,
}

pub struct Dispatch {
    hosts: Vec<Host>,
    /// The host of each source, by index.
    host_of: Vec<u32>,
    per_host: usize,
    /// Hosts with a free slot whose next source may start now, in turn.
    ready: VecDeque<u32>,
    /// Hosts with a free slot whose next source may start later.
    later: BinaryHeap<Reverse<(u32, u32)>>,
}

impl Dispatch {
    /// `hosts` names each source's host (`host:port`), in the run's order.
    /// `jitter` is the window to spread each host's sources over (zero: all
    /// may start at once); `seed` picks each host's start within it.
    pub fn new<S: AsRef<str> + Into<String>>(
        hosts: impl IntoIterator<Item = S>,
        per_host: usize,
        jitter: Duration,
        seed: u64,
    ) -> Self {
        // Owned keys, taken one by one: a run's 100,000 host names are
        // never all held at once, only each host's once.
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut list: Vec<Host> = Vec::new();
        let mut host_of = Vec::new();
        for (i, name) in hosts.into_iter().enumerate() {
            let h = match index.get(name.as_ref()) {
                Some(&h) => h,
                None => {
                    list.push(Host {
                        queue: VecDeque::new(),
                        in_flight: 0,
                    });
                    let h = (list.len() - 1) as u32;
                    index.insert(name.into(), h);
                    h
                }
            };
            list[h as usize].queue.push_back((i as u32, 0));
            host_of.push(h);
        }
        let window = jitter.as_millis().min(u32::MAX as u128) as u64;
        let mut rng = fastrand::Rng::with_seed(seed);
        if window > 0 {
            for host in &mut list {
                let step = window / host.queue.len() as u64;
                let phase = rng.u64(0..step.max(1));
                for (k, entry) in host.queue.iter_mut().enumerate() {
                    entry.1 = (phase + k as u64 * step) as u32;
                }
            }
        }
        let mut d = Dispatch {
            host_of,
            per_host: per_host.max(1),
            ready: VecDeque::new(),
            later: BinaryHeap::new(),
            hosts: list,
        };
        for h in 0..d.hosts.len() as u32 {
            d.enqueue(h);
        }
        d
    }

    /// Files a host with a free slot and sources left under when it may go.
    fn enqueue(&mut self, h: u32) {
        let host = &self.hosts[h as usize];
        if host.in_flight >= self.per_host {
            return;
        }
        match host.queue.front() {
            Some(&(_, 0)) => self.ready.push_back(h),
            Some(&(_, at)) => self.later.push(Reverse((at, h))),
            None => {}
        }
    }

    /// The next source to start, `elapsed` into the run.
    pub fn next(&mut self, elapsed: Duration) -> Next {
        let now = elapsed.as_millis().min(u32::MAX as u128) as u32;
        while let Some(&Reverse((at, h))) = self.later.peek()
            && at <= now
        {
            self.later.pop();
            self.ready.push_back(h);
        }
        if let Some(h) = self.ready.pop_front() {
            let host = &mut self.hosts[h as usize];
            let (index, _) = host.queue.pop_front().expect("a ready host has a source");
            host.in_flight += 1;
            // Back in line behind the other hosts, if it may take another.
            if let Some(&(_, at)) = host.queue.front()
                && host.in_flight < self.per_host
            {
                if at <= now {
                    self.ready.push_back(h);
                } else {
                    self.later.push(Reverse((at, h)));
                }
            }
            return Next::Start(index as usize);
        }
        if let Some(&Reverse((at, _))) = self.later.peek() {
            return Next::Wait(Duration::from_millis(at.into()));
        }
        if self.hosts.iter().any(|h| !h.queue.is_empty()) {
            Next::Busy
        } else {
            Next::Done
        }
    }

    /// The source at `index` has finished: its host has a slot again.
    pub fn finished(&mut self, index: usize) {
        let h = self.host_of[index];
        let host = &mut self.hosts[h as usize];
        let was_full = host.in_flight >= self.per_host;
        host.in_flight = host.in_flight.saturating_sub(1);
        // A host below its limit is already in line (or has nothing left).
        if was_full {
            self.enqueue(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts everything that may start at `at`, returning the indices.
    fn start_all(d: &mut Dispatch, at: Duration) -> Vec<usize> {
        let mut out = Vec::new();
        while let Next::Start(i) = d.next(at) {
            out.push(i);
        }
        out
    }

    /// Issue 17: many sources on one host do not hold every slot: hosts
    /// take turns, and a host never has more than `per_host` in flight.
    #[test]
    fn hosts_take_turns_within_their_limit() {
        let hosts = ["big", "big", "big", "big", "big", "small", "other"];
        let mut d = Dispatch::new(hosts, 2, Duration::ZERO, 1);
        let first = start_all(&mut d, Duration::ZERO);
        assert_eq!(first, [0, 5, 6, 1], "one of each host, then big's second");
        assert_eq!(d.next(Duration::ZERO), Next::Busy);
        d.finished(5);
        assert_eq!(d.next(Duration::ZERO), Next::Busy, "small has nothing left");
        d.finished(0);
        assert_eq!(start_all(&mut d, Duration::ZERO), [2]);
        for i in [1, 2, 6] {
            d.finished(i);
        }
        assert_eq!(start_all(&mut d, Duration::ZERO), [3, 4]);
        assert_eq!(d.next(Duration::ZERO), Next::Done);
    }

    /// Issue 17: in a jitter window, each host's sources are spread evenly
    /// over it (window / k apart), not each at a random second.
    #[test]
    fn a_hosts_sources_are_spread_over_the_jitter_window() {
        let hosts = ["a", "a", "a", "b"];
        let window = Duration::from_secs(9);
        let mut d = Dispatch::new(hosts, 8, window, 7);
        let mut started = Vec::new();
        let mut t = Duration::ZERO;
        while started.len() < hosts.len() {
            match d.next(t) {
                Next::Start(i) => started.push((i, t)),
                Next::Wait(until) => t = until,
                other => panic!("{other:?}"),
            }
        }
        let at = |i: usize| started.iter().find(|s| s.0 == i).unwrap().1;
        assert!(at(0) < Duration::from_secs(3));
        assert_eq!(at(1) - at(0), Duration::from_secs(3));
        assert_eq!(at(2) - at(1), Duration::from_secs(3));
        assert!(at(2) < window && at(3) < window);
    }
}
