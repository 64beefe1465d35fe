//! One pass over the raw event bytes: descend only into keys that lead to a rule's field, skip
//! everything else with a byte-level skipper, and decode only the leaves that rules name.
//!
//! Owns: [`scan`] and the per-call [`Scratch`] it fills: the leaves found at rule fields (with their
//! array trail, as `flatten` assigns it), and the `(condition, leaf)` hits their values produce. Values
//! no rule names are skipped by the validating skipper here, or, for bytes the caller vouches for
//! (`trusted`), by the structural skipper in `bytes`.
//! Promises:
//! - validating, it accepts exactly the inputs `json::parse` accepts (same grammar, same depth limit), so
//!   an event is rejected by both doors or by neither; on rejection the caller asks `json::parse` for the
//!   message; trusted, it gives the same leaves for every valid input;
//! - leaves, values and array positions are those of `flatten` restricted to rule fields, including
//!   "the last duplicate key wins" (the leaves of an overridden key are marked dead);
//! - never panics, never recurses deeper than `json::MAX_DEPTH`.

use super::Machine;
use super::bytes::{non_digit, skip_container_fast, skip_string_fast, special};
use super::paths::{NodeId, ROOT};
use super::values::{Scalar, ValueScratch};
use crate::json::{self, Json, MAX_DEPTH};

/// A leaf at a rule field.
#[derive(Debug, Clone, Copy)]
pub struct LeafRec {
    pub field: u32,
    pub trail_start: u32,
    pub trail_len: u32,
    pub alive: bool,
}

/// Reusable per-call state of the matcher. Most of it follows the size of the events; two stamp tables
/// (one word per condition and per field) follow the rule set and are only ever grown, never cleared,
/// so reusing one scratch (as `RuleSet::matches` does per thread) makes a call allocation-free.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) leaves: Vec<LeafRec>,
    pub(crate) trails: Vec<(u32, u32)>,
    trail: Vec<(u32, u32)>,
    pub(crate) hits: Vec<(u32, u32)>,
    /// Relevant keys of the objects being scanned: (child node, first leaf, end leaf).
    seen: Vec<(NodeId, u32, u32)>,
    pub(crate) any_dead: bool,
    next_array: u32,
    values: ValueScratch,
    evals: Vec<u32>,
    /// Hit conditions in order of first hit, with the range of their leaves in `pooled`.
    pub(crate) groups: Vec<(u32, u32, u32)>,
    pub(crate) pooled: Vec<u32>,
    /// Per condition: (epoch when hit, its hits' range); per field: epoch when a leaf was seen.
    pub(crate) epoch: u32,
    pub(crate) cond_slot: Vec<(u32, u32, u32)>,
    pub(crate) field_seen: Vec<u32>,
    pub(crate) pools: Vec<(u32, u32)>,
    pub(crate) chosen: Vec<u32>,
    pub(crate) matched: Vec<u32>,
    /// One bit per rule, all zero between calls.
    pub(crate) rule_bits: Vec<u64>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::default()
    }

    fn reset(&mut self) {
        self.leaves.clear();
        self.trails.clear();
        self.trail.clear();
        self.hits.clear();
        self.seen.clear();
        self.any_dead = false;
        self.next_array = 0;
    }
}

/// The input is not JSON (or not an object); the caller derives the exact error.
#[derive(Debug)]
pub struct Rejected;

type R<T> = Result<T, Rejected>;

/// Which bytes end a bare word (`true`, `false`, `null`), as `json::Reader::keyword` decides.
const fn word_end(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' | b'[' | b']' | b'{' | b'}' | b'"'
    )
}

/// Scans one event. `Ok(true)` when it is an object (the scratch then holds its leaves and hits),
/// `Ok(false)` when it is valid JSON but not an object.
pub fn scan(m: &Machine, b: &[u8], trusted: bool, s: &mut Scratch) -> R<bool> {
    s.reset();
    let mut sc = Scanner {
        trusted,
        m,
        b,
        i: 0,
        depth: 0,
        s,
    };
    sc.ws();
    let object = sc.peek() == Some(b'{');
    if object {
        sc.object(ROOT)?;
    } else {
        sc.skip_validating()?;
    }
    sc.ws();
    if sc.i < b.len() {
        return Err(Rejected);
    }
    Ok(object)
}

struct Scanner<'a, 'm, 's> {
    /// Whether the bytes are known to be valid JSON: values no rule names are then skipped by their
    /// structure alone (quotes, escapes, brackets), without validating them.
    trusted: bool,
    m: &'m Machine,
    b: &'a [u8],
    i: usize,
    depth: usize,
    s: &'s mut Scratch,
}

impl<'a> Scanner<'a, '_, '_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    #[inline]
    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Rejected);
        }
        Ok(())
    }

    /// After `"`: finds the closing quote, validating escapes, control bytes and UTF-8. Returns the
    /// raw content range and whether it holds escapes; leaves `i` after the closing quote.
    #[inline(always)]
    fn string_raw(&mut self) -> R<(usize, usize, bool)> {
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        let mut high = false;
        loop {
            // Eight bytes at a time until one may be a quote, a backslash, a control or a non-ASCII byte.
            while let Some(chunk) = b.get(i..i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                let m = special(w);
                if m != 0 {
                    i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            let Some(&c) = b.get(i) else {
                return Err(Rejected);
            };
            match c {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match b.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let ok = b
                                .get(i + 2..i + 6)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                            if !ok {
                                return Err(Rejected);
                            }
                            i += 6;
                        }
                        _ => return Err(Rejected),
                    }
                }
                0..=0x1f => return Err(Rejected),
                0x80.. => {
                    high = true;
                    i += 1;
                }
                _ => i += 1, // a false alarm of `special`
            }
        }
        if high && std::str::from_utf8(&b[start..i]).is_err() {
            return Err(Rejected);
        }
        self.i = i + 1;
        Ok((start, i, escaped))
    }

    /// Decodes a validated string's content (with its quotes at `start-1` and `end`).
    fn decode(&self, start: usize, end: usize) -> R<String> {
        match json::parse(&self.b[start - 1..=end]) {
            Ok(Json::String(s)) => Ok(s),
            _ => Err(Rejected),
        }
    }

    #[inline(always)]
    fn number(&mut self) -> R<(usize, usize)> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let digits = |i: &mut usize| {
            let s = *i;
            // Eight bytes at a time: the lowest byte that is not a digit is exact.
            while let Some(chunk) = b.get(*i..*i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                let m = non_digit(w);
                if m != 0 {
                    *i += (m.trailing_zeros() / 8) as usize;
                    return *i - s;
                }
                *i += 8;
            }
            while let Some(c) = b.get(*i)
                && c.is_ascii_digit()
            {
                *i += 1;
            }
            *i - s
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        let n = digits(&mut i);
        if n == 0 || (n > 1 && b[int_start] == b'0') {
            return Err(Rejected);
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return Err(Rejected);
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return Err(Rejected);
            }
        }
        if let Some(&c) = b.get(i)
            && (c.is_ascii_alphanumeric() || c == b'.' || c == b'+' || c == b'-')
        {
            return Err(Rejected);
        }
        self.i = i;
        Ok((start, i))
    }

    fn keyword(&mut self) -> R<Scalar<'static>> {
        let start = self.i;
        let mut end = start;
        while end < self.b.len() && !word_end(self.b[end]) {
            end += 1;
        }
        let v = match &self.b[start..end] {
            b"true" => Scalar::Bool(true),
            b"false" => Scalar::Bool(false),
            b"null" => Scalar::Null,
            _ => return Err(Rejected),
        };
        self.i = end;
        Ok(v)
    }

    /// After `{` or `,` in an object being skipped: a key and its colon.
    #[inline(always)]
    fn skip_key(&mut self) -> R<()> {
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(Rejected);
        }
        self.string_raw()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err(Rejected);
        }
        self.i += 1;
        Ok(())
    }

    /// Skips a value no rule names.
    #[inline]
    fn skip_value(&mut self) -> R<()> {
        if self.trusted {
            self.skip_structure()
        } else {
            self.skip_validating()
        }
    }

    /// Skips a value of bytes known to be valid JSON: finds its end by quotes, escapes and brackets,
    /// eight bytes at a time. On invalid bytes it still never reads out of bounds or panics.
    fn skip_structure(&mut self) -> R<()> {
        self.ws();
        let b = self.b;
        let mut i = self.i;
        match b.get(i) {
            Some(b'"') => {
                self.i = skip_string_fast(b, i + 1).ok_or(Rejected)?;
                Ok(())
            }
            Some(b'{' | b'[') => {
                self.i = skip_container_fast(b, i + 1).ok_or(Rejected)?;
                Ok(())
            }
            Some(_) => {
                while let Some(&c) = b.get(i) {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    i += 1;
                }
                if i == self.i {
                    return Err(Rejected);
                }
                self.i = i;
                Ok(())
            }
            None => Err(Rejected),
        }
    }

    /// Skips any value, validating it. Iterative: nesting is a bit stack (1 = object), not recursion.
    fn skip_validating(&mut self) -> R<()> {
        // Scalars (most skipped values) need no nesting stack.
        self.ws();
        match self.peek() {
            Some(b'"') => return self.string_raw().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => return self.number().map(|_| ()),
            Some(b'{' | b'[') => {}
            Some(_) => return self.keyword().map(|_| ()),
            None => return Err(Rejected),
        }
        let mut kinds = [0u64; MAX_DEPTH / 64 + 1];
        let mut level = 0usize;
        'value: loop {
            self.ws();
            match self.peek() {
                Some(b'{') => {
                    self.enter()?;
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        self.depth -= 1;
                    } else {
                        kinds[level / 64] |= 1 << (level % 64);
                        level += 1;
                        self.skip_key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.enter()?;
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        self.depth -= 1;
                    } else {
                        kinds[level / 64] &= !(1 << (level % 64));
                        level += 1;
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.string_raw()?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(_) => {
                    self.keyword()?;
                }
                None => return Err(Rejected),
            }
            // After a value: close finished containers, or go on to the next member.
            loop {
                if level == 0 {
                    return Ok(());
                }
                let object = kinds[(level - 1) / 64] & (1 << ((level - 1) % 64)) != 0;
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if object {
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    _ => return Err(Rejected),
                }
                self.i += 1;
                self.depth -= 1;
                level -= 1;
            }
        }
    }

    /// An object whose path is `node`'s.
    fn object(&mut self, node: NodeId) -> R<()> {
        self.enter()?;
        self.i += 1;
        let base = self.s.seen.len();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        let m = self.m;
        let children = &m.paths.nodes[node as usize].children;
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(Rejected);
            }
            let (ks, ke, escaped) = self.string_raw()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(Rejected);
            }
            self.i += 1;
            let child = if children.is_empty() {
                None
            } else if escaped {
                let k = self.decode(ks, ke)?;
                children.get(k.as_bytes())
            } else {
                children.get(&self.b[ks..ke])
            };
            match child {
                Some(c) => {
                    let first = self.s.leaves.len() as u32;
                    let dup = self.s.seen[base..].iter().position(|x| x.0 == c);
                    if let Some(p) = dup {
                        // An earlier occurrence of this key is overridden: its leaves no longer count.
                        let (_, a, z) = self.s.seen[base + p];
                        for l in &mut self.s.leaves[a as usize..z as usize] {
                            l.alive = false;
                        }
                        self.s.any_dead = true;
                    }
                    self.value(c)?;
                    let end = self.s.leaves.len() as u32;
                    match dup {
                        Some(p) => self.s.seen[base + p] = (c, first, end),
                        None => self.s.seen.push((c, first, end)),
                    }
                }
                None => self.skip_value()?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    self.s.seen.truncate(base);
                    return Ok(());
                }
                _ => return Err(Rejected),
            }
        }
    }

    /// An array whose path is `node`'s: every element sits at the same path, one array position each.
    fn array(&mut self, node: NodeId) -> R<()> {
        self.enter()?;
        self.i += 1;
        let id = self.s.next_array;
        self.s.next_array += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        let mut ix = 0u32;
        loop {
            self.s.trail.push((id, ix));
            self.value(node)?;
            self.s.trail.pop();
            ix += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(Rejected),
            }
        }
    }

    /// A value whose path is `node`'s.
    fn value(&mut self, node: NodeId) -> R<()> {
        self.ws();
        let n = &self.m.paths.nodes[node as usize];
        let field = n.field;
        match self.peek() {
            Some(b'{') if !n.children.is_empty() => self.object(node),
            Some(b'[') => self.array(node),
            Some(b'"') if field.is_some() => {
                let (a, z, escaped) = self.string_raw()?;
                let b: &'a [u8] = self.b;
                if escaped {
                    let s = self.decode(a, z)?;
                    self.leaf(field, Scalar::Str(&s));
                } else {
                    // Validated UTF-8 by `string_raw`.
                    let s = std::str::from_utf8(&b[a..z]).map_err(|_| Rejected)?;
                    self.leaf(field, Scalar::Str(s));
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') if field.is_some() => {
                let (a, z) = self.number()?;
                let b: &'a [u8] = self.b;
                let t = std::str::from_utf8(&b[a..z]).map_err(|_| Rejected)?;
                self.leaf(field, Scalar::Num(t));
                Ok(())
            }
            Some(c) if field.is_some() && c != b'{' => {
                let v = self.keyword()?;
                self.leaf(field, v);
                Ok(())
            }
            _ => self.skip_value(),
        }
    }

    fn leaf(&mut self, field: Option<u32>, v: Scalar) {
        let Some(f) = field else { return };
        let s = &mut *self.s;
        let leaf = s.leaves.len() as u32;
        s.leaves.push(LeafRec {
            field: f,
            trail_start: s.trails.len() as u32,
            trail_len: s.trail.len() as u32,
            alive: true,
        });
        s.trails.extend_from_slice(&s.trail);
        s.evals.clear();
        self.m.fields[f as usize].eval(&v, &mut s.values, &mut s.evals);
        for &c in &s.evals {
            s.hits.push((c, leaf));
        }
    }
}
