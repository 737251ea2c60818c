//! The GCRA step both backends run: the memory backend calls [`step`], the Redis backend runs
//! `gcra.lua`, which is the same arithmetic line for line. Times are whole microseconds so the two
//! agree exactly; the memory backend measures them from a monotonic [`std::time::Instant`].

/// The quota in the units the algorithm uses: whole microseconds, never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    pub interval_us: u64,
    pub burst: u64,
}

/// What one step decided, all times in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub allowed: bool,
    pub remaining: u64,
    pub reset_us: u64,
    pub retry_after_us: u64,
    /// The TAT to store, when the request was allowed and counted.
    pub new_tat: Option<u64>,
}

/// One GCRA step for a bucket whose stored theoretical arrival time is `stored_tat` (none: a
/// full bucket), at time `now`. `take` counts the request when it is allowed; otherwise the step
/// only reports how many could be taken now.
pub(crate) fn step(stored_tat: Option<u64>, now: u64, params: Params, take: bool) -> Step {
    let Params {
        interval_us: interval,
        burst,
    } = params;
    let tat = stored_tat.map_or(now, |tat| tat.max(now));
    let ahead = tat - now;
    let capacity = interval.saturating_mul(burst);

    if ahead.saturating_add(interval) > capacity {
        return Step {
            allowed: false,
            remaining: 0,
            reset_us: ahead,
            retry_after_us: ahead + interval - capacity,
            new_tat: None,
        };
    }
    if !take {
        return Step {
            allowed: true,
            remaining: (capacity - ahead) / interval,
            reset_us: ahead,
            retry_after_us: 0,
            new_tat: None,
        };
    }
    let new_ahead = ahead + interval;
    Step {
        allowed: true,
        remaining: (capacity - new_ahead) / interval,
        reset_us: new_ahead,
        retry_after_us: 0,
        new_tat: Some(tat + interval),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Params = Params {
        interval_us: 200_000,
        burst: 10,
    };

    #[test]
    fn a_full_bucket_allows_burst_then_refuses_for_one_interval() {
        let mut tat = None;
        for expected in (0..10).rev() {
            let s = step(tat, 1_000, Q, true);
            assert!(s.allowed);
            assert_eq!(s.remaining, expected);
            assert_eq!(s.reset_us, (10 - expected) * 200_000);
            tat = s.new_tat;
        }
        assert_eq!(tat, Some(1_000 + 2_000_000));
        let refused = step(tat, 1_000, Q, true);
        assert_eq!(
            refused,
            Step {
                allowed: false,
                remaining: 0,
                reset_us: 2_000_000,
                retry_after_us: 200_000,
                new_tat: None,
            }
        );
        // 150 ms later the wait is 50 ms; at exactly 200 ms one is allowed, and it is the last.
        assert_eq!(step(tat, 151_000, Q, true).retry_after_us, 50_000);
        let s = step(tat, 201_000, Q, true);
        assert!(s.allowed);
        assert_eq!(s.remaining, 0);
    }

    #[test]
    fn peek_reports_what_could_be_taken_and_stores_nothing() {
        let full = step(None, 5, Q, false);
        assert_eq!((full.allowed, full.remaining, full.reset_us), (true, 10, 0));
        assert_eq!(full.new_tat, None);
        // Nine taken: one left, so peek allows and says 1.
        let tat = Some(5 + 9 * 200_000);
        let s = step(tat, 5, Q, false);
        assert_eq!((s.allowed, s.remaining), (true, 1));
        // Ten taken: refused, with the same wait a take would get.
        let tat = Some(5 + 10 * 200_000);
        let s = step(tat, 5, Q, false);
        assert_eq!((s.allowed, s.retry_after_us), (false, 200_000));
    }

    #[test]
    fn a_past_tat_is_a_full_bucket() {
        assert_eq!(
            step(Some(10), 1_000_000, Q, true),
            step(None, 1_000_000, Q, true)
        );
    }

    #[test]
    fn partial_refill_rounds_remaining_down() {
        // Full drain at 0, then 1.5 intervals later: one allowed, and none left after it.
        let tat = Some(2_000_000);
        let s = step(tat, 300_000, Q, true);
        assert_eq!((s.allowed, s.remaining, s.reset_us), (true, 0, 1_900_000));
    }

    #[test]
    fn a_burst_of_one_spaces_requests_by_the_interval() {
        let q = Params {
            interval_us: 1_000,
            burst: 1,
        };
        let first = step(None, 0, q, true);
        assert_eq!((first.allowed, first.remaining), (true, 0));
        let second = step(first.new_tat, 999, q, true);
        assert_eq!((second.allowed, second.retry_after_us), (false, 1));
        assert!(step(first.new_tat, 1_000, q, true).allowed);
    }
}
