//! Progress bars for the long commands (`sweep`, `qualify`, `hunt`, `shrink`): rate, ETA and
//! the failures so far, on stderr.
//!
//! Owns: the bar's style. Must never: write to stdout (tables and verdicts go there), or draw
//! when stderr is not a terminal (CI logs get the commands' own lines instead).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `total` steps named `what`; its message says what happened last.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {wide_msg}",
    )
    .map(|s| s.progress_chars("#>."))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// A spinner for a search of unknown length (`shrink`): tries, rate and a message.
pub fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix} {spinner} {pos} tries {per_sec} {elapsed} {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}
