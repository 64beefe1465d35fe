//! The compiled many-rule machine behind [`crate::RuleSet`].
//!
//! Owns: [`Machine`], the facts compiled from every rule's branches, and the decision of which rules
//! an event matches. The pieces, one concept per file:
//! - `paths`: the field-path trie that tells the scanner which keys to descend into;
//! - `scan`: the single pass over the raw bytes that finds leaves at rule fields and their hits, over
//!   the event's `index` (64 bytes a block, classified by `simd`: AVX-512, AVX2, SSE2 or portable,
//!   chosen at run time); for the validating door the walk checks what it reads token by token and
//!   `validate` checks in bulk each container it skips; `bytes` has the scalar number grammar;
//! - `values`: per field, which conditions a leaf value satisfies (one index per operator family,
//!   with `affix` for prefixes/suffixes, `glob` for wildcards, `numbers` for ranges and
//!   `anything_but` for exclusions);
//! - `consistency`: choosing array-consistent leaves for a branch, as the reference does.
//!
//! How a match is decided: identical conditions (same path, same matchers) are shared across rules. Every
//! branch is filed under one *key* condition (its most selective condition that needs a leaf); a branch
//! is only examined when its key condition was hit, and then verified exactly as `eval::branch_matches`
//! does: each condition must have hits (or, with `exists: false`, an absent path), and the chosen leaves
//! must be array-consistent. Branches whose every condition may hold by absence are examined always.

mod affix;
mod anything_but;
mod bytes;
mod consistency;
mod glob;
mod index;
mod numbers;
mod paths;
pub mod scan;
pub mod simd;
mod validate;
mod values;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rustc_hash::FxHasher;

use crate::ast::{Branch, Condition, Matcher};
use paths::Paths;
use scan::Scratch;
use values::FieldIndex;

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// One condition shared by every branch that has it.
#[derive(Debug, Clone)]
struct Cond {
    field: u32,
    /// How unselective the condition's operators are (lower is better as a key).
    rank: u8,
    /// How many branches have this condition: rules are written about the values events carry, so a
    /// condition many rules share tends to be one many events satisfy.
    refs: u32,
    /// Branches filed under this condition as their key.
    keyed: Vec<CompiledBranch>,
}

#[derive(Debug, Clone, Copy)]
struct CompiledBranch {
    rule: u32,
    /// A second condition that needs a leaf (the most selective after the key), tested first to turn
    /// most failing candidates away without reading the condition list; `u32::MAX` when none.
    check: u32,
    /// Its conditions: `Machine::branch_conds[start..start + len]`.
    start: u32,
    len: u32,
}

#[derive(Debug, Clone)]
pub struct Machine {
    paths: Paths,
    fields: Vec<FieldIndex>,
    conds: Vec<Cond>,
    cond_ids: FxMap<String, u32>,
    /// (condition, field, may hold by absence) of every branch, one flat array.
    branch_conds: Vec<(u32, u32, bool)>,
    always: Vec<CompiledBranch>,
    alive: Vec<bool>,
    /// Whether some rule was killed (only then is `alive` consulted while matching).
    killed: bool,
}

fn rank(m: &Matcher) -> u8 {
    match m {
        Matcher::Exact(_) | Matcher::Ip(_) => 0,
        Matcher::EqualsIgnoreCase(_) => 1,
        Matcher::Prefix(_)
        | Matcher::Suffix(_)
        | Matcher::PrefixIgnoreCase(_)
        | Matcher::SuffixIgnoreCase(_) => 2,
        Matcher::Cidr(_) | Matcher::Wildcard(_) => 3,
        Matcher::Numeric(_) => 4,
        Matcher::Exists(_) => 6,
        Matcher::AnythingBut(_) => 7,
    }
}

/// How many times less selective an operator family is taken to be than an exact value.
fn weight(rank: u8) -> u64 {
    match rank {
        0 | 1 => 1,
        2 => 4,
        3 => 8,
        4 => 16,
        _ => 1024,
    }
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new()
    }
}

impl Machine {
    pub fn new() -> Machine {
        Machine {
            paths: Paths::new(),
            fields: Vec::new(),
            conds: Vec::new(),
            cond_ids: FxMap::default(),
            branch_conds: Vec::new(),
            always: Vec::new(),
            alive: Vec::new(),
            killed: false,
        }
    }

    fn cond(&mut self, c: &Condition) -> u32 {
        let key = format!("{}\u{0}{:?}", c.path, c.matchers);
        if let Some(&id) = self.cond_ids.get(&key) {
            return id;
        }
        let field = self.paths.field(&c.path);
        while self.fields.len() < self.paths.field_count() {
            self.fields.push(FieldIndex::new());
        }
        let id = self.conds.len() as u32;
        for m in &c.matchers {
            self.fields[field as usize].insert(m, id);
        }
        self.conds.push(Cond {
            field,
            rank: c.matchers.iter().map(rank).max().unwrap_or(0),
            refs: 0,
            keyed: Vec::new(),
        });
        self.cond_ids.insert(key, id);
        id
    }

    /// Adds the branches of rule number `rule` (rule numbers are dense, assigned by the caller).
    pub fn add(&mut self, rule: u32, branches: &[Branch]) {
        while self.alive.len() <= rule as usize {
            self.alive.push(false);
        }
        self.alive[rule as usize] = true;
        for b in branches {
            let mut conds: Vec<(u32, u32, bool)> = b
                .conditions
                .iter()
                .map(|c| {
                    let id = self.cond(c);
                    self.conds[id as usize].refs += 1;
                    (id, self.conds[id as usize].field, c.allows_absence())
                })
                .collect();
            // The key: the condition least likely to hold, estimated from its operators and from how
            // many branches share it.
            let key = conds
                .iter()
                .filter(|c| !c.2)
                .min_by_key(|c| {
                    let k = &self.conds[c.0 as usize];
                    (u64::from(k.refs) + 1) * weight(k.rank)
                })
                .map(|c| c.0);
            // The key goes first: when it is the reason the branch is examined, it needs no check.
            if let Some(k) = key
                && let Some(p) = conds.iter().position(|c| c.0 == k)
            {
                conds.swap(0, p);
            }
            let score = |c: &(u32, u32, bool)| {
                let k = &self.conds[c.0 as usize];
                (u64::from(k.refs) + 1) * weight(k.rank)
            };
            let check = conds
                .iter()
                .skip(usize::from(key.is_some()))
                .filter(|c| !c.2)
                .min_by_key(|c| score(c))
                .map_or(u32::MAX, |c| c.0);
            let branch = CompiledBranch {
                rule,
                check,
                start: self.branch_conds.len() as u32,
                len: conds.len() as u32,
            };
            self.branch_conds.extend_from_slice(&conds);
            match key {
                Some(k) => self.conds[k as usize].keyed.push(branch),
                None => self.always.push(branch),
            }
        }
    }

    /// Stops reporting a rule (its compiled facts stay until the owner rebuilds).
    pub fn kill(&mut self, rule: u32) {
        if let Some(a) = self.alive.get_mut(rule as usize) {
            *a = false;
            self.killed = true;
        }
    }

    /// Matches one event; on success `s.matched` holds the matching rule numbers, ascending, once each.
    /// `Ok(false)` when the event is JSON but not an object.
    /// With `trusted`, the bytes are known to be valid JSON and values no rule names are not validated.
    pub fn run(
        &self,
        event: &[u8],
        trusted: bool,
        s: &mut Scratch,
    ) -> Result<bool, scan::Rejected> {
        s.matched.clear();
        if !scan::scan(self, event, trusted, s)? {
            return Ok(false);
        }
        if s.any_dead {
            let leaves = &s.leaves;
            s.hits.retain(|&(_, l)| leaves[l as usize].alive);
        }
        // Per-event stamps: which conditions were hit (and where their leaves are), which fields are
        // present. Hits are grouped by condition with a counting pass, not a sort.
        s.epoch = s.epoch.wrapping_add(1);
        if s.epoch == 0 {
            s.cond_slot.iter_mut().for_each(|x| *x = (0, 0, 0));
            s.field_seen.iter_mut().for_each(|x| *x = 0);
            s.epoch = 1;
        }
        if s.cond_slot.len() < self.conds.len() {
            s.cond_slot.resize(self.conds.len(), (0, 0, 0));
        }
        if s.field_seen.len() < self.fields.len() {
            s.field_seen.resize(self.fields.len(), 0);
        }
        let epoch = s.epoch;
        s.groups.clear();
        for &(c, _) in &s.hits {
            let slot = &mut s.cond_slot[c as usize];
            if slot.0 != epoch {
                *slot = (epoch, s.groups.len() as u32, 0);
                s.groups.push((c, 0, 0));
            }
            s.groups[slot.1 as usize].2 += 1;
        }
        let mut offset = 0;
        for g in &mut s.groups {
            let n = g.2;
            g.1 = offset;
            g.2 = offset;
            offset += n;
        }
        s.pooled.clear();
        s.pooled.resize(s.hits.len(), 0);
        for &(c, l) in &s.hits {
            let g = &mut s.groups[s.cond_slot[c as usize].1 as usize];
            s.pooled[g.2 as usize] = l;
            g.2 += 1;
        }
        for &(c, a, z) in &s.groups {
            s.cond_slot[c as usize] = (epoch, a, z);
        }
        for l in &s.leaves {
            if l.alive {
                s.field_seen[l.field as usize] = epoch;
            }
        }
        for g in 0..s.groups.len() {
            let c = s.groups[g].0;
            for b in &self.conds[c as usize].keyed {
                self.try_branch(b, true, s);
            }
        }
        for b in &self.always {
            self.try_branch(b, false, s);
        }
        // Rule order (and no duplicates from several matching `$or` branches): by a bitmap over the
        // rules when many match, else by sorting.
        let words = self.alive.len().div_ceil(64);
        if s.matched.len() * 16 > words {
            if s.rule_bits.len() < words {
                s.rule_bits.resize(words, 0);
            }
            for &r in &s.matched {
                s.rule_bits[r as usize / 64] |= 1 << (r % 64);
            }
            s.matched.clear();
            for (w, bits) in s.rule_bits[..words].iter_mut().enumerate() {
                let mut b = *bits;
                *bits = 0;
                while b != 0 {
                    s.matched.push((w * 64) as u32 + b.trailing_zeros());
                    b &= b - 1;
                }
            }
        } else {
            s.matched.sort_unstable();
            s.matched.dedup();
        }
        Ok(true)
    }

    /// Verifies one branch; `key_hit` when it is examined because its key condition was hit.
    #[inline]
    fn try_branch(&self, br: &CompiledBranch, key_hit: bool, s: &mut Scratch) {
        if self.killed && !self.alive[br.rule as usize] {
            return;
        }
        if key_hit && br.len == 1 {
            // Its only condition is its key, which was hit.
            s.matched.push(br.rule);
            return;
        }
        let epoch = s.epoch;
        if br.check != u32::MAX && s.cond_slot[br.check as usize].0 != epoch {
            return;
        }
        let conds = &self.branch_conds[br.start as usize..(br.start + br.len) as usize];
        if s.trails.is_empty() {
            // No leaf sits in an array, so any hits are consistent: only presence matters.
            let rest = if key_hit { &conds[1..] } else { conds };
            for &(c, field, absent_ok) in rest {
                if s.cond_slot[c as usize].0 != epoch
                    && !(absent_ok && s.field_seen[field as usize] != epoch)
                {
                    return;
                }
            }
            s.matched.push(br.rule);
            return;
        }
        s.pools.clear();
        for &(c, field, absent_ok) in conds {
            let (e, a, z) = s.cond_slot[c as usize];
            if e == epoch {
                s.pools.push((a, z));
            } else if !(absent_ok && s.field_seen[field as usize] != epoch) {
                return;
            }
        }
        if consistency::choose(s) {
            s.matched.push(br.rule);
        }
    }
}
