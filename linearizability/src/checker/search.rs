//! The Wing–Gong/Lowe depth-first search for one partition.
//!
//! Owns: the event list (calls and returns as a doubly linked list with O(1) unlink/relink),
//! backtracking, pruning through the visited-configuration cache, the deadline, and recording
//! the longest partial linearization. Must never allocate per search step once warmed up (all
//! buffers are reused), and must never interpret operations except through `Model::step`.
//!
//! Unknown-outcome operations have an infinite return time. They are kept out of the event list
//! and tried only after the known-outcome candidates (earliest call first, or latest first if
//! the model asks, see `Model::unknown_recent_first`); an unknown operation whose effect would
//! leave the state unchanged is never placed, and the search succeeds as soon as every
//! known-outcome operation is placed (the remaining unknown ones go after the end, where the
//! model contract guarantees they can be answered).
//!
//! Read-only fits are placed without a choice point. If a known-outcome candidate never changes
//! a state in which it is legal (`Model::never_changes_state`) and fits here, placing it now is
//! never wrong: given any linearization from this configuration that places it later, it left
//! the state unchanged there too, so moving it to the front keeps every other operation at the
//! same state, and it adds no real-time constraint (it is a candidate, so nothing unplaced
//! returned before its call). An operation that merely leaves *this* state unchanged (a write
//! of the value already there) is not enough: placed later, it would change what follows. So
//! when such a placement fails, the configuration fails, and backtracking tries no other
//! candidate there.
//! Without this, a search that backtracks over a long prefix enumerates every subset of the
//! concurrent reads at each revision.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::tables::{Cache, Interner, U64Map};
use super::{LinStep, PartitionReport, SearchStats, StopReason, Verdict};
use crate::fxhash::mix;
use crate::history::Operation;
use crate::model::Model;

const NONE: u32 = u32::MAX;

/// Which candidates the cursor is walking: known operations in event order, then
/// unknown-outcome ones with a deadline (`Model::unknown_deadline`) earliest deadline first,
/// then the other unknown-outcome ones. Every candidate is tried once, only the order changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Known,
    Deadline,
    Unknown,
}

/// A placed operation on the search stack.
#[derive(Clone, Copy)]
struct Frame {
    /// Known-operation index, or `nk + j` for unknown operation `j`.
    op: u32,
    /// The state before the operation.
    prev_sid: u32,
    /// Which alternative of the operation's transition was taken.
    alt: u32,
    /// Cache entry of the configuration after it.
    entry: u32,
    /// Highest linearized known index before it.
    prev_max: u32,
    /// Frontier time when an unknown operation was placed.
    front: u64,
    /// A read-only known operation placed without a choice point (see the module doc):
    /// backtracking past it tries no other candidate at its level.
    forced: bool,
}

/// Static, per-partition event structure.
struct Events {
    /// Number of known-outcome operations.
    nk: usize,
    /// Partition-local operation index of known op `k` / unknown op `j` (at `nk + j`).
    local: Vec<usize>,
    /// Event list of known operations: node 0 is the sentinel, nodes `1..` are the calls and
    /// returns in time order (calls first on ties); `call_node` / `ret_node` map ops to nodes.
    next: Vec<u32>,
    prev: Vec<u32>,
    node_op: Vec<u32>,
    node_is_ret: Vec<bool>,
    node_time: Vec<u64>,
    call_node: Vec<u32>,
    ret_node: Vec<u32>,
    /// Unknown list: node 0 sentinel, node `1 + j` is unknown op `j` (sorted by call time).
    u_next: Vec<u32>,
    u_prev: Vec<u32>,
    u_call: Vec<u64>,
    /// Gate bit of each unknown node (`1 << gate`, 0 when ungated; see `Model::unknown_gate`).
    u_gate: Vec<u64>,
    /// Operations with a progress bound (known ones by `Model::progress_bound`, unknown ones
    /// by `Model::unknown_deadline`), as a list sorted by bound: node 0 is the sentinel, node
    /// `1 + c` is candidate `c` (known op `k` at `k`, unknown op `j` at `nk + j`);
    /// `bound[c] == i64::MAX` means no bound (not listed).
    b_next: Vec<u32>,
    b_prev: Vec<u32>,
    bound: Vec<i64>,
    /// Unknown operations with a deadline, sorted by it: node 0 is the sentinel, node `1 + j`
    /// is unknown op `j`.
    d_next: Vec<u32>,
    d_prev: Vec<u32>,
}

impl Events {
    fn build<I, O>(
        ops: &[&Operation<I, O>],
        bound_of: impl Fn(&Operation<I, O>) -> Option<i64>,
        deadline_of: impl Fn(&Operation<I, O>) -> Option<i64>,
        gate_of: impl Fn(&Operation<I, O>) -> Option<u8>,
    ) -> Events {
        let mut known: Vec<usize> = Vec::new();
        let mut unknown: Vec<usize> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if op.output.is_some() {
                known.push(i);
            } else {
                unknown.push(i);
            }
        }
        known.sort_by_key(|&i| (ops[i].call, i));
        unknown.sort_by_key(|&i| (ops[i].call, i));
        let nk = known.len();
        // (time, is_ret, k)
        let mut evs: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * nk);
        for (k, &i) in known.iter().enumerate() {
            let op = ops[i];
            evs.push((op.call, false, k as u32));
            evs.push((op.ret.max(op.call), true, k as u32));
        }
        evs.sort_unstable();
        let n = evs.len() + 1;
        let mut e = Events {
            nk,
            local: known.iter().chain(unknown.iter()).copied().collect(),
            next: (0..n as u32).map(|x| (x + 1) % n as u32).collect(),
            prev: (0..n as u32)
                .map(|x| (x + n as u32 - 1) % n as u32)
                .collect(),
            node_op: vec![NONE; n],
            node_is_ret: vec![false; n],
            node_time: vec![0; n],
            call_node: vec![0; nk],
            ret_node: vec![0; nk],
            u_next: Vec::new(),
            u_prev: Vec::new(),
            u_call: vec![0],
            u_gate: vec![0],
            b_next: Vec::new(),
            b_prev: Vec::new(),
            bound: Vec::new(),
            d_next: Vec::new(),
            d_prev: Vec::new(),
        };
        for (pos, &(t, is_ret, k)) in evs.iter().enumerate() {
            let node = pos + 1;
            e.node_op[node] = k;
            e.node_is_ret[node] = is_ret;
            e.node_time[node] = t;
            if is_ret {
                e.ret_node[k as usize] = node as u32;
            } else {
                e.call_node[k as usize] = node as u32;
            }
        }
        let m = unknown.len() + 1;
        e.u_next = (0..m as u32).map(|x| (x + 1) % m as u32).collect();
        e.u_prev = (0..m as u32)
            .map(|x| (x + m as u32 - 1) % m as u32)
            .collect();
        e.u_call.extend(unknown.iter().map(|&i| ops[i].call));
        e.u_gate.extend(
            unknown
                .iter()
                .map(|&i| gate_of(ops[i]).filter(|&g| g < 64).map_or(0, |g| 1u64 << g)),
        );
        e.bound = known
            .iter()
            .map(|&i| bound_of(ops[i]))
            .chain(unknown.iter().map(|&i| deadline_of(ops[i])))
            .map(|b| b.unwrap_or(i64::MAX))
            .collect();
        let all = e.bound.len();
        let mut by_bound: Vec<u32> = (0..all as u32)
            .filter(|&k| e.bound[k as usize] != i64::MAX)
            .collect();
        by_bound.sort_by_key(|&k| (e.bound[k as usize], k));
        e.b_next = vec![0; all + 1];
        e.b_prev = vec![0; all + 1];
        let mut last = 0u32;
        for &k in &by_bound {
            e.b_next[last as usize] = k + 1;
            e.b_prev[k as usize + 1] = last;
            last = k + 1;
        }
        e.b_next[last as usize] = 0;
        e.b_prev[0] = last;
        let nu = unknown.len();
        e.d_next = vec![0; nu + 1];
        e.d_prev = vec![0; nu + 1];
        let mut last = 0u32;
        for &c in by_bound.iter().filter(|&&c| c as usize >= nk) {
            let node = c - nk as u32 + 1;
            e.d_next[last as usize] = node;
            e.d_prev[node as usize] = last;
            last = node;
        }
        e.d_next[last as usize] = 0;
        e.d_prev[0] = last;
        e
    }

    /// The unplaced unknown operation (node) with the latest call at or before `front`, or 0.
    /// With `Model::unknown_recent_first`, unknown operations are tried from there backwards.
    #[inline]
    fn last_unknown_called_by(&self, front: u64, placed: &[u64]) -> u32 {
        // `u_call[0]` is the sentinel's; nodes 1.. are sorted by call time.
        let mut node = self.u_call[1..].partition_point(|&c| c <= front);
        while node > 0 && placed[(node - 1) / 64] & (1 << ((node - 1) % 64)) != 0 {
            node -= 1;
        }
        node as u32
    }

    /// Whether deadline-list node `node` (unknown op `node - 1`) was called by `front` and has
    /// its gate open (the deadline phase's candidates).
    #[inline]
    fn deadline_candidate(&self, node: u32, front: u64, closed_gates: u64) -> bool {
        self.u_call[node as usize] <= front && self.u_gate[node as usize] & closed_gates == 0
    }

    /// The smallest progress bound among unplaced operations.
    #[inline]
    fn min_bound(&self) -> i64 {
        match self.b_next[0] {
            0 => i64::MAX,
            n => self.bound[n as usize - 1],
        }
    }

    /// Removes known op `k` from the event and bound lists.
    #[inline]
    fn place_known(&mut self, k: usize) {
        Events::unlink(&mut self.next, &mut self.prev, self.call_node[k]);
        Events::unlink(&mut self.next, &mut self.prev, self.ret_node[k]);
        if self.bound[k] != i64::MAX {
            Events::unlink(&mut self.b_next, &mut self.b_prev, k as u32 + 1);
        }
    }

    /// Removes unknown op `j` from the unknown and bound lists.
    #[inline]
    fn place_unknown(&mut self, j: usize) {
        Events::unlink(&mut self.u_next, &mut self.u_prev, j as u32 + 1);
        let c = self.nk + j;
        if self.bound[c] != i64::MAX {
            Events::unlink(&mut self.b_next, &mut self.b_prev, c as u32 + 1);
            Events::unlink(&mut self.d_next, &mut self.d_prev, j as u32 + 1);
        }
    }

    /// Undoes [`Events::place_unknown`] (in LIFO order).
    #[inline]
    fn unplace_unknown(&mut self, j: usize) {
        let c = self.nk + j;
        if self.bound[c] != i64::MAX {
            Events::relink(&mut self.d_next, &mut self.d_prev, j as u32 + 1);
            Events::relink(&mut self.b_next, &mut self.b_prev, c as u32 + 1);
        }
        Events::relink(&mut self.u_next, &mut self.u_prev, j as u32 + 1);
    }

    /// Undoes [`Events::place_known`] (in LIFO order).
    #[inline]
    fn unplace_known(&mut self, k: usize) {
        if self.bound[k] != i64::MAX {
            Events::relink(&mut self.b_next, &mut self.b_prev, k as u32 + 1);
        }
        Events::relink(&mut self.next, &mut self.prev, self.ret_node[k]);
        Events::relink(&mut self.next, &mut self.prev, self.call_node[k]);
    }

    #[inline]
    fn unlink(next: &mut [u32], prev: &mut [u32], x: u32) {
        let (p, n) = (prev[x as usize], next[x as usize]);
        next[p as usize] = n;
        prev[n as usize] = p;
    }

    #[inline]
    fn relink(next: &mut [u32], prev: &mut [u32], x: u32) {
        let (p, n) = (prev[x as usize], next[x as usize]);
        next[p as usize] = x;
        prev[n as usize] = x;
    }
}

/// When a search gives up.
pub(super) struct Limits {
    /// The wall-clock safety cap: (instant, the cap it came from).
    pub(super) deadline: Option<(Instant, std::time::Duration)>,
    /// Configurations to try at most.
    pub(super) step_budget: Option<u64>,
    /// Bytes the cache may hold.
    pub(super) cache_limit_bytes: Option<usize>,
}

/// A report for a partition that was never searched (another one failed first).
pub(super) fn skipped<M: Model>(model: &M, part: &[usize]) -> PartitionReport<M::State> {
    PartitionReport {
        ops: part.to_vec(),
        verdict: Verdict::Unknown,
        linearization: Vec::new(),
        init: model.init(),
        failed_op: None,
        stopped: Some(StopReason::Cancelled),
        stats: SearchStats::default(),
    }
}

/// Searches for a linearization of the operations `part` (indices into `history`).
#[allow(clippy::disallowed_methods)] // Instant::now for the deadline only; this crate never runs simulated.
pub(super) fn search<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    part: &[usize],
    limits: &Limits,
    cancel: &AtomicBool,
) -> PartitionReport<M::State> {
    let ops: Vec<&Operation<M::Input, M::Output>> = part.iter().map(|&i| &history[i]).collect();
    let mut ev = Events::build(
        &ops,
        |op| {
            op.output
                .as_ref()
                .and_then(|o| model.progress_bound(&op.input, o))
        },
        |op| model.unknown_deadline(&op.input),
        |op| model.unknown_gate(&op.input),
    );
    let nk = ev.nk;
    // Known operations that never change a state they are legal in (see the module doc).
    let read_only: Vec<bool> = ev.local[..nk]
        .iter()
        .map(|&i| {
            ops[i]
                .output
                .as_ref()
                .is_some_and(|o| model.never_changes_state(&ops[i].input, o))
        })
        .collect();
    let recent_first = model.unknown_recent_first();
    let nu = ops.len() - nk;
    let kw = nk.div_ceil(64).max(1);
    let uw = nu.div_ceil(64);
    let zobrist: Vec<u64> = (0..nk as u64)
        .map(|k| mix(k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1))
        .collect();

    let mut states: Interner<M::State> = Interner::new();
    let init_sid = states.intern(model.init());
    // Progress of each interned state (i64::MIN when the model has no progress measure).
    let mut progress: Vec<i64> = vec![model.progress(states.get(init_sid)).unwrap_or(i64::MIN)];
    // Gates closed at each interned state (see `Model::closed_gates`).
    let mut closed: Vec<u64> = vec![model.closed_gates(states.get(init_sid))];
    let mut memo = U64Map::new();
    let mut alts: Vec<u32> = Vec::new();
    let mut scratch: Vec<M::State> = Vec::new();
    let mut cache = Cache::new(uw, limits.cache_limit_bytes.unwrap_or(usize::MAX));

    let mut kbits = vec![0u64; kw];
    let mut fbits = vec![0u64; uw];
    let mut zob = 0u64;
    let mut max_set = NONE;
    let mut sid = init_sid;
    let mut frames: Vec<Frame> = Vec::with_capacity(ops.len());
    let mut best: Vec<(u32, u32)> = Vec::new();
    // Entries of `best` known to equal the bottom of the stack (see `Snapshot`).
    let mut best_common = 0usize;
    let mut best_failed: Option<u32> = None;
    let mut stats = SearchStats::default();

    // Cursor over the current configuration's candidates.
    let mut phase = Phase::Known;
    let mut pos = ev.next[0];
    let mut alt = 0u32;
    let mut front = u64::MAX;
    let mut iterations = 0u64;
    let budget = limits.step_budget.unwrap_or(u64::MAX);
    let mut stopped = None;
    // Set after popping a forced frame: its level has no other candidate to try.
    let mut exhausted = false;

    let verdict = if nk == 0 {
        Verdict::Linearizable
    } else {
        loop {
            iterations += 1;
            if iterations > budget {
                stopped = Some(StopReason::StepBudget { steps: budget });
            } else if iterations & 1023 == 0 {
                if cancel.load(Ordering::Relaxed) {
                    stopped = Some(StopReason::Cancelled);
                } else if let Some((at, cap)) = limits.deadline {
                    if Instant::now() >= at {
                        stopped = Some(StopReason::WallClockCap { cap });
                    }
                }
            }
            if stopped.is_some() {
                if frames.len() > best.len() {
                    snapshot(&frames, sid, &mut best, &mut best_common);
                }
                break Verdict::Unknown;
            }
            // Next candidate operation, if any.
            let cand: u32 = if exhausted {
                exhausted = false;
                NONE
            } else if phase == Phase::Known {
                if pos != 0 && !ev.node_is_ret[pos as usize] {
                    ev.node_op[pos as usize]
                } else {
                    phase = Phase::Deadline;
                    front = if pos == 0 {
                        u64::MAX
                    } else {
                        ev.node_time[pos as usize]
                    };
                    pos = ev.d_next[0];
                    alt = 0;
                    continue;
                }
            } else if phase == Phase::Deadline {
                // Unknown operations that must take effect, earliest deadline first.
                let gates = closed[sid as usize];
                while pos != 0 && !ev.deadline_candidate(pos, front, gates) {
                    pos = ev.d_next[pos as usize];
                }
                if pos == 0 {
                    phase = Phase::Unknown;
                    pos = if recent_first {
                        ev.last_unknown_called_by(front, &fbits)
                    } else {
                        ev.u_next[0]
                    };
                    alt = 0;
                    continue;
                }
                nk as u32 + pos - 1
            } else {
                // Unknown operations whose gate is closed here cannot change the state, and
                // those with a deadline were tried first: pass over them.
                let gates = closed[sid as usize];
                while pos != 0
                    && (ev.u_gate[pos as usize] & gates != 0
                        || ev.bound[nk + pos as usize - 1] != i64::MAX)
                {
                    pos = if recent_first {
                        ev.u_prev[pos as usize]
                    } else {
                        ev.u_next[pos as usize]
                    };
                }
                if pos != 0 && (recent_first || ev.u_call[pos as usize] <= front) {
                    nk as u32 + pos - 1
                } else {
                    NONE
                }
            };

            if cand == NONE {
                // Every candidate of this configuration failed: backtrack.
                if frames.len() > best.len() || best_failed.is_none() {
                    snapshot(&frames, sid, &mut best, &mut best_common);
                    best_failed = Some(first_return(&ev));
                }
                let Some(f) = frames.pop() else {
                    break Verdict::NotLinearizable;
                };
                best_common = best_common.min(frames.len());
                cache.finish(f.entry);
                exhausted = f.forced;
                sid = f.prev_sid;
                max_set = f.prev_max;
                if (f.op as usize) < nk {
                    let k = f.op as usize;
                    kbits[k / 64] &= !(1 << (k % 64));
                    zob ^= zobrist[k];
                    ev.unplace_known(k);
                    phase = Phase::Known;
                    pos = ev.call_node[k];
                } else {
                    let j = f.op as usize - nk;
                    fbits[j / 64] &= !(1 << (j % 64));
                    ev.unplace_unknown(j);
                    if ev.bound[f.op as usize] != i64::MAX {
                        phase = Phase::Deadline;
                        pos = j as u32 + 1;
                    } else {
                        phase = Phase::Unknown;
                        pos = j as u32 + 1;
                    }
                    front = f.front;
                }
                alt = f.alt + 1;
                continue;
            }

            // Transitions of `cand` from `sid`, memoised.
            let key = (u64::from(sid) << 32) | u64::from(cand);
            let packed = match memo.get(key) {
                Some(v) => v,
                None => {
                    let op = ops[ev.local[cand as usize]];
                    model.step(states.get(sid), &op.input, op.output.as_ref(), &mut scratch);
                    let start = alts.len();
                    for s in scratch.drain(..) {
                        let id = states.intern(s);
                        if id as usize == progress.len() {
                            progress.push(model.progress(states.get(id)).unwrap_or(i64::MIN));
                            closed.push(model.closed_gates(states.get(id)));
                        }
                        if !alts[start..].contains(&id) {
                            alts.push(id);
                        }
                    }
                    let v = ((start as u64) << 32) | (alts.len() - start) as u64;
                    memo.insert_new(key, v);
                    v
                }
            };
            let (start, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as u32);

            let mut placed = false;
            while alt < len {
                let nsid = alts[start + alt as usize];
                let a = alt;
                alt += 1;
                let is_known = (cand as usize) < nk;
                if !is_known && nsid == sid {
                    continue;
                }
                // A read-only fit (see the module doc): placed without a choice point.
                let read_only_fit = is_known && len == 1 && nsid == sid && read_only[cand as usize];
                // Place the operation.
                let new_max = if is_known {
                    let k = cand as usize;
                    kbits[k / 64] |= 1 << (k % 64);
                    zob ^= zobrist[k];
                    ev.place_known(k);
                    if max_set == NONE {
                        cand
                    } else {
                        max_set.max(cand)
                    }
                } else {
                    let j = cand as usize - nk;
                    fbits[j / 64] |= 1 << (j % 64);
                    ev.place_unknown(j);
                    max_set
                };
                let head = ev.next[0];
                let entry = if progress[nsid as usize] > ev.min_bound() {
                    // Some unplaced operation can no longer be placed: that one is to blame if
                    // this is the deepest point reached.
                    if frames.len() + 1 > best.len() {
                        snapshot(&frames, sid, &mut best, &mut best_common);
                        best.push((cand, nsid));
                        best_failed = Some(ev.b_next[0] - 1);
                    }
                    None
                } else if head == 0 {
                    Some(NONE)
                } else {
                    let p = ev.node_op[head as usize];
                    let kslice: &[u64] = if new_max != NONE && new_max >= p {
                        &kbits[p as usize / 64..=new_max as usize / 64]
                    } else {
                        &[]
                    };
                    cache.visit(zob, nsid, p, kslice, &fbits)
                };
                if let Some(entry) = entry {
                    stats.visited += 1;
                    frames.push(Frame {
                        op: cand,
                        prev_sid: sid,
                        alt: a,
                        entry,
                        prev_max: max_set,
                        front,
                        forced: read_only_fit,
                    });
                    sid = nsid;
                    max_set = new_max;
                    placed = true;
                    break;
                }
                // Seen before: undo. For a read-only fit that means this whole configuration
                // fails (see the module doc), so no other candidate is tried.
                exhausted = read_only_fit;
                if is_known {
                    let k = cand as usize;
                    kbits[k / 64] &= !(1 << (k % 64));
                    zob ^= zobrist[k];
                    ev.unplace_known(k);
                } else {
                    let j = cand as usize - nk;
                    fbits[j / 64] &= !(1 << (j % 64));
                    ev.unplace_unknown(j);
                }
                if exhausted {
                    break;
                }
            }
            if placed {
                if ev.next[0] == 0 {
                    break Verdict::Linearizable;
                }
                phase = Phase::Known;
                pos = ev.next[0];
                alt = 0;
            } else {
                pos = match phase {
                    Phase::Known => ev.next[pos as usize],
                    Phase::Deadline => ev.d_next[pos as usize],
                    Phase::Unknown if recent_first => ev.u_prev[pos as usize],
                    Phase::Unknown => ev.u_next[pos as usize],
                };
                alt = 0;
            }
        }
    };

    if verdict == Verdict::Linearizable {
        snapshot(&frames, sid, &mut best, &mut best_common);
    }
    let failed_op = match verdict {
        Verdict::NotLinearizable => best_failed
            .filter(|&k| k != NONE)
            .map(|k| part[ev.local[k as usize]]),
        _ => None,
    };
    stats.states = states.len() as u64;
    stats.cache_bytes = cache.bytes() as u64;
    stats.cache_limited = cache.limited;
    let states = states.into_items();
    let linearization = best
        .iter()
        .map(|&(op, s)| LinStep {
            op: part[ev.local[op as usize]],
            state: states[s as usize].clone(),
        })
        .collect();
    PartitionReport {
        ops: part.to_vec(),
        verdict,
        linearization,
        init: states[init_sid as usize].clone(),
        failed_op,
        stopped,
        stats,
    }
}

/// Copies the stack as (operation, state after it) pairs. Only the part above `common` (the
/// entries of `out` that still equal the stack's bottom: every pop lowers it to the new
/// height, since a pop leaves the entries below unchanged) is copied, so recording each new
/// deepest point of a long search costs what changed, not the whole stack.
fn snapshot(frames: &[Frame], sid: u32, out: &mut Vec<(u32, u32)>, common: &mut usize) {
    out.truncate(*common);
    out.extend(frames.iter().enumerate().skip(*common).map(|(i, f)| {
        let after = frames.get(i + 1).map_or(sid, |n| n.prev_sid);
        (f.op, after)
    }));
    *common = frames.len();
}

/// The known operation whose return comes first among those not placed.
fn first_return(ev: &Events) -> u32 {
    let mut n = ev.next[0];
    while n != 0 && !ev.node_is_ret[n as usize] {
        n = ev.next[n as usize];
    }
    ev.node_op[n as usize]
}
