//! Reading the event history back from the `key` bucket (etcd's watchable store catch-up).
//!
//! Owns: turning the revisions in a range into watch events, in revision order, the events of
//! one revision together.
//!
//! Must never: write, or return events from a revision range it did not finish reading.

use super::consts::event_type;
use super::revision::{is_tombstone, Revision};
use super::MvccError;
use crate::backend::{Backend, Bucket};
use etcd_api::mvccpb;
use prost::Message as _;

/// The events of one revision.
pub type RevisionEvents = (i64, Vec<mvccpb::Event>);

/// The events of revisions `from..=to`, grouped by revision (ascending). Stops early, at a
/// revision boundary, once `max_events` events are collected; returns the groups and the last
/// revision fully covered (`to` unless stopped early).
pub fn events_between(
    backend: &Backend,
    from: i64,
    to: i64,
    max_events: usize,
) -> Result<(Vec<RevisionEvents>, i64), MvccError> {
    let mut groups: Vec<RevisionEvents> = Vec::new();
    if from > to {
        return Ok((groups, to));
    }
    let start = Revision::new(from.max(1), 0).to_bytes();
    let end = Revision::new(to.saturating_add(1), 0).to_bytes();
    let mut covered = to;
    let mut count = 0usize;
    let mut bad: Option<MvccError> = None;
    backend.for_each(Bucket::Key, &start, Some(&end), |k, v| {
        let Some(rev) = Revision::from_bytes(k) else {
            bad = Some(MvccError::corrupt(k, "not a revision"));
            return false;
        };
        let is_new_group = groups.last().map(|(r, _)| *r) != Some(rev.main);
        if is_new_group && count >= max_events {
            covered = rev.main - 1;
            return false;
        }
        let kv = match mvccpb::KeyValue::decode(v) {
            Ok(kv) => kv,
            Err(e) => {
                bad = Some(MvccError::corrupt(k, format!("undecodable key-value: {e}")));
                return false;
            }
        };
        let ev = if is_tombstone(k) {
            mvccpb::Event {
                r#type: event_type::DELETE,
                kv: Some(mvccpb::KeyValue {
                    key: kv.key,
                    mod_revision: rev.main,
                    ..Default::default()
                }),
                prev_kv: None,
            }
        } else {
            mvccpb::Event {
                r#type: event_type::PUT,
                kv: Some(kv),
                prev_kv: None,
            }
        };
        if is_new_group {
            groups.push((rev.main, Vec::new()));
        }
        if let Some((_, evs)) = groups.last_mut() {
            evs.push(ev);
        }
        count += 1;
        true
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok((groups, covered)),
    }
}
