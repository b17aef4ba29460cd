//! Watchers: List+Watch on a prefix from a start revision up to 100 before or after the
//! newest one (etcd robustness's watch traffic), resuming after every
//! interruption from the revision after the last event or progress notification seen (on the
//! next member), as clientv3 does, recording every response with events and every progress
//! notification. Each stream asks for progress every [`PROGRESS_EVERY`] (etcd robustness's
//! watch client does too) and for periodic notifications. A watch canceled because its start revision was compacted
//! resumes from the compact revision the server named (a new stream, held to what it promises
//! from there, as a reflector's re-list and watch is).
//!
//! Owns: the watcher loop and its [`WatchLog`]. Must never: skip or reorder what the server
//! sent (the checks in `checks::watch` judge it).

use super::{Stop, OP_TIMEOUT};
use crate::exec::{kv, prefix_end};
use crate::history::{now_us, Recorder, WatchBatch, WatchEvent, WatchLog};
use etcd_api::etcdserverpb as pb;
use etcd_api::mvccpb;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sim::ClientCtx;
use std::time::Duration;

/// Applies an update to this watcher's log.
type LogFn<'a> = dyn Fn(&mut dyn FnMut(&mut WatchLog)) + 'a;

/// How often a waiting watcher looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// How often a stream asks for a progress notification.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// What a watcher watches and how.
#[derive(Debug, Clone)]
pub struct Watcher {
    /// Watcher id.
    pub id: u64,
    /// Watched prefix.
    pub prefix: &'static str,
    /// Members it may use.
    pub members: Vec<String>,
    /// Restart from an older revision every 1-2 s.
    pub rewind: bool,
    /// Ask for previous key-values.
    pub prev_kv: bool,
    /// `noput` or `nodelete`, if any.
    pub filter: Option<&'static str>,
    /// Ask for a progress notification every [`PROGRESS_EVERY`].
    pub asks_progress: bool,
}

/// Runs watcher `w` (first on member `first`) until `stop`.
pub async fn run(
    cx: ClientCtx,
    w: Watcher,
    first: String,
    mut rng: ChaCha8Rng,
    rec: Recorder,
    stop: Stop,
) {
    let Watcher {
        id,
        prefix,
        members,
        rewind,
        prev_kv,
        filter,
        asks_progress,
    } = w;
    let shape = Shape {
        prev_kv,
        filter,
        asks_progress,
    };
    let slot = {
        let mut w = rec.watches.borrow_mut();
        w.push(WatchLog {
            watcher: id,
            prefix: prefix.to_string(),
            prev_kv,
            filter: filter.map(str::to_string),
            ..Default::default()
        });
        w.len() - 1
    };
    let log = |f: &mut dyn FnMut(&mut WatchLog)| {
        if let Some(l) = rec.watches.borrow_mut().get_mut(slot) {
            f(l)
        }
    };
    // Let some history accumulate, then pick a start revision at random in it.
    tokio::time::sleep(Duration::from_millis(rng.gen_range(500..3000))).await;
    let mut at = members.iter().position(|m| *m == first).unwrap_or(0);
    let mut next_rev = 0i64;
    while !stop.stopped() && next_rev == 0 {
        let member = &members[at % members.len()];
        if let Ok(mut c) = cx.client(member) {
            let list = c.kv.range(pb::RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix).into_bytes(),
                count_only: true,
                ..Default::default()
            });
            if let Ok(Ok(r)) = tokio::time::timeout(OP_TIMEOUT, list).await {
                let header = r.into_inner().header;
                let current = header.map(|h| h.revision).unwrap_or(1).max(1);
                next_rev = offset_revision(current, &mut rng);
                log(&mut |l| l.start_revision = next_rev);
                break;
            }
        }
        at += 1;
        tokio::time::sleep(POLL).await;
    }
    while !stop.stopped() {
        let member = members[at % members.len()].clone();
        let until = rewind.then(|| {
            tokio::time::Instant::now() + Duration::from_millis(rng.gen_range(1_000..2_000))
        });
        let reason = watch_once(
            &cx,
            &member,
            prefix,
            shape,
            &mut next_rev,
            &log,
            (&stop, until),
        )
        .await;
        if reason.as_deref() == Some(REWIND) {
            next_rev = offset_revision(next_rev - 1, &mut rng);
        }
        if let Some(reason) = reason {
            log(&mut |l| l.interruptions.push(format!("{member}: {reason}")));
            at += 1;
            tokio::time::sleep(POLL).await;
        }
    }
}

/// How far from the newest revision it knows a watcher starts (etcd robustness's
/// `RevisionOffsetRange` of -100..100: a stream from the past, or one waiting for the future).
const REVISION_OFFSET: std::ops::RangeInclusive<i64> = -100..=100;

/// A start revision `REVISION_OFFSET` away from `newest` (at least 1).
fn offset_revision(newest: i64, rng: &mut ChaCha8Rng) -> i64 {
    (newest + rng.gen_range(REVISION_OFFSET)).max(1)
}

/// Why a rewinding watcher ended a stream on purpose.
const REWIND: &str = "rewind to an older revision";

/// What a watch stream asks for besides its range.
#[derive(Debug, Clone, Copy)]
struct Shape {
    prev_kv: bool,
    filter: Option<&'static str>,
    asks_progress: bool,
}

/// One watch stream; returns why it ended (`None`: asked to stop). With a deadline (`until`),
/// it ends then with [`REWIND`].
async fn watch_once(
    cx: &ClientCtx,
    member: &str,
    prefix: &str,
    shape: Shape,
    next_rev: &mut i64,
    log: &LogFn<'_>,
    (stop, until): (&Stop, Option<tokio::time::Instant>),
) -> Option<String> {
    let mut c = match cx.client(member) {
        Ok(c) => c,
        Err(e) => return Some(e),
    };
    use pb::watch_create_request::FilterType;
    let filters = match shape.filter {
        Some("noput") => vec![FilterType::Noput as i32],
        Some("nodelete") => vec![FilterType::Nodelete as i32],
        _ => Vec::new(),
    };
    let create = pb::WatchCreateRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: prefix_end(prefix).into_bytes(),
        start_revision: *next_rev,
        prev_kv: shape.prev_kv,
        filters,
        progress_notify: true,
        ..Default::default()
    };
    let create = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)),
    };
    // `requests` stays alive with the stream: dropping it would close our side.
    let mut stream = match tokio::time::timeout(OP_TIMEOUT, c.watch(create)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Some(format!("watch: {}", e.message())),
        Err(_) => return Some("watch: timeout".into()),
    };
    let start = *next_rev;
    let mut stream_index = 0;
    log(&mut |l| {
        l.streams.push((now_us(), member.to_string(), start));
        stream_index = l.streams.len() - 1;
    });
    let mut progress_at = tokio::time::Instant::now() + PROGRESS_EVERY;
    loop {
        if stop.stopped() {
            return None;
        }
        let now = tokio::time::Instant::now();
        if until.is_some_and(|u| now >= u) {
            return Some(REWIND.into());
        }
        if shape.asks_progress && now >= progress_at {
            let ask = pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
                    pb::WatchProgressRequest {},
                )),
            };
            // A full request queue means the server is not reading: the next ask will do.
            let _ = stream.requests.try_send(ask);
            progress_at = now + PROGRESS_EVERY;
        }
        let msg = match tokio::time::timeout(POLL, stream.responses.message()).await {
            Err(_) => continue,
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return Some("stream closed".into()),
            Ok(Err(e)) => return Some(format!("stream: {}", e.message())),
        };
        if msg.canceled {
            if msg.compact_revision > *next_rev {
                *next_rev = msg.compact_revision;
            }
            return Some(if msg.compact_revision > 0 {
                format!("canceled: compacted at {}", msg.compact_revision)
            } else {
                format!("canceled: {}", msg.cancel_reason)
            });
        }
        let header_revision = msg.header.map(|h| h.revision).unwrap_or(0);
        if msg.created {
            continue;
        }
        if msg.events.is_empty() {
            // A progress notification: clientv3 resumes after it (`nextRev = Header.Revision
            // + 1`, "current progress of watch; <= store revision").
            *next_rev = (*next_rev).max(header_revision + 1);
            let batch = WatchBatch {
                at_us: now_us(),
                member: member.to_string(),
                stream: stream_index,
                header_revision,
                events: Vec::new(),
                progress: true,
            };
            log(&mut |l| l.batches.push(batch.clone()));
            continue;
        }
        let events: Vec<WatchEvent> = msg
            .events
            .iter()
            .filter_map(|e| {
                e.kv.as_ref().map(|k| WatchEvent {
                    delete: e.r#type == mvccpb::event::EventType::Delete as i32,
                    kv: kv(k),
                    prev_kv: e.prev_kv.as_ref().map(kv),
                })
            })
            .collect();
        if let Some(last) = events.last() {
            *next_rev = (*next_rev).max(last.kv.mod_revision + 1);
        }
        let batch = WatchBatch {
            at_us: now_us(),
            member: member.to_string(),
            stream: stream_index,
            header_revision,
            events,
            progress: false,
        };
        log(&mut |l| l.batches.push(batch.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn watchers_start_up_to_100_revisions_either_side_of_the_newest() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let starts: Vec<i64> = (0..2000).map(|_| offset_revision(500, &mut rng)).collect();
        assert!(starts.iter().all(|r| (400..=600).contains(r)));
        assert!(starts.iter().any(|r| *r < 450) && starts.iter().any(|r| *r > 550));
        // Never before revision 1, even early in a run.
        assert!((0..500).all(|_| offset_revision(3, &mut rng) >= 1));
    }
}
