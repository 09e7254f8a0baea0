//! Work spread over a few threads with its results handed back in order, a bounded number ahead: what
//! rendering dashboards and loading modules share.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, PoisonError};

/// Runs `work` over `items` on `workers` threads and hands each result to `consume` on the calling
/// thread, in `items`' order. A worker takes the next item as soon as it is free, but never more than
/// `ahead` items past the last one consumed: at most `ahead` results exist at once however slow one
/// item is, so memory stays bounded (a build holds a handful of rendered dashboards, not all of them).
/// `consume`'s first error stops the workers (items already taken finish) and is returned.
///
/// With fewer than two workers or items, everything runs on the calling thread.
pub fn ordered<T: Sync, R: Send, E>(
    items: &[T],
    workers: usize,
    ahead: usize,
    work: impl Fn(&T) -> R + Sync,
    mut consume: impl FnMut(usize, R) -> Result<(), E>,
) -> Result<(), E> {
    if workers < 2 || items.len() < 2 {
        for (i, item) in items.iter().enumerate() {
            consume(i, work(item))?;
        }
        return Ok(());
    }
    let gate = Gate::new(ahead.max(1), items.len());
    let (done, results) = std::sync::mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| {
        for _ in 0..workers.min(items.len()) {
            let (gate, work, done) = (&gate, &work, done.clone());
            scope.spawn(move || {
                // A panicking worker stops the others, so the consumer's receive ends and the scope
                // re-raises the panic instead of waiting for the item that never comes.
                let _stop = StopOnPanic(gate);
                while let Some(i) = gate.take() {
                    if done.send((i, work(&items[i]))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done);
        // Whatever ends the consumer (done, `consume`'s error, a panic in it) stops the workers, so the
        // scope never waits on a worker held back for progress that will not come.
        let _stop = StopOnDrop(&gate);
        let mut pending = BTreeMap::new();
        let mut next = 0;
        loop {
            if next == items.len() {
                break Ok(());
            }
            let Some(result) = pending.remove(&next) else {
                // Every worker gone without item `next`: one panicked, and the scope re-raises it.
                let Ok((i, result)) = results.recv() else {
                    break Ok(());
                };
                pending.insert(i, result);
                continue;
            };
            if let Err(e) = consume(next, result) {
                break Err(e);
            }
            next += 1;
            gate.consumed(next);
        }
    })
}

/// Stops the gate when a worker panics.
struct StopOnPanic<'a>(&'a Gate);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// Stops the gate when the consumer ends, however it ends.
struct StopOnDrop<'a>(&'a Gate);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Which item a worker takes next, and how far ahead of the consumer it may go.
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
    ahead: usize,
    len: usize,
}

struct GateState {
    next: usize,
    consumed: usize,
    stopped: bool,
}

impl Gate {
    fn new(ahead: usize, len: usize) -> Gate {
        let state = GateState {
            next: 0,
            consumed: 0,
            stopped: false,
        };
        Gate {
            state: Mutex::new(state),
            changed: Condvar::new(),
            ahead,
            len,
        }
    }

    /// The next item to work on, once it is within `ahead` of the consumer; `None`: no more.
    fn take(&self) -> Option<usize> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !s.stopped && s.next < self.len && s.next >= s.consumed + self.ahead {
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        if s.stopped || s.next >= self.len {
            return None;
        }
        s.next += 1;
        Some(s.next - 1)
    }

    /// The consumer has taken every item before `count`.
    fn consumed(&self, count: usize) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .consumed = count;
        self.changed.notify_all();
    }

    /// No worker takes another item.
    fn stop(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stopped = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::ordered;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn results_come_in_order_and_never_more_than_ahead_at_once() {
        // Results made but not yet consumed: what a build holds in memory at once.
        let alive = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<usize> = (0..103).collect();
        let mut seen = Vec::new();
        let work = |i: &usize| {
            let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            if i.is_multiple_of(20) {
                // A slow item: the others must not pile up behind it beyond the bound.
                std::thread::sleep(Duration::from_millis(5));
            }
            *i * 2
        };
        ordered(&items, 3, 12, work, |i, r| {
            alive.fetch_sub(1, Ordering::SeqCst);
            seen.push((i, r));
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(seen, (0..103).map(|i| (i, i * 2)).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 12, "at most 12 results alive, saw {most}");
    }

    #[test]
    fn a_free_worker_goes_on_while_another_works_on_a_slow_item() {
        // Item 0 holds one worker until every other item is done (or 10 s pass): items split among
        // the workers up front, or a barrier per batch, would leave some of them waiting behind it.
        let others = AtomicUsize::new(0);
        let items: Vec<usize> = (0..8).collect();
        let work = |i: &usize| {
            if *i != 0 {
                others.fetch_add(1, Ordering::SeqCst);
                return true;
            }
            let start = std::time::Instant::now();
            while others.load(Ordering::SeqCst) < 7 && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            others.load(Ordering::SeqCst) == 7
        };
        let mut seen = Vec::new();
        ordered(&items, 2, 8, work, |_, r| {
            seen.push(r);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert!(seen[0], "the other 7 items ran while item 0 held a worker");
    }

    #[test]
    fn the_first_error_of_consume_stops_it() {
        for workers in [1, 2] {
            let taken = AtomicUsize::new(0);
            let mut calls = 0;
            let items: Vec<usize> = (1..=50).collect();
            let work = |i: &usize| {
                taken.fetch_add(1, Ordering::SeqCst);
                *i
            };
            let r = ordered(&items, workers, 2, work, |_, r| {
                calls += 1;
                if r == 3 {
                    Err(r)
                } else {
                    Ok(())
                }
            });
            assert_eq!((r, calls), (Err(3), 3));
            let taken = taken.load(Ordering::SeqCst);
            assert!(
                taken <= 5,
                "{workers} workers: {taken} items taken, at most 3 + 2 ahead"
            );
        }
    }

    /// Runs `f` on a thread of its own and says whether it panicked, or `None` when it has not ended
    /// after 10 s (a hang, which the caller reports instead of hanging the test run).
    fn ends(f: impl FnOnce() + Send + 'static) -> Option<bool> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
            let _ = tx.send(panicked);
        });
        rx.recv_timeout(Duration::from_secs(10)).ok()
    }

    #[test]
    fn a_panic_in_work_or_in_consume_ends_the_call_instead_of_hanging_it() {
        // More items than `ahead`: the other worker would wait for progress that never comes.
        let in_work = ends(|| {
            let items: Vec<usize> = (0..40).collect();
            let work = |i: &usize| assert_ne!(*i, 0, "item 0 fails");
            let _ = ordered(&items, 2, 8, work, |_, _| Ok::<_, ()>(()));
        });
        assert_eq!(in_work, Some(true), "a worker's panic reaches the caller");
        let in_consume = ends(|| {
            let items: Vec<usize> = (0..40).collect();
            let _ = ordered(
                &items,
                2,
                8,
                |i| *i,
                |i, _| {
                    assert_ne!(i, 3, "consuming item 3 fails");
                    Ok::<_, ()>(())
                },
            );
        });
        assert_eq!(
            in_consume,
            Some(true),
            "the consumer's panic reaches the caller"
        );
    }
}
