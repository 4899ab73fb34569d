//! The rate finder, without a clock: every method takes `now` (seconds since the limiter was
//! made), so tests drive it through simulated time against a simulated IAM token bucket.
//!
//! AWS does not publish IAM's rates, so they are found: no pacing until the first throttle; then
//! requests are spaced `1/rate` apart. A throttle cuts the rate to `BETA` × the rate IAM actually
//! accepted over the last `WINDOW` (while it throttles, its bucket is empty, so what it accepts
//! is its refill rate); every success raises the rate by the share `GROWTH` (so a cut is made up
//! after ~50 successes at any rate, and then the rate probes upwards as slowly: a throttle is
//! rare, and IAM's burst absorbs the time spent under its rate).
//! Responses to requests sent before the last cut do not cut again: the requests in flight when
//! IAM first throttles all come back throttled, and one cut answers them all.

use std::collections::VecDeque;

/// The cut on a throttle, as a share of the rate IAM accepted.
const BETA: f64 = 0.9;
/// The share of the rate each success adds.
const GROWTH: f64 = 0.002;
/// The accepted rate is measured over the last `SAMPLE` acceptances within `WINDOW` seconds.
const SAMPLE: usize = 32;
const WINDOW: f64 = 10.0;
/// Never slower than this (requests per second).
pub const MIN_RATE: f64 = 0.2;

/// What a limiter has seen, for reports and the progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateStats {
    /// Requests that got an answer (throttled ones included).
    pub requests: u64,
    pub throttles: u64,
    /// The pacing rate now (requests per second); `None` until the first throttle.
    pub rate: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Aimd {
    rate: Option<f64>,
    /// The earliest start of the next request.
    next_free: f64,
    /// When the rate was last cut.
    last_cut: Option<f64>,
    /// When requests were accepted: the last `SAMPLE`, within the last `WINDOW`.
    accepted: VecDeque<f64>,
    stats: RateStats,
}

impl Aimd {
    /// A slot for one request asked for at `now`: when it may be sent (>= `now`).
    pub fn reserve(&mut self, now: f64) -> f64 {
        match self.rate {
            None => now,
            Some(rate) => {
                let start = self.next_free.max(now);
                self.next_free = start + 1.0 / rate;
                start
            }
        }
    }

    /// The request sent at `sent` was accepted (answered with anything but a throttle).
    pub fn accepted(&mut self, _sent: f64, now: f64) {
        self.answered(now);
        self.accepted.push_back(now);
        if self.accepted.len() > SAMPLE {
            self.accepted.pop_front();
        }
        if let Some(rate) = self.rate.as_mut() {
            *rate *= 1.0 + GROWTH;
        }
        self.stats.rate = self.rate;
    }

    /// The request sent at `sent` was throttled.
    pub fn throttled(&mut self, sent: f64, now: f64) {
        self.answered(now);
        self.stats.throttles += 1;
        if self.last_cut.is_some_and(|cut| sent < cut) {
            return; // sent before the last cut: already answered
        }
        let since = self.accepted.front().copied().unwrap_or(now);
        let span = (now - since).clamp(0.05, WINDOW);
        let measured = self.accepted.len() as f64 / span;
        let base = match self.rate {
            Some(rate) => rate.min(measured),
            None => measured,
        };
        let rate = (BETA * base).max(MIN_RATE);
        self.rate = Some(rate);
        self.stats.rate = self.rate;
        self.last_cut = Some(now);
        // The slots already handed out stand; the next ones are spaced at the new rate.
        self.next_free = self.next_free.max(now);
    }

    pub fn stats(&self) -> RateStats {
        self.stats
    }

    fn answered(&mut self, now: f64) {
        self.stats.requests += 1;
        while self.accepted.front().is_some_and(|t| *t < now - WINDOW) {
            self.accepted.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// IAM's side: a token bucket whose rate may change at a given time.
    struct Bucket {
        rate: f64,
        burst: f64,
        tokens: f64,
        at: f64,
        change: Option<(f64, f64)>,
    }

    impl Bucket {
        fn take(&mut self, now: f64) -> bool {
            if let Some((when, rate)) = self.change {
                if now >= when {
                    self.tokens = (self.tokens + (when - self.at) * self.rate).min(self.burst);
                    self.at = when;
                    self.rate = rate;
                    self.change = None;
                }
            }
            self.tokens = (self.tokens + (now - self.at) * self.rate).min(self.burst);
            self.at = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                true
            } else {
                false
            }
        }
    }

    struct Outcome {
        wall: f64,
        requests: u64,
        throttles: u64,
    }

    /// `workers` concurrent workers each send requests (one-way latency `latency`) until `jobs`
    /// requests have been accepted; a throttled request is sent again through the limiter.
    fn simulate(
        mut bucket: Bucket,
        workers: usize,
        jobs: usize,
        latency: f64,
        work: f64,
    ) -> Outcome {
        #[derive(PartialEq, PartialOrd)]
        struct T(f64);
        impl Eq for T {}
        #[allow(clippy::derive_ord_xor_partial_ord)]
        impl Ord for T {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.0.total_cmp(&o.0)
            }
        }
        let mut aimd = Aimd::default();
        // (time a worker is free to ask for a slot, worker)
        let mut ready: BinaryHeap<Reverse<(T, usize)>> =
            (0..workers).map(|w| Reverse((T(0.0), w))).collect();
        let (mut done, mut end) = (0, 0.0);
        let mut started = 0;
        while let Some(Reverse((T(now), w))) = ready.pop() {
            if started >= jobs && done >= jobs {
                break;
            }
            let sent = aimd.reserve(now);
            let ok = bucket.take(sent + latency);
            let answered = sent + 2.0 * latency;
            if ok {
                aimd.accepted(sent, answered);
                done += 1;
                end = answered;
                started += 1;
                if started < jobs {
                    ready.push(Reverse((T(answered + work), w)));
                }
            } else {
                aimd.throttled(sent, answered);
                ready.push(Reverse((T(answered), w)));
            }
        }
        let stats = aimd.stats();
        Outcome {
            wall: end,
            requests: stats.requests,
            throttles: stats.throttles,
        }
    }

    fn bucket(rate: f64, burst: f64) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: 0.0,
            change: None,
        }
    }

    fn check(o: &Outcome, floor: f64, max_ratio: f64, max_throttled: f64) {
        let ratio = o.wall / floor;
        let throttled = o.throttles as f64 / o.requests as f64;
        assert!(
            ratio <= max_ratio && throttled <= max_throttled,
            "wall {:.1} s = {ratio:.3} x the floor {floor:.1} s; {} of {} requests throttled ({:.1} %)",
            o.wall,
            o.throttles,
            o.requests,
            throttled * 100.0
        );
    }

    #[test]
    fn converges_to_iams_rate_with_few_throttles() {
        // The benchmark's bucket: 10 writes/s, burst 20; 8 workers; 2,000 writes.
        let o = simulate(bucket(10.0, 20.0), 8, 2000, 0.02, 0.005);
        check(&o, (2000.0 - 20.0) / 10.0, 1.05, 0.05);
    }

    #[test]
    fn finds_slow_and_fast_rates_alike() {
        for (rate, jobs) in [(1.0, 1000), (3.0, 1000), (50.0, 5000), (200.0, 10000)] {
            let o = simulate(bucket(rate, 2.0 * rate), 8, jobs, 0.01, 0.001);
            check(&o, (jobs as f64 - 2.0 * rate) / rate, 1.10, 0.05);
        }
    }

    #[test]
    fn follows_a_rate_lowered_mid_run() {
        // 10/s for the first 60 s, then 4/s: 600 + 4 × (T − 60) = 1,500 writes take T = 285 s.
        let mut b = bucket(10.0, 20.0);
        b.change = Some((60.0, 4.0));
        let o = simulate(b, 8, 1500, 0.02, 0.005);
        check(&o, 60.0 + (1500.0 - 600.0 - 20.0) / 4.0, 1.08, 0.05);
    }

    #[test]
    fn no_pacing_until_the_first_throttle() {
        let mut aimd = Aimd::default();
        assert_eq!(aimd.reserve(1.0), 1.0);
        assert_eq!(aimd.reserve(1.0), 1.0);
        aimd.accepted(1.0, 1.1);
        assert_eq!(aimd.stats().rate, None);
        aimd.throttled(1.0, 1.2);
        let rate = aimd.stats().rate.expect("paced after a throttle");
        let first = aimd.reserve(1.2);
        assert!((aimd.reserve(1.2) - first - 1.0 / rate).abs() < 1e-9);
        // A throttle of a request sent before the cut does not cut again.
        aimd.throttled(1.1, 1.3);
        assert_eq!(aimd.stats().rate, Some(rate));
        assert_eq!(aimd.stats().throttles, 2);
    }
}
