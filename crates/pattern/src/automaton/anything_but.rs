//! `anything-but` matchers of one field: every entry accepts every value except the ones it excludes.
//!
//! Owns: [`AnythingButIndex`], the list of anything-but entries and, per form (strings, numbers,
//! ignore-case strings, prefixes, suffixes, wildcards), an index from excluded operand to the entries
//! that exclude it. A lookup finds the few excluding entries and reports all the others, so its cost is
//! the size of the answer plus the exclusions hit, never a test of every entry against the value.
//! Promise: an entry is reported for a value exactly when `eval::accepts` holds for its matcher.

use super::FxMap;
use super::affix::{AffixIndex, End};
use super::glob::GlobIndex;
use super::values::{Scalar, ValueScratch};
use crate::ast::AnythingBut;

#[derive(Debug, Clone)]
pub struct AnythingButIndex {
    /// Per entry, the condition it belongs to.
    conds: Vec<u32>,
    strings: FxMap<Box<str>, Vec<u32>>,
    numbers: FxMap<i64, Vec<u32>>,
    folded: FxMap<Box<[u8]>, Vec<u32>>,
    prefixes: AffixIndex,
    suffixes: AffixIndex,
    globs: GlobIndex,
}

impl AnythingButIndex {
    pub fn new() -> Self {
        AnythingButIndex {
            conds: Vec::new(),
            strings: FxMap::default(),
            numbers: FxMap::default(),
            folded: FxMap::default(),
            prefixes: AffixIndex::new(End::Start),
            suffixes: AffixIndex::new(End::Finish),
            globs: GlobIndex::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.conds.is_empty()
    }

    pub fn insert(&mut self, a: &AnythingBut, cond: u32) {
        let e = self.conds.len() as u32;
        self.conds.push(cond);
        match a {
            AnythingBut::Strings(v) => {
                for s in v {
                    self.strings.entry(s.as_str().into()).or_default().push(e);
                }
            }
            AnythingBut::Numbers(v) => {
                for n in v {
                    if let Some(c) = n.cmp {
                        self.numbers.entry(c).or_default().push(e);
                    }
                }
            }
            AnythingBut::IgnoreCase(v) => {
                for s in v {
                    self.folded.entry(s.as_bytes().into()).or_default().push(e);
                }
            }
            AnythingBut::Prefixes(v) => {
                for p in v {
                    self.prefixes.insert(p.as_bytes(), e);
                }
            }
            AnythingBut::Suffixes(v) => {
                for p in v {
                    self.suffixes.insert(p.as_bytes(), e);
                }
            }
            AnythingBut::Wildcards(v) => {
                for w in v {
                    self.globs.insert(w, e);
                }
            }
        }
    }

    /// Pushes the condition of every entry that accepts the value.
    pub fn eval(&self, v: &Scalar, cmp: Option<i64>, tmp: &mut ValueScratch, out: &mut Vec<u32>) {
        let ex = &mut tmp.excluded;
        ex.clear();
        match v {
            Scalar::Str(s) => {
                if let Some(v) = self.strings.get(*s) {
                    ex.extend_from_slice(v);
                }
                if !self.folded.is_empty()
                    && let Some(v) = self.folded.get(tmp.folded.of(s))
                {
                    ex.extend_from_slice(v);
                }
                self.prefixes
                    .each(s.as_bytes(), |v| ex.extend_from_slice(v));
                self.suffixes
                    .each(s.as_bytes(), |v| ex.extend_from_slice(v));
                if !self.globs.is_empty() {
                    self.globs.each(s.as_bytes(), &mut tmp.glob, |e| ex.push(e));
                }
            }
            Scalar::Num(_) => {
                if let Some(v) = cmp.and_then(|c| self.numbers.get(&c)) {
                    ex.extend_from_slice(v);
                }
            }
            _ => {}
        }
        if ex.is_empty() {
            out.extend_from_slice(&self.conds);
            return;
        }
        ex.sort_unstable();
        ex.dedup();
        let mut skip = ex.iter().peekable();
        for (e, &c) in self.conds.iter().enumerate() {
            if skip.peek() == Some(&&(e as u32)) {
                skip.next();
                continue;
            }
            out.push(c);
        }
    }
}
