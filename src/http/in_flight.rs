//! The bound on requests in flight (`--jobs`), served longest chain first: when every slot is taken,
//! the next free one goes to the waiting request whose input makes the most requests one after another
//! (a ranged OCI chart's tag list, manifest and layer before a URL dashboard's single GET), and among
//! equals to the one that waited longest.
//!
//! A first-come bound let the inputs that need one request take the slots while the longest chains
//! queued behind them at each of their steps, so a cold lock of 40 inputs took 2.4x its longest input
//! (issue 15). How long an input's chain is, the resolver says with [`on_chain`]: a task-local value
//! read when each request asks for a slot, so the sources between the two need not carry it.

use std::cell::Cell;
use std::collections::BinaryHeap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

tokio::task_local! {
    /// How many requests the input being polled makes one after another; see [`on_chain`].
    static CHAIN: Cell<u32>;
}

/// Runs `work` (one input's requests) with its requests ranked by `chain`, the number of requests the
/// input makes one after another. Requests made outside such a scope rank as a chain of one.
pub async fn on_chain<F: Future>(chain: u32, work: F) -> F::Output {
    CHAIN.scope(Cell::new(chain), work).await
}

fn current_chain() -> u32 {
    CHAIN.try_with(Cell::get).unwrap_or(1)
}

/// At most `slots` requests at once; see the module docs. Shared by every clone of an `Http`.
#[derive(Debug)]
pub struct RequestBound {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    waiting: BinaryHeap<Waiter>,
    /// Orders waiters of the same rank by arrival.
    next: u64,
}

/// A request waiting for a slot; the slot is handed over as a [`Permit`] through `slot`.
#[derive(Debug)]
struct Waiter {
    chain: u32,
    arrival: u64,
    slot: oneshot::Sender<Permit>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Waiter) -> bool {
        (self.chain, self.arrival) == (other.chain, other.arrival)
    }
}

impl Eq for Waiter {}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Waiter) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiter {
    /// The greatest is served first: the longest chain, then the earliest arrival.
    fn cmp(&self, other: &Waiter) -> std::cmp::Ordering {
        self.chain
            .cmp(&other.chain)
            .then_with(|| other.arrival.cmp(&self.arrival))
    }
}

/// A slot among the requests in flight, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    /// `None` once the slot was given back (or handed on while the permit was in transit).
    bound: Option<Arc<RequestBound>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(bound) = self.bound.take() {
            RequestBound::release(bound);
        }
    }
}

impl RequestBound {
    /// A bound of `slots` requests (at least one).
    pub fn new(slots: usize) -> Arc<RequestBound> {
        Arc::new(RequestBound {
            state: Mutex::new(State {
                free: slots.max(1),
                waiting: BinaryHeap::new(),
                next: 0,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements (no panic can leave it half-updated).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot, ranked by the calling input's chain ([`on_chain`]). Cancel-safe: a slot
    /// handed to a waiter that was dropped meanwhile is passed on.
    pub async fn acquire(self: &Arc<RequestBound>) -> Permit {
        let chain = current_chain();
        let slot = {
            let mut state = self.state();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return Permit {
                    bound: Some(Arc::clone(self)),
                };
            }
            let (slot, handed) = oneshot::channel();
            let arrival = state.next;
            state.next += 1;
            state.waiting.push(Waiter {
                chain,
                arrival,
                slot,
            });
            handed
        };
        // The sender is dropped unsent only when this receiver is gone, so this cannot fail while we
        // wait; were it to, the request would go unbounded rather than never.
        slot.await.unwrap_or(Permit { bound: None })
    }

    /// Hands the slot to the first waiter still waiting, or frees it.
    fn release(bound: Arc<RequestBound>) {
        loop {
            let waiter = {
                let mut state = bound.state();
                match state.waiting.pop() {
                    Some(w) => w,
                    None => {
                        state.free += 1;
                        return;
                    }
                }
            };
            let permit = Permit {
                bound: Some(Arc::clone(&bound)),
            };
            match waiter.slot.send(permit) {
                Ok(()) => return,
                // That waiter gave up; the slot is still ours to hand on.
                Err(mut unsent) => drop(unsent.bound.take()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With one slot taken, waiters are served longest chain first, then in arrival order; a waiter
    /// that gives up does not keep the slot.
    #[tokio::test]
    async fn a_freed_slot_goes_to_the_longest_chain_then_the_earliest() {
        let bound = RequestBound::new(1);
        let held = bound.acquire().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (name, chain) in [("a1", 1), ("b3", 3), ("c1", 1), ("d2", 2), ("e3", 3)] {
            let (bound, order) = (Arc::clone(&bound), Arc::clone(&order));
            waiting.push(tokio::spawn(on_chain(chain, async move {
                let _slot = bound.acquire().await;
                order.lock().unwrap().push(name);
            })));
            tokio::task::yield_now().await;
        }
        // One more waiter that gives up before its turn.
        let quitter = {
            let bound = Arc::clone(&bound);
            tokio::spawn(on_chain(9, async move { bound.acquire().await }))
        };
        tokio::task::yield_now().await;
        quitter.abort();
        let _ = quitter.await;
        drop(held);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["b3", "e3", "d2", "a1", "c1"]);
        assert_eq!(bound.state().free, 1, "every slot is back");
    }
}
