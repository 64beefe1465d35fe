//! Wildcard operands compiled for linear-time matching, and an index that picks, for a value, only the
//! wildcards that can match it.
//!
//! Owns: [`Glob`], a wildcard as a bit-parallel NFA (Shift-And with self-loops for `*`): one pass over
//! the value, `O(len × ⌈literals/64⌉)` whatever the pattern, so no input can make it backtrack; and
//! [`GlobIndex`], which files each wildcard under its literal text before the first `*` (or, when it
//! starts with `*`, after the last `*`), so a lookup verifies only wildcards whose anchors fit the value.
//! Promise: `Glob::matches` agrees with `crate::wildcard::Wildcard::matches` on every input.

use super::affix::{AffixIndex, End};
use crate::wildcard::{Token, Wildcard};

/// A wildcard as a bit-parallel automaton over its literal bytes.
#[derive(Debug, Clone)]
pub struct Glob {
    /// Literal bytes before the first star (checked first, cheaply).
    head: Box<[u8]>,
    /// Literal bytes after the last star.
    tail: Box<[u8]>,
    /// Whether there is any star at all (if not, the value must equal `head`).
    starred: bool,
    /// The part between `head` and `tail`, as a Shift-And automaton (states = literals matched so far).
    middle: ShiftAnd,
}

#[derive(Debug, Clone)]
struct ShiftAnd {
    /// Number of literal bytes; states are 0..=n.
    n: usize,
    words: usize,
    /// Byte → class; class 0 is "a byte no literal uses".
    class: Box<[u16; 256]>,
    /// Per class, `words` words: bit k+1 set when literal k is this byte.
    step: Vec<u64>,
    /// Bit k set when state k loops on any byte (a star follows the k-th literal).
    looping: Vec<u64>,
}

impl ShiftAnd {
    fn new(tokens: &[Token]) -> ShiftAnd {
        let literals: Vec<u8> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Byte(b) => Some(*b),
                Token::Star => None,
            })
            .collect();
        let n = literals.len();
        let words = (n + 1).div_ceil(64);
        let mut class = Box::new([0u16; 256]);
        let mut classes = 1usize;
        for &b in &literals {
            if class[b as usize] == 0 {
                class[b as usize] = classes as u16;
                classes += 1;
            }
        }
        let mut step = vec![0u64; classes * words];
        for (k, &b) in literals.iter().enumerate() {
            let c = class[b as usize] as usize;
            let bit = k + 1;
            step[c * words + bit / 64] |= 1 << (bit % 64);
        }
        let mut looping = vec![0u64; words];
        let mut k = 0;
        for t in tokens {
            match t {
                Token::Byte(_) => k += 1,
                Token::Star => looping[k / 64] |= 1 << (k % 64),
            }
        }
        ShiftAnd {
            n,
            words,
            class,
            step,
            looping,
        }
    }

    fn matches(&self, s: &[u8], state: &mut Vec<u64>) -> bool {
        let w = self.words;
        state.clear();
        state.resize(w, 0);
        state[0] = 1;
        for &b in s {
            let c = self.class[b as usize] as usize;
            let step = &self.step[c * w..c * w + w];
            let mut carry = 0u64;
            let mut any = 0u64;
            for i in 0..w {
                let d = state[i];
                let shifted = (d << 1) | carry;
                carry = d >> 63;
                let next = (shifted & step[i]) | (d & self.looping[i]);
                state[i] = next;
                any |= next;
            }
            if any == 0 {
                return false;
            }
        }
        state[self.n / 64] & (1 << (self.n % 64)) != 0
    }
}

impl Glob {
    pub fn new(w: &Wildcard) -> Glob {
        let t = &w.tokens;
        let first_star = t.iter().position(|x| *x == Token::Star);
        let last_star = t.iter().rposition(|x| *x == Token::Star);
        let bytes = |ts: &[Token]| -> Box<[u8]> {
            ts.iter()
                .filter_map(|x| match x {
                    Token::Byte(b) => Some(*b),
                    Token::Star => None,
                })
                .collect()
        };
        match (first_star, last_star) {
            (Some(f), Some(l)) => Glob {
                head: bytes(&t[..f]),
                tail: bytes(&t[l + 1..]),
                starred: true,
                middle: ShiftAnd::new(&t[f..=l]),
            },
            _ => Glob {
                head: bytes(t),
                tail: Box::new([]),
                starred: false,
                middle: ShiftAnd::new(&[]),
            },
        }
    }

    pub fn head(&self) -> &[u8] {
        &self.head
    }

    pub fn tail(&self) -> &[u8] {
        &self.tail
    }

    /// Whether the whole value matches. `state` is scratch space.
    pub fn matches(&self, s: &[u8], state: &mut Vec<u64>) -> bool {
        if !self.starred {
            return s == &*self.head;
        }
        if s.len() < self.head.len() + self.tail.len()
            || !s.starts_with(&self.head)
            || !s.ends_with(&self.tail)
        {
            return false;
        }
        let mid = &s[self.head.len()..s.len() - self.tail.len()];
        if self.middle.n == 0 {
            return true; // only stars in between
        }
        self.middle.matches(mid, state)
    }
}

/// Many wildcards of one field, each with an entry number.
#[derive(Debug, Clone)]
pub struct GlobIndex {
    globs: Vec<(Glob, u32)>,
    /// Glob numbers by their literal head (those with a non-empty head).
    by_head: AffixIndex,
    /// Glob numbers by their literal tail (empty head, non-empty tail).
    by_tail: AffixIndex,
    /// Glob numbers with neither (`*...*`): always verified.
    loose: Vec<u32>,
}

impl GlobIndex {
    pub fn new() -> Self {
        GlobIndex {
            globs: Vec::new(),
            by_head: AffixIndex::new(End::Start),
            by_tail: AffixIndex::new(End::Finish),
            loose: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    pub fn insert(&mut self, w: &Wildcard, entry: u32) {
        let g = Glob::new(w);
        let n = self.globs.len() as u32;
        if !g.head().is_empty() {
            self.by_head.insert(g.head(), n);
        } else if !g.tail().is_empty() {
            self.by_tail.insert(g.tail(), n);
        } else {
            self.loose.push(n);
        }
        self.globs.push((g, entry));
    }

    /// Calls `f` with the entry of every wildcard that matches `s`.
    pub fn each(&self, s: &[u8], state: &mut Vec<u64>, mut f: impl FnMut(u32)) {
        let mut check = |ns: &[u32]| {
            for &n in ns {
                let (g, e) = &self.globs[n as usize];
                if g.matches(s, state) {
                    f(*e);
                }
            }
        };
        self.by_head.each(s, &mut check);
        self.by_tail.each(s, &mut check);
        check(&self.loose);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(p: &str, s: &str) {
        let w = Wildcard::parse(p).unwrap();
        let g = Glob::new(&w);
        assert_eq!(
            g.matches(s.as_bytes(), &mut Vec::new()),
            w.matches(s),
            "{p} on {s}"
        );
    }

    #[test]
    fn agrees_with_the_reference_glob() {
        let pats = [
            "", "*", "a", "a*", "*a", "a*b", "*a*", "a*b*c", "*ab*ab*", "x\\*y", "2*0*1*7", "VA*IL",
        ];
        let vals = [
            "", "a", "b", "ab", "aab", "abc", "acbc", "abab", "x*y", "xzy", "2607117", "VACSTWIL",
            "aXbXc",
        ];
        for p in pats {
            for v in vals {
                agree(p, v);
            }
        }
    }

    #[test]
    fn long_patterns_span_several_words() {
        let p = format!("{}b", "a*".repeat(70));
        let w = Wildcard::parse(&p).unwrap();
        let g = Glob::new(&w);
        let s = format!("{}b", "a".repeat(80));
        assert!(g.matches(s.as_bytes(), &mut Vec::new()));
        assert!(!g.matches("a".repeat(200).as_bytes(), &mut Vec::new()));
    }
}
