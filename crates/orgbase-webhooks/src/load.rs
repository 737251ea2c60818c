//! How busy the node is serving requests, for the delivery worker to yield to them. Delivery is
//! background work: when requests queue (more in flight than the cores can run at once, by a
//! margin), each attempt's CPU (the request out, its signature, its record) would be taken
//! from them. The worker then delivers a few messages per pause instead of as many as it can,
//! and catches up when the load falls (see `worker`).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Requests in flight on this node.
#[derive(Debug)]
pub struct Load {
    in_flight: AtomicUsize,
    /// From this many requests in flight, the node is busy.
    busy_at: usize,
}

impl Default for Load {
    /// Busy from four requests in flight per core.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::busy_at(4 * cores)
    }
}

impl Load {
    pub fn busy_at(busy_at: usize) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            busy_at: busy_at.max(1),
        }
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn busy(&self) -> bool {
        self.in_flight() >= self.busy_at
    }
}

/// One request in flight (see [`Load::enter`]).
#[derive(Debug)]
pub struct InFlight(Arc<Load>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_from_the_threshold_until_the_requests_end() {
        let load = Arc::new(Load::busy_at(2));
        assert!(!load.busy());
        let a = load.enter();
        assert!(!load.busy());
        let b = load.enter();
        assert!(load.busy());
        assert_eq!(load.in_flight(), 2);
        drop(a);
        assert!(!load.busy());
        drop(b);
        assert_eq!(load.in_flight(), 0);
    }
}
