//! The qualification plan: every item a release gate runs, its estimated cost, and the
//! deterministic slice of it a shard takes.
//!
//! Owns: the list of items for a seed count (the catalogue × seeds, every huntable defect on
//! its own small seed range, a determinism re-run per scenario, real-mode runs when asked), the
//! cost model that balances shards, the greedy slicing, and the plan's fingerprint that merging
//! compares. Must never: depend on anything but its inputs (no clock, no machine facts), so that
//! every shard computes the same plan and the same slices.

use crate::bugs::KNOWN_BUGS;
use crate::catalogue::{self, Kind, Scenario};
use crate::cli::Usage;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Seeds each defect is hunted over before it counts as not caught (the detection benchmark's
/// median is 1 to 2 seeds with its own scenario; the slowest needs up to about 6).
pub const DEFECT_SEEDS: u64 = 12;

/// Seeds per scenario in real mode (member processes are slow: about 20 s a run).
pub const REAL_SEEDS: u64 = 2;

/// Scenarios that run in real mode: every fault of theirs is one real mode applies (kill -9,
/// SIGSTOP, proxies, operator requests), and they add or retire no member.
pub const REAL_SCENARIOS: &[&str] = &[
    "baseline",
    "partition-leader",
    "partition-one-way",
    "kill-under-load",
    "pause-member",
];

/// What an item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// A catalogue scenario on one seed, in the simulation: must pass.
    Run,
    /// A known-bug defect switched on in its own scenario, seed by seed over its range: must be
    /// caught with one of the bug's signatures.
    Defect,
    /// A scenario and seed the plan also runs as a [`ItemKind::Run`], run again: must give the
    /// same trace hash (checked wherever both ended up, at the latest when shards are merged).
    Determinism,
    /// A scenario on one seed in real mode against our server: must pass.
    Real,
}

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Stable name: `run/baseline/3`, `defect/skip-read-index`, `determinism/baseline/3`,
    /// `real/baseline/0`.
    pub id: String,
    /// What it does.
    pub kind: ItemKind,
    /// The scenario.
    pub scenario: String,
    /// The seed (for a defect: the first of its range).
    pub seed: u64,
    /// The defect (defect items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defect: Option<String>,
    /// Estimated cost in abstract units (about a millisecond of one core on this project's
    /// reference machine); only its proportions matter.
    pub cost: u64,
}

/// What a plan is made of: merging refuses shards whose inputs differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanInputs {
    /// Seeds per scenario (`--seeds N`: seeds 0..N).
    pub seeds: u64,
    /// Whether real-mode runs are in the plan.
    pub real: bool,
    /// Only these scenarios (`--scenario`, repeatable); empty: the whole catalogue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<String>,
    /// Whether the defect hunts are in the plan (`--no-defects` leaves them out).
    pub defects: bool,
}

/// The estimated cost of one run of `sc`: simulated seconds × (requests, watchers, members),
/// twice for a scenario with a healthy twin, and the sweep's steps for the disk sweep. Fitted
/// on the catalogue's wall times (about 1 unit per 1.4 ms of one core).
pub fn run_cost(sc: &Scenario) -> u64 {
    let seconds = sc.duration.as_secs_f64();
    let w = &sc.workload;
    let load = f64::from(w.rate) + 25.0 * w.watchers as f64 + 60.0 * sc.members as f64;
    let mut cost = seconds * load;
    if sc.expect.healthy_twin_stable {
        cost *= 2.0;
    }
    if sc.kind == Kind::DiskSweep {
        cost *= 6.0;
    }
    cost.round().max(1.0) as u64
}

impl PlanInputs {
    /// The scenarios of the plan, refusing an unknown name.
    fn scenarios(&self) -> Result<Vec<Scenario>, Usage> {
        if self.scenarios.is_empty() {
            return Ok(catalogue::catalogue());
        }
        self.scenarios
            .iter()
            .map(|n| {
                catalogue::find(n).ok_or_else(|| {
                    Usage(format!(
                        "unknown scenario {n:?}; valid: {}",
                        catalogue::names().join(", ")
                    ))
                })
            })
            .collect()
    }

    /// Every item, in a fixed order.
    pub fn items(&self) -> Result<Vec<Item>, Usage> {
        if self.seeds == 0 {
            return Err(Usage("--seeds must be at least 1".into()));
        }
        let scenarios = self.scenarios()?;
        let mut items = Vec::new();
        for sc in &scenarios {
            let cost = run_cost(sc);
            for seed in 0..self.seeds {
                items.push(Item {
                    id: format!("run/{}/{seed}", sc.name),
                    kind: ItemKind::Run,
                    scenario: sc.name.to_string(),
                    seed,
                    defect: None,
                    cost,
                });
            }
        }
        // One determinism re-run per scenario, its seed spread over the range by the
        // scenario's position so that the sample is not always seed 0.
        for (i, sc) in scenarios.iter().enumerate() {
            let seed = (i as u64 * 7) % self.seeds;
            items.push(Item {
                id: format!("determinism/{}/{seed}", sc.name),
                kind: ItemKind::Determinism,
                scenario: sc.name.to_string(),
                seed,
                defect: None,
                cost: run_cost(sc),
            });
        }
        if self.defects {
            for bug in KNOWN_BUGS.iter().filter(|b| b.huntable) {
                let sc = catalogue::find(bug.scenario).ok_or_else(|| {
                    Usage(format!(
                        "defect {}: no scenario {}",
                        bug.defect, bug.scenario
                    ))
                })?;
                items.push(Item {
                    id: format!("defect/{}", bug.defect),
                    kind: ItemKind::Defect,
                    scenario: sc.name.to_string(),
                    seed: 0,
                    defect: Some(bug.defect.to_string()),
                    // Usually caught on the first or second seed.
                    cost: run_cost(&sc) * 2,
                });
            }
        }
        if self.real {
            for name in REAL_SCENARIOS {
                let Some(sc) = catalogue::find(name) else {
                    continue;
                };
                if !self.scenarios.is_empty() && !self.scenarios.iter().any(|s| s == name) {
                    continue;
                }
                for seed in 0..self.seeds.min(REAL_SEEDS) {
                    items.push(Item {
                        id: format!("real/{name}/{seed}"),
                        kind: ItemKind::Real,
                        scenario: name.to_string(),
                        seed,
                        defect: None,
                        // Wall time on processes: about 20 s whatever the scenario.
                        cost: 20 * run_cost(&sc),
                    });
                }
            }
        }
        Ok(items)
    }
}

/// `I/N`: shard `I` (0-based) of `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard (0..count).
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

impl Shard {
    /// The whole plan in one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N` (0 ≤ I < N).
    pub fn parse(s: &str) -> Result<Shard, Usage> {
        let bad = || {
            Usage(format!(
                "malformed shard {s:?}: use I/N with 0 <= I < N (I is 0-based, as \
                 JOB_COMPLETION_INDEX is)"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Assigns every item to a shard: the longest first, each to the shard with the least cost so
/// far (ties to the lowest index). Returns each item's shard, in the items' order.
pub fn assign(items: &[Item], shards: u32) -> Vec<u32> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[b].cost.cmp(&items[a].cost).then(a.cmp(&b)));
    let mut load = vec![0u64; shards.max(1) as usize];
    let mut out = vec![0u32; items.len()];
    for i in order {
        let (best, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(k, l)| (**l, *k))
            .unwrap_or((0, &0));
        load[best] += items[i].cost;
        out[i] = best as u32;
    }
    out
}

/// The items of one shard with their positions in the plan, in the plan's order.
pub fn slice(items: &[Item], shard: Shard) -> Vec<(usize, Item)> {
    assign(items, shard.count)
        .into_iter()
        .zip(items.iter().cloned().enumerate())
        .filter(|(s, _)| *s == shard.index)
        .map(|(_, it)| it)
        .collect()
}

/// A fingerprint of the whole plan (inputs and every item), the same in every shard.
pub fn fingerprint(inputs: &PlanInputs, items: &[Item]) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(inputs).unwrap_or_default());
    for it in items {
        h.update(it.id.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(seeds: u64) -> PlanInputs {
        PlanInputs {
            seeds,
            real: false,
            scenarios: Vec::new(),
            defects: true,
        }
    }

    #[test]
    fn shards_partition_the_plan_and_balance_its_cost() {
        let items = inputs(20).items().unwrap();
        let n = 8;
        let mut seen = std::collections::BTreeSet::new();
        let mut costs = Vec::new();
        for index in 0..n {
            let part = slice(&items, Shard { index, count: n });
            costs.push(part.iter().map(|(_, i)| i.cost).sum::<u64>());
            for (_, it) in part {
                assert!(seen.insert(it.id.clone()), "{} in two shards", it.id);
            }
        }
        assert_eq!(seen.len(), items.len(), "every item in one shard");
        let (lo, hi) = (costs.iter().min().unwrap(), costs.iter().max().unwrap());
        assert!(
            *hi as f64 <= *lo as f64 * 1.1,
            "shard costs {costs:?} differ by more than 10%"
        );
    }

    #[test]
    fn the_plan_and_its_fingerprint_depend_only_on_the_inputs() {
        let a = inputs(3);
        let (ia, ib) = (a.items().unwrap(), a.items().unwrap());
        assert_eq!(ia, ib);
        assert_eq!(fingerprint(&a, &ia), fingerprint(&a, &ib));
        let b = inputs(4);
        assert_ne!(fingerprint(&a, &ia), fingerprint(&b, &b.items().unwrap()));
        // Every determinism re-run repeats a seed the plan runs.
        for d in ia.iter().filter(|i| i.kind == ItemKind::Determinism) {
            let twin = format!("run/{}/{}", d.scenario, d.seed);
            assert!(ia.iter().any(|i| i.id == twin), "{} has no {twin}", d.id);
        }
    }

    #[test]
    fn shards_are_parsed_zero_based() {
        assert_eq!(Shard::parse("0/4").unwrap(), Shard { index: 0, count: 4 });
        assert_eq!(Shard::parse("3/4").unwrap(), Shard { index: 3, count: 4 });
        for bad in ["4/4", "1/0", "a/2", "1", "-1/2", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
