//! Array consistency: a branch holds only on leaves that sit, wherever they share an array, in the same
//! element of it (EventBridge's rule; `Field::consistent_with` in the reference).
//!
//! Owns: [`choose`], which decides whether one leaf can be picked from each pool of hits so that the
//! picks are pairwise consistent. Leaves outside any array are consistent with everything, so a pool
//! holding one is settled at once; only pools made entirely of array leaves are searched, fewest
//! candidates first, as the reference searches them.
//! Promise: the same answer as `eval::branch_matches`'s search over the same candidates.

use super::scan::Scratch;

fn consistent(s: &Scratch, a: u32, b: u32) -> bool {
    let (la, lb) = (s.leaves[a as usize], s.leaves[b as usize]);
    let ta = &s.trails[la.trail_start as usize..(la.trail_start + la.trail_len) as usize];
    let tb = &s.trails[lb.trail_start as usize..(lb.trail_start + lb.trail_len) as usize];
    ta.iter()
        .all(|(id, ix)| tb.iter().all(|(oid, oix)| oid != id || oix == ix))
}

/// Whether consistent leaves can be chosen from `s.pools` (ranges of `s.pooled`).
pub fn choose(s: &mut Scratch) -> bool {
    if s.trails.is_empty() {
        return true; // no leaf of this event sits in an array
    }
    // Settle pools that hold a leaf outside every array; keep the others.
    let mut open = 0;
    for p in 0..s.pools.len() {
        let (a, z) = s.pools[p];
        let free = s.pooled[a as usize..z as usize]
            .iter()
            .any(|&l| s.leaves[l as usize].trail_len == 0);
        if !free {
            s.pools[open] = s.pools[p];
            open += 1;
        }
    }
    s.pools.truncate(open);
    if open <= 1 {
        return true;
    }
    s.pools.sort_by_key(|&(a, z)| z - a);
    s.chosen.clear();
    search(s, 0)
}

fn search(s: &mut Scratch, depth: usize) -> bool {
    let Some(&(a, z)) = s.pools.get(depth) else {
        return true;
    };
    for h in a..z {
        let leaf = s.pooled[h as usize];
        if s.chosen.iter().all(|&c| consistent(s, c, leaf)) {
            s.chosen.push(leaf);
            if search(s, depth + 1) {
                return true;
            }
            s.chosen.pop();
        }
    }
    false
}
