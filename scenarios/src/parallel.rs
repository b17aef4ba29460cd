//! The harness's one worker pool: a fixed number of threads take items in order, and the
//! results come back in the items' order whatever the threads' timing.
//!
//! Owns: the threads and the hand-out of items. Must never: reorder results, or start an item
//! after a result asked to stop (the items not started come back as `None`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `f` over `items` on up to `threads` threads; result `i` is `f(&items[i])`, or `None` if
/// the item was not started because an earlier-finished result made `stop` true.
pub(crate) fn map_ordered<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
    stop: impl Fn(&R) -> bool + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                if stop(&r) {
                    next.store(items.len(), Ordering::Relaxed);
                }
                if let Some(slot) = results.lock().unwrap_or_else(|p| p.into_inner()).get_mut(i) {
                    *slot = Some(r);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_items_order_and_a_stop_leaves_later_items_unstarted() {
        let items: Vec<u64> = (0..50).collect();
        let squares = map_ordered(&items, 4, |x| x * x, |_| false);
        assert_eq!(
            squares,
            items.iter().map(|x| Some(x * x)).collect::<Vec<_>>()
        );
        let one = map_ordered(&items, 1, |x| *x, |x| *x == 10);
        assert_eq!(one.iter().flatten().count(), 11);
        assert_eq!(one[10], Some(10));
        assert_eq!(one[11], None);
    }
}
