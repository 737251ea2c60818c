//! Buckets in this process's memory: a map from key to theoretical arrival time, split into
//! shards by a hash of the key so concurrent requests for different keys rarely wait on one lock.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::gcra::{self, Params, Step};

const SHARDS: usize = 16;
/// Keys a shard holds before it drops the ones whose bucket is full again.
const SHARD_KEYS: usize = 100_000 / SHARDS;

pub(crate) struct MemoryStore {
    /// Times are microseconds since this instant (monotonic, so a clock change moves nothing).
    epoch: Instant,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    shard_keys: usize,
}

struct Shard {
    /// Key to theoretical arrival time, in microseconds since `epoch`.
    tats: HashMap<String, u64>,
    /// Prune when the map grows past this. Raised after a prune that left the shard above
    /// `shard_keys` (every bucket in use), so a shard full of live keys is not rescanned on
    /// every new key.
    prune_above: usize,
}

impl MemoryStore {
    pub(crate) fn new() -> Self {
        Self::with_shard_keys(SHARD_KEYS)
    }

    fn with_shard_keys(shard_keys: usize) -> Self {
        MemoryStore {
            epoch: Instant::now(),
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        tats: HashMap::new(),
                        prune_above: shard_keys,
                    })
                })
                .collect(),
            shard_keys,
        }
    }

    pub(crate) fn step(&self, key: &str, params: Params, take: bool) -> Step {
        let mut shard = self.shard(key);
        let now = self.now();
        let stored = shard.tats.get(key).copied();
        let step = gcra::step(stored, now, params, take);
        if let Some(new_tat) = step.new_tat {
            match shard.tats.get_mut(key) {
                Some(tat) => *tat = new_tat,
                None => {
                    if shard.tats.len() >= shard.prune_above {
                        shard.prune(now, self.shard_keys);
                    }
                    shard.tats.insert(key.to_owned(), new_tat);
                }
            }
        }
        step
    }

    pub(crate) fn forget(&self, key: &str) {
        self.shard(key).tats.remove(key);
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // A panic while holding the lock cannot leave a half-written entry behind (each entry is
        // one integer), so a poisoned lock is safe to keep using.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap().tats.len())
            .sum()
    }
}

impl Shard {
    /// Drops the buckets that are full again: a TAT in the past means the same as no entry.
    fn prune(&mut self, now: u64, shard_keys: usize) {
        self.tats.retain(|_, tat| *tat > now);
        self.prune_above = shard_keys.max(self.tats.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Params = Params {
        interval_us: 1_000,
        burst: 1,
    };

    #[test]
    fn a_full_shard_drops_the_buckets_that_are_full_again() {
        let store = MemoryStore::with_shard_keys(4);
        for i in 0..200 {
            store.step(&format!("k{i}"), Q, true);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        // Every bucket above refilled; the next prune of each shard drops it. A shard prunes
        // when it grows past twice what its last prune kept (at most 2 x 200 here), and the
        // hash spreads keys at random: 20,000 new keys (about 1,250 a shard) make every shard
        // prune, where 400 left one that had raised its threshold unpruned now and then.
        for i in 0..20_000 {
            store.step(&format!("fresh{i}"), Q, true);
        }
        let stale = store
            .shards
            .iter()
            .map(|shard| {
                let shard = shard.lock().unwrap();
                shard.tats.keys().filter(|k| k.starts_with('k')).count()
            })
            .sum::<usize>();
        assert_eq!(stale, 0);
    }

    #[test]
    fn pruning_keeps_buckets_in_use() {
        let store = MemoryStore::with_shard_keys(2);
        let long = Params {
            interval_us: 60_000_000,
            burst: 1,
        };
        for i in 0..100 {
            store.step(&format!("k{i}"), long, true);
        }
        assert_eq!(store.len(), 100);
        for i in 0..100 {
            assert!(!store.step(&format!("k{i}"), long, true).allowed, "k{i}");
        }
    }

    #[test]
    fn peek_and_refusal_store_nothing() {
        let store = MemoryStore::new();
        store.step("a", Q, false);
        assert_eq!(store.len(), 0);
        store.step("a", Q, true);
        store.step("a", Q, true);
        assert_eq!(store.len(), 1);
        store.forget("a");
        assert_eq!(store.len(), 0);
    }
}
