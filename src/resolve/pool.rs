//! The task pool: every input at once (`--jobs` bounds requests in flight, in [`crate::http::Http`],
//! not inputs), results keyed so that nothing depends on timing, and the progress bar that counts them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::ResolveError;
use crate::manifest::Name;

/// An input, as the pool orders results: charts first, each by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key {
    Chart(Name),
    Dashboard(Name),
}

pub(super) type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;
/// One input's work in a phase.
pub(super) type Task<'a, T> = (Key, LocalFuture<'a, Result<T, ResolveError>>);

/// A progress bar on stderr, or a hidden one (no progress wanted, or nothing to count).
pub(super) fn progress_bar(show: bool, len: usize, prefix: &'static str) -> ProgressBar {
    if !show || len == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{prefix:>12.cyan.bold} [{bar:25}] {pos}/{len} {wide_msg}")
            .expect("a valid template")
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix);
    bar
}

/// One input's work with its chain: how many requests it makes one after another when nothing is
/// cached (see [`crate::http::on_chain`]).
pub(super) type ChainedTask<'a, T> = (Key, u32, LocalFuture<'a, Result<T, ResolveError>>);

/// Orders tasks longest chain first (ties keep their order) and ranks each one's requests by its chain,
/// so that the inputs whose requests must go one after another get the first slots and, at every later
/// step, the next free one: the longest input then sets the lock's time rather than the number of
/// inputs (issue 15).
pub(super) fn longest_first<'a, T: 'a>(mut tasks: Vec<ChainedTask<'a, T>>) -> Vec<Task<'a, T>> {
    tasks.sort_by_key(|(_, chain, _)| std::cmp::Reverse(*chain));
    tasks
        .into_iter()
        .map(|(key, chain, work)| {
            let ranked: LocalFuture<'a, _> = Box::pin(crate::http::on_chain(chain, work));
            (key, ranked)
        })
        .collect()
}

/// Runs every task at once, so that no input waits for a slot while requests could be in flight (the
/// bound is on requests: `Http::with_requests_in_flight`); results keyed, so their order is the keys'
/// order.
pub(super) async fn all_at_once<'a, T>(
    bar: &ProgressBar,
    tasks: Vec<(Key, LocalFuture<'a, T>)>,
) -> BTreeMap<Key, T> {
    let all = tasks.len().max(1);
    futures_util::stream::iter(tasks)
        .map(|(key, task)| async move {
            let out = task.await;
            let name = match &key {
                Key::Chart(n) | Key::Dashboard(n) => n.to_string(),
            };
            bar.set_message(name);
            bar.inc(1);
            (key, out)
        })
        .buffer_unordered(all)
        .collect()
        .await
}
