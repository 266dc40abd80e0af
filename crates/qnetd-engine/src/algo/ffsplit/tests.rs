//! The stability classes against the reference's pairwise check, on random
//! membership lists.

use super::*;
use crate::core::ClientId;
use crate::proto::{DecisionAlgorithm, TieBreaker};

/// The reference's pairwise check, as it was written before the
/// classes: every ordered pair, subset by linear search.
fn reference_is_stable(members: &[Member], input: &Input<'_>) -> bool {
    let subset = |x: &[NodeInfo], y: &[NodeInfo]| x.iter().all(|n| in_list(y, n.node_id));
    let mut parts = participants(members, input);
    if let Some(first) = parts.next().and_then(|i| view(members, i, input)) {
        for j in parts {
            let b = view(members, j, input).unwrap();
            if !subset(first.config, b.config) || !subset(b.config, first.config) {
                return false;
            }
        }
    }
    for i in participants(members, input) {
        let a = view(members, i, input).unwrap();
        for n in a.membership {
            let Some(j) = members.iter().position(|m| m.node_id == n.node_id) else {
                continue;
            };
            if input.leaving && j == input.client {
                continue;
            }
            let b = view(members, j, input).unwrap();
            if a.ring_id != b.ring_id || !subset(a.membership, b.membership) {
                return false;
            }
        }
    }
    true
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A membership list as the handlers store it: empty (none yet), or
/// holding the member's own node id, with other nodes and duplicates.
fn list(rng: &mut Rng, own: u32) -> Vec<NodeInfo> {
    if rng.below(8) == 0 {
        return Vec::new();
    }
    let mut ids = Vec::from([own]);
    for id in 1..=6 {
        if rng.below(3) > 0 {
            ids.push(id);
        }
    }
    let len = ids.len();
    ids.rotate_left(rng.below(len as u64) as usize);
    ids.into_iter().map(NodeInfo::new).collect()
}

#[test]
fn classes_agree_with_the_pairwise_check() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut stable, mut unstable) = (0, 0);
    for _ in 0..20_000 {
        let count = 1 + rng.below(4) as u32;
        let mut ids: Vec<u32> = (1..=6).collect();
        ids.rotate_left(rng.below(6) as usize);
        let mut ids: Vec<u32> = ids.into_iter().take(count as usize).collect();
        ids.sort_unstable();
        let configs = [
            (1..=6).map(NodeInfo::new).collect::<Vec<_>>(),
            (1..=5).map(NodeInfo::new).collect(),
        ];
        let members: Vec<Member> = ids
            .iter()
            .map(|&id| {
                let mut m = Member::new(
                    ClientId::new(id, 0),
                    id,
                    DecisionAlgorithm::Ffsplit,
                    TieBreaker {
                        mode: TieBreakerMode::Lowest,
                        node_id: 0,
                    },
                    RingId {
                        node_id: 1,
                        seq: rng.below(2),
                    },
                    true,
                );
                m.config_list = configs[usize::from(rng.below(6) == 0)].clone();
                m.membership_list = list(&mut rng, id);
                m
            })
            .collect();
        let client = rng.below(u64::from(count)) as usize;
        let own = members[client].node_id;
        let new_list = list(&mut rng, own);
        let new_list = if new_list.is_empty() {
            Vec::from([NodeInfo::new(own)])
        } else {
            new_list
        };
        let input = Input {
            client,
            leaving: rng.below(4) == 0,
            ring_id: RingId {
                node_id: 1,
                seq: rng.below(2),
            },
            config: None,
            membership: (rng.below(2) == 0).then_some(&new_list[..]),
            heuristics: Heuristics::Undefined,
        };
        let want = reference_is_stable(&members, &input);
        let mut scratch = Scratch::default();
        assert_eq!(
            is_membership_stable(&members, &input, &mut scratch, &mut 0),
            want,
            "{members:#?} {input:?}"
        );
        if want {
            stable += 1;
        } else {
            unstable += 1;
        }
    }
    assert!(stable > 1000 && unstable > 1000, "{stable} / {unstable}");
}
