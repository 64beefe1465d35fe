//! One pass over the event: descend only into keys that lead to a rule's field, skip everything else,
//! and decode only the leaves that rules name.
//!
//! Owns: [`scan`] and the per-call [`Scratch`] it fills: the leaves found at rule fields (with their
//! array trail, as `flatten` assigns it), and the `(condition, leaf)` hits their values produce.
//! The scan walks the event's `index` token by token: the end of a string, the next token, or the end
//! of a container is bit arithmetic on 64-byte blocks, not a loop over bytes. The index is built
//! lazily, a few blocks ahead of the walk (trusted, at first about as many as the walk of the scratch's
//! last event read: `FirstBlocks`). For bytes the caller vouches for (`trusted`) nothing is
//! checked, and a container no rule reads is skipped by counting its brackets. Validating, each
//! byte is checked once, by whichever part reads it: the whole event is UTF-8 (`simdutf8`, once);
//! the index checks the strings of every block it builds (control bytes, escapes); the walk checks
//! the grammar of the tokens it reads (a key, then `:`, then a value, then `,` or the closer; every
//! scalar, read or skipped, by the number and literal rules); and a container no rule reads is
//! checked token by token when it is short and built, else in bulk by `validate` (which also finds
//! its end). Long objects are searched for their keys only when trusted (validating, their members
//! are read in turn: every byte must be checked anyway). Trusted, the walk also ends as soon as the
//! rest of the event spells none of the keys of the objects it is in (`Scanner::rest_is_idle`): as
//! quamina stops once it has its fields, but keeping "the last duplicate key wins".
//! Promises:
//! - validating, it accepts exactly the inputs for which `json::parse` returns an object, so an event
//!   is rejected by both doors or by neither (on rejection the caller asks `json::parse` for the
//!   message); trusted, it gives the same leaves for every valid input;
//! - leaves, values and array positions are those of `flatten` restricted to rule fields, including
//!   "the last duplicate key wins" (the leaves of an overridden key are marked dead);
//! - never panics, never recurses deeper than `json::MAX_DEPTH`, and gives the same answer under every
//!   [`Simd`] implementation.

use super::Machine;
use super::bytes::{self, valid_number};
use super::index::{Cursor, Index};
use super::paths::{NodeId, ROOT, same_bytes};
use super::simd::{self, Simd};
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
    /// Members found by searching objects being scanned: (key position, child node).
    found: Vec<(usize, NodeId)>,
    /// The nodes of the objects being scanned, outermost first, with where their keys start in
    /// `seen`.
    levels: Vec<(NodeId, u32)>,
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
    /// The event's index (see `index`).
    index: Index,
    /// The classifier to use instead of the detected one (for testing them against each other).
    simd: Option<Simd>,
    /// Trusted: how many blocks to index at first (see `Scanner::learn_first`).
    first_blocks: FirstBlocks,
}

/// How many blocks a trusted scan indexes at first: about as many as the last event's walk read
/// before it ended or first skipped a container past them (events of one source look alike, and the
/// walk ends early on most: building blocks it never reads is the largest waste on short walks).
#[derive(Debug, Clone, Copy)]
struct FirstBlocks(u8);

impl Default for FirstBlocks {
    fn default() -> FirstBlocks {
        FirstBlocks(AHEAD as u8)
    }
}

impl FirstBlocks {
    fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::default()
    }

    /// A scratch whose calls classify bytes with `simd` rather than the fastest implementation
    /// detected, or `None` when this CPU lacks its instructions. Every implementation gives the same
    /// answers; this exists to test that, and to measure them against each other.
    pub fn with_simd(simd: Simd) -> Option<Scratch> {
        simd.is_available().then(|| Scratch {
            simd: Some(simd),
            ..Scratch::default()
        })
    }

    fn reset(&mut self) {
        self.leaves.clear();
        self.trails.clear();
        self.trail.clear();
        self.hits.clear();
        self.seen.clear();
        self.found.clear();
        self.levels.clear();
        self.any_dead = false;
        self.next_array = 0;
    }
}

/// The input is not JSON (or not an object); the caller derives the exact error.
#[derive(Debug)]
pub struct Rejected;

type R<T> = Result<T, Rejected>;

/// An object is searched for its keys (`Scanner::search_rest`) when its end is indexed and it is at
/// least `SEARCH_WHOLE` bytes long per key searched for; else its rest after `SEARCH_AFTER` members
/// in a row that no rule names, when at least `SEARCH_BYTES` remain per key. (Walking a short
/// object's members costs less than searching it: a search sweeps every block of the object.)
const SEARCH_WHOLE: usize = 64;
const SEARCH_AFTER: usize = 16;
const SEARCH_BYTES: usize = 64;

/// Validating, a container no rule reads is checked token by token when it is at most this long and
/// built, else in bulk (`simd::value_end`).
const WALK_SKIPPED: usize = 256;

/// How many blocks the lazy index builds at a time (and a trusted scan at first, until it learns
/// better: `FirstBlocks`).
const AHEAD: usize = 4;
/// The most blocks a trusted scan indexes at first.
const FIRST_MAX: usize = 16;

/// The walk asks whether the rest of the event is idle (`Scanner::rest_is_idle`) at most this many
/// times per event, and only when at least `IDLE_REST` bytes remain.
const IDLE_TRIES: u8 = 3;
const IDLE_REST: usize = 64;
/// The most distinct second bytes the texts searched for may have (see `rest_is_idle`).
const IDLE_SECONDS: usize = 8;

/// Scans one event. `Ok(true)` when it is an object (the scratch then holds its leaves and hits),
/// `Ok(false)` when it is valid JSON but not an object (trusted only: validating, a non-object is
/// rejected, and the caller's error says why).
pub fn scan(m: &Machine, b: &[u8], trusted: bool, s: &mut Scratch) -> R<bool> {
    s.reset();
    let simd = s.simd.unwrap_or_else(Simd::detected);
    // Validating, the whole event is UTF-8 (its strings then are: their quotes are ASCII).
    let text = if trusted {
        ""
    } else {
        simdutf8::basic::from_utf8(b).map_err(|_| Rejected)?
    };
    let mut ix = std::mem::take(&mut s.index);
    ix.restart(0);
    ix.escapes = false;
    ix.bad = false;
    if trusted {
        Scanner::<false>::run(m, b, text, ix, simd, s)
    } else {
        Scanner::<true>::run(m, b, text, ix, simd, s)
    }
}

/// `CHECK`: validating (the walk checks the tokens it reads, the index the strings of the blocks it
/// builds, and `simd::value_end` or `walk_skipped` each container it skips).
struct Scanner<'a, 'm, 's, const CHECK: bool> {
    m: &'m Machine,
    b: &'a [u8],
    ix: Index,
    simd: Simd,
    /// The token being read.
    t: Cursor,
    depth: usize,
    s: &'s mut Scratch,
    /// Validating: the event as text (checked to be UTF-8 once); trusted: empty.
    text: &'a str,
    /// How many arrays are being read (around the current token).
    arrays: u32,
    /// Set when the rest of the event holds nothing a rule reads: the walk then ends.
    idle: bool,
    /// How many more times the walk may ask whether the rest is idle, and not before which position.
    tries: u8,
    retry_at: usize,
    /// Trusted: once the walk first restarts the index, (blocks built from the event's start, where
    /// the walk was).
    first: Option<(usize, usize)>,
}

impl<'a, 'm, 's, const CHECK: bool> Scanner<'a, 'm, 's, CHECK> {
    fn run(
        m: &'m Machine,
        b: &'a [u8],
        text: &'a str,
        ix: Index,
        simd: Simd,
        s: &'s mut Scratch,
    ) -> R<bool> {
        let mut sc = Scanner::<CHECK> {
            m,
            b,
            ix,
            simd,
            t: Cursor::default(),
            depth: 0,
            s,
            text,
            arrays: 0,
            idle: false,
            // Not when the event's own keys are too many to search for (validating, never).
            tries: if !CHECK && m.paths.nodes[ROOT as usize].children.needles().is_some() {
                IDLE_TRIES
            } else {
                0
            },
            retry_at: 0,
            first: None,
        };
        let r = sc.walk();
        if !CHECK {
            sc.learn_first();
        }
        sc.s.index = sc.ix;
        r
    }

    /// Sets how many blocks the next trusted scan indexes at first, from this one: one more than
    /// the walk reached from the event's start when that had to grow, one fewer than it built when
    /// the walk never reached the last of them, else as many (so a stream of like events settles on
    /// what their walks read).
    #[inline(never)]
    fn learn_first(&mut self) {
        let (built, at) = self.first.unwrap_or((self.ix.blocks.len(), self.pos()));
        let reached = (at / 64 + 1).min(built);
        // (It grew when it built more than its first build: `first_blocks` is this scan's until now.)
        let next = if built > self.s.first_blocks.get() {
            reached + 1
        } else if reached == built {
            built
        } else {
            built - 1
        };
        self.s.first_blocks = FirstBlocks(next.clamp(1, FIRST_MAX) as u8);
    }

    /// Empties the index, to build it afresh from `at` (after a container the walk skips).
    fn restart(&mut self, at: usize) {
        if !CHECK && self.ix.origin == 0 && self.first.is_none() {
            self.first = Some((self.ix.blocks.len(), self.pos()));
        }
        self.ix.restart(at);
    }

    fn walk(&mut self) -> R<bool> {
        self.seek(0);
        if self.peek() != Some(b'{') {
            return if CHECK { Err(Rejected) } else { Ok(false) };
        }
        self.object(ROOT)?;
        if self.idle {
            return Ok(true); // (trusted) the rest holds no member any rule reads
        }
        if self.pos() < self.b.len() || self.ix.bad {
            return Err(Rejected); // more than one value, or a block's strings are not JSON
        }
        Ok(true)
    }

    /// Builds more of the index; `false` when it is complete.
    #[inline]
    fn grow(&mut self) -> bool {
        if self.ix.complete {
            return false;
        }
        if CHECK {
            simd::extend_checked(self.simd, self.b, &mut self.ix, AHEAD);
        } else {
            let first = self.ix.origin == 0 && self.ix.blocks.is_empty();
            let n = if first {
                self.s.first_blocks.get()
            } else {
                AHEAD
            };
            simd::extend(self.simd, self.b, &mut self.ix, n);
        }
        true
    }

    /// The position of the token being read (the end of the event or more, past the last token).
    #[inline(always)]
    fn pos(&self) -> usize {
        self.ix.pos(self.t)
    }

    /// The first byte of the token being read.
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos()).copied()
    }

    /// Consumes the token being read.
    #[inline(always)]
    fn bump(&mut self) {
        self.ix.advance(&mut self.t);
        if self.t.exhausted() {
            self.more();
        }
    }

    /// Past the built blocks: builds on until a token is found or the event ends.
    #[cold]
    fn more(&mut self) {
        while self.t.exhausted() && self.grow() {
            self.ix.refill(&mut self.t);
        }
    }

    /// Moves to the first token at or after `at`.
    fn seek(&mut self, at: usize) {
        while at >= self.ix.built_end() && self.grow() {}
        self.t = self.ix.seek(at);
        if self.t.exhausted() {
            self.more();
        }
    }

    /// Consumes the token being read if it is `c`.
    #[inline(always)]
    fn eat(&mut self, c: u8) -> bool {
        let yes = self.peek() == Some(c);
        if yes {
            self.bump();
        }
        yes
    }

    #[inline]
    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Rejected);
        }
        Ok(())
    }

    /// At a string's token (validating: checked to be one): its raw content range, consuming it.
    #[inline(always)]
    fn string_span(&mut self) -> R<(usize, usize)> {
        let open = self.pos();
        if CHECK && self.b.get(open) != Some(&b'"') {
            return Err(Rejected); // validating, where a key must be
        }
        let end = loop {
            if let Some(q) = self.ix.quote(open + 1) {
                break q;
            }
            if !self.grow() {
                return Err(Rejected);
            }
        };
        if end >= self.b.len() {
            return Err(Rejected);
        }
        self.bump();
        Ok((open + 1, end))
    }

    /// `b[a..z]` as text (validating, without checking it again).
    #[inline(always)]
    fn str(&self, a: usize, z: usize) -> R<&'a str> {
        if CHECK {
            self.text.get(a..z).ok_or(Rejected)
        } else {
            let t = &self.b[a..z];
            if bytes::is_ascii(t) {
                // SAFETY: ASCII bytes are UTF-8 (checked just above, a word at a time: std's
                // `from_utf8` goes byte by byte on short strings like most values).
                Ok(unsafe { std::str::from_utf8_unchecked(t) })
            } else {
                std::str::from_utf8(t).map_err(|_| Rejected)
            }
        }
    }

    /// Decodes a string's content (with its quotes at `start-1` and `end`).
    fn decode(&self, start: usize, end: usize) -> R<String> {
        match json::parse(&self.b[start - 1..=end]) {
            Ok(Json::String(s)) => Ok(s),
            _ => Err(Rejected),
        }
    }

    /// The raw text of the scalar being read, consuming it.
    #[inline(always)]
    fn scalar(&mut self) -> (usize, usize) {
        let start = self.pos();
        let end = loop {
            if let Some(e) = self.ix.scalar_end(start) {
                break e.min(self.b.len());
            }
            if !self.grow() {
                break self.b.len();
            }
        };
        self.bump();
        (start, end)
    }

    /// At the token of a value no rule names: skips it.
    #[inline(always)]
    fn skip_value(&mut self) -> R<()> {
        match self.peek() {
            Some(b'{' | b'[') => self.skip_container(),
            Some(b':' | b',' | b'}' | b']') | None => Err(Rejected),
            // A string (its content is checked with its block) or a scalar: one token.
            Some(b'"') => {
                self.bump();
                Ok(())
            }
            Some(_) if CHECK => {
                let (a, z) = self.scalar();
                let ok = match self.b[a] {
                    b'-' | b'0'..=b'9' => valid_number(self.b, a, z),
                    _ => matches!(&self.b[a..z], b"true" | b"false" | b"null"),
                };
                if ok { Ok(()) } else { Err(Rejected) }
            }
            Some(_) => {
                self.bump();
                Ok(())
            }
        }
    }

    /// Validating, at the `{` or `[` of a container the walk does not read member by member: its
    /// end, once it is checked as one JSON value in bulk (with the levels left below `MAX_DEPTH`).
    fn checked_end(&self, open: usize, outer: usize) -> R<usize> {
        simd::value_end(self.simd, self.b, open, MAX_DEPTH - outer).ok_or(Rejected)
    }

    /// Validating, at the `{` or `[` of a short container no rule reads (all of it in built blocks,
    /// whose strings are checked): checks it token by token, as `object` and `array` read.
    fn walk_skipped(&mut self) -> R<()> {
        let close = if self.peek() == Some(b'{') {
            b'}'
        } else {
            b']'
        };
        self.enter()?;
        self.bump();
        if !self.eat(close) {
            loop {
                if close == b'}' {
                    if self.peek() != Some(b'"') {
                        return Err(Rejected);
                    }
                    self.bump();
                    if !self.eat(b':') {
                        return Err(Rejected);
                    }
                }
                self.skip_value()?;
                if self.eat(b',') {
                    continue;
                }
                if self.eat(close) {
                    break;
                }
                return Err(Rejected);
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// Moves to `end`, after a container the walk did not read, restarting the index there when
    /// it is not built that far.
    fn resume(&mut self, end: usize) {
        if end > self.ix.built_end() {
            self.restart(end);
        }
        self.seek(end);
    }

    /// At the `{` or `[` of a value no rule names: skips it, by the built index as far as it goes,
    /// then (without indexing) by counting brackets, restarting the index after it.
    fn skip_container(&mut self) -> R<()> {
        if CHECK {
            // Short (ending within what is built, or in the next two blocks by counting brackets):
            // walked over the index (the walk builds the blocks after it anyway).
            let open = self.pos();
            let short = match self.ix.container_end(open) {
                Ok(end) => end - open <= WALK_SKIPPED,
                Err(depth) => {
                    let at = self.ix.built_end();
                    let probe = &self.b[..(at + 128).min(open + WALK_SKIPPED).min(self.b.len())];
                    at < probe.len()
                        && simd::skip(self.simd, probe, at, depth, self.ix.carry).is_some()
                }
            };
            if short {
                return self.walk_skipped();
            }
            let end = self.checked_end(open, self.depth)?;
            self.resume(end);
            return Ok(());
        }
        let end = match self.ix.container_end(self.pos()) {
            Ok(end) => end,
            Err(_) if self.ix.complete => return Err(Rejected),
            Err(depth) => {
                let at = self.ix.built_end();
                let end =
                    simd::skip(self.simd, self.b, at, depth, self.ix.carry).ok_or(Rejected)?;
                self.restart(end);
                end
            }
        };
        self.seek(end);
        Ok(())
    }

    /// At the `{` of an object whose path is `node`'s (see `object_members`).
    #[inline]
    fn object(&mut self, node: NodeId) -> R<()> {
        if CHECK || self.tries == 0 {
            return self.object_members(node); // (the levels are not needed any more)
        }
        self.s.levels.push((node, self.s.seen.len() as u32));
        let r = self.object_members(node);
        self.s.levels.pop();
        r
    }

    /// Trusted, after a member of an object, in no array: whether no member after it can give a
    /// leaf or override one, so that the walk may end here. It is so when the rest has no
    /// backslash and none of the texts that the keys of the objects being read are spelt with
    /// (`Children::needles`): a member that gives or overrides a leaf is one of theirs, written
    /// there. (Members of the objects not yet open are reached only through such a member.)
    /// The rest is searched for them a vector at a time (`simd::find_pair`).
    #[inline(never)]
    fn rest_is_idle(&mut self, at: usize) -> bool {
        match self.all_seen() {
            Some(true) => {}
            Some(false) => return false,
            None => {
                self.tries = 0; // too many keys to search for
                return false;
            }
        }
        self.tries -= 1;
        let nodes = &self.m.paths.nodes;
        // The needles' second bytes (their first is a quote).
        let mut seconds = [0u8; IDLE_SECONDS];
        let mut n = 0;
        for &(node, _) in &self.s.levels {
            // (Every level has needles: `all_seen` says so.)
            for &c in nodes[node as usize].children.seconds() {
                if !seconds[..n].contains(&c) {
                    if n == IDLE_SECONDS {
                        self.tries = 0;
                        return false;
                    }
                    seconds[n] = c;
                    n += 1;
                }
            }
        }
        let (b, levels) = (self.b, &self.s.levels);
        let found = simd::find_pair(self.simd, b, at, &seconds[..n], |p| {
            b[p] == b'\\'
                || levels.iter().any(|&(node, _)| {
                    let needles = nodes[node as usize].children.needles();
                    needles
                        .unwrap_or_default()
                        .iter()
                        .any(|t| b.get(p..p + t.len()).is_some_and(|w| same_bytes(w, t)))
                })
        });
        match found {
            None => true,
            Some(p) if b[p] == b'\\' => {
                self.tries = 0;
                false
            }
            Some(p) => {
                self.retry_at = p + 1;
                false
            }
        }
    }

    /// Whether every object being read has had a member for each of its node's primary children
    /// (`Children::primary`); only then is the rest of the event worth searching: a rest that
    /// still holds a member that matters is found out only once the search reaches it. `None`
    /// when some object has too many keys to search for.
    fn all_seen(&self) -> Option<bool> {
        let s = &*self.s;
        let nodes = &self.m.paths.nodes;
        let mut all = true;
        for (i, &(node, base)) in s.levels.iter().enumerate() {
            let primary = nodes[node as usize].children.primary()?;
            let end = s.levels.get(i + 1).map_or(s.seen.len(), |l| l.1 as usize);
            let seen = &s.seen[base as usize..end];
            // (A level with fewer keys seen than it has primary children is not done.)
            all = all
                && seen.len() >= primary.len()
                && primary.iter().all(|c| seen.iter().any(|x| x.0 == *c));
        }
        Some(all)
    }

    /// After a member whose key leads to a child: whether the walk ends here (`rest_is_idle`).
    #[inline(always)]
    fn ends_here(&mut self) -> R<bool> {
        self.ends_here_from(None)
    }

    /// `ends_here`, searching the rest from `from` (by default, from the walk's position): a
    /// position past bytes known to hold no member that gives or overrides a leaf.
    #[inline(always)]
    fn ends_here_from(&mut self, from: Option<usize>) -> R<bool> {
        if self.idle {
            return Ok(true); // (found in a member of this one)
        }
        if CHECK || self.arrays != 0 || self.tries == 0 {
            return Ok(false);
        }
        let at = from.unwrap_or_else(|| self.pos());
        if at < self.retry_at || at + IDLE_REST > self.b.len() {
            return Ok(false);
        }
        self.idle = self.rest_is_idle(at);
        Ok(self.idle)
    }

    /// The members of an object whose path is `node`'s, from its `{`. A long object with few
    /// relevant keys (and no escapes) is searched for them rather than read member by member: from
    /// the start when it is long enough, else after a few members in a row that no rule names.
    fn object_members(&mut self, node: NodeId) -> R<()> {
        let m = self.m;
        let open = self.pos();
        let children = &m.paths.nodes[node as usize].children;
        let searched = children.searched().len();
        self.enter()?;
        if searched > 0
            && !CHECK
            && let Ok(end) = self.ix.container_end(open)
            && end - open >= SEARCH_WHOLE * searched
            && !self.backslash(open, end)
        {
            return self.search_rest(node, self.s.seen.len(), open + 1, end);
        }
        self.bump();
        let base = self.s.seen.len();
        if self.eat(b'}') {
            self.depth -= 1;
            return Ok(());
        }
        let mut unnamed = 0;
        loop {
            // At a key, then its `:` (the bytes are JSON when they are vouched for).
            let (ks, ke) = self.string_span()?;
            if !CHECK {
                self.bump();
            } else if !self.eat(b':') {
                return Err(Rejected);
            }
            let child = if children.is_empty() {
                None
            } else if self.backslash(ks, ke) {
                let k = self.decode(ks, ke)?;
                children.get(k.as_bytes())
            } else {
                children.get(&self.b[ks..ke])
            };
            match child {
                Some(c) => {
                    self.member(base, c)?;
                    if self.ends_here()? {
                        return Ok(());
                    }
                    unnamed = 0;
                }
                None => {
                    self.skip_value()?;
                    unnamed += 1;
                }
            }
            if self.eat(b',') {
                if unnamed >= SEARCH_AFTER
                    && searched > 0
                    && !CHECK
                    && let at = self.pos()
                    && let Ok(end) = self.ix.container_end(open)
                    // (on bytes that are not JSON, a bracket may seem to close before `at`)
                    && end > at
                    && end - at >= SEARCH_BYTES * searched
                    && !self.backslash(at, end)
                {
                    return self.search_rest(node, base, at, end);
                }
                continue;
            }
            if self.eat(b'}') {
                self.depth -= 1;
                self.s.seen.truncate(base);
                return Ok(());
            }
            return Err(Rejected);
        }
    }

    /// Whether `b[from..to]` holds a backslash (never, when no block built so far has one).
    #[inline(always)]
    fn backslash(&self, from: usize, to: usize) -> bool {
        self.ix.escapes && self.ix.backslash(from, to)
    }

    /// The rest of the object, `from..end` (`from` at a key, no backslash up to `end`, after its
    /// closing brace), by searching for the keys of `node`: a string that spells a key is a member
    /// when it is at the object's own level and a `:` follows it. Members are then read in document
    /// order, as `object` reads them (`base`: where the object's keys start in `seen`).
    fn search_rest(&mut self, node: NodeId, base: usize, from: usize, end: usize) -> R<()> {
        let m = self.m;
        let children = &m.paths.nodes[node as usize].children;
        let keys = children.searched();
        let found = self.s.found.len();
        simd::find_keys(
            self.simd,
            &self.ix,
            self.b,
            from,
            end - 1,
            keys,
            children.firsts(),
            &mut self.s.found,
        );
        let mut i = found;
        while i < self.s.found.len() {
            let (q, c) = self.s.found[i];
            i += 1;
            self.seek(q);
            self.bump(); // the key
            if !self.eat(b':') {
                continue; // a string value that reads like the key
            }
            self.member(base, c)?;
            // Past the last member found, the rest of this object holds none that counts: its
            // members at this level spell none of the keys (searched), and those of objects
            // around it are outside it; so the rest is searched from after the object. (Before
            // it, the search would only find the next member found: a key's text is a needle.)
            if i == self.s.found.len() && self.ends_here_from(Some(end))? {
                return Ok(());
            }
        }
        self.s.found.truncate(found);
        self.s.seen.truncate(base);
        self.depth -= 1;
        self.seek(end);
        Ok(())
    }

    /// The value of a member whose key leads to `c` (`base`: where the object's keys start in `seen`).
    #[inline]
    fn member(&mut self, base: usize, c: NodeId) -> R<()> {
        let first = self.s.leaves.len() as u32;
        let dup = self.s.seen[base..].iter().position(|x| x.0 == c);
        let slot = match dup {
            Some(p) => {
                // An earlier occurrence of this key is overridden: its leaves no longer count.
                let (_, a, z) = self.s.seen[base + p];
                for l in &mut self.s.leaves[a as usize..z as usize] {
                    l.alive = false;
                }
                self.s.any_dead = true;
                base + p
            }
            None => {
                // (In `seen` while its value is read, for `all_seen`.)
                self.s.seen.push((c, first, first));
                self.s.seen.len() - 1
            }
        };
        self.value(c)?;
        let end = self.s.leaves.len() as u32;
        self.s.seen[slot] = (c, first, end);
        Ok(())
    }

    /// At the `[` of an array whose path is `node`'s: every element sits at the same path, one array
    /// position each.
    fn array(&mut self, node: NodeId) -> R<()> {
        if CHECK || self.tries == 0 {
            return self.elements(node);
        }
        self.arrays += 1;
        let r = self.elements(node);
        self.arrays -= 1;
        r
    }

    /// The elements of an array whose path is `node`'s, from its `[`.
    fn elements(&mut self, node: NodeId) -> R<()> {
        self.enter()?;
        self.bump();
        let id = self.s.next_array;
        self.s.next_array += 1;
        if self.eat(b']') {
            self.depth -= 1;
            return Ok(());
        }
        let mut ix = 0u32;
        loop {
            self.s.trail.push((id, ix));
            self.value(node)?;
            self.s.trail.pop();
            ix += 1;
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                self.depth -= 1;
                return Ok(());
            }
            return Err(Rejected);
        }
    }

    /// At the token of a value whose path is `node`'s.
    fn value(&mut self, node: NodeId) -> R<()> {
        let n = &self.m.paths.nodes[node as usize];
        let field = n.field;
        match self.peek() {
            Some(b'{') if !n.children.is_empty() => self.object(node),
            Some(b'[') => self.array(node),
            Some(b'"') if field.is_some() => {
                let (a, z) = self.string_span()?;
                if self.backslash(a, z) {
                    let s = self.decode(a, z)?;
                    self.leaf(field, Scalar::Str(&s));
                } else {
                    let s = self.str(a, z)?;
                    self.leaf(field, Scalar::Str(s));
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') if field.is_some() => {
                let (a, z) = self.scalar();
                let b: &'a [u8] = self.b;
                if !valid_number(b, a, z) {
                    return Err(Rejected);
                }
                let t = self.str(a, z)?;
                self.leaf(field, Scalar::Num(t));
                Ok(())
            }
            Some(b't' | b'f' | b'n') if field.is_some() => {
                let (a, z) = self.scalar();
                let v = match &self.b[a..z] {
                    b"true" => Scalar::Bool(true),
                    b"false" => Scalar::Bool(false),
                    b"null" => Scalar::Null,
                    _ => return Err(Rejected),
                };
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

#[cfg(test)]
mod tests {
    use super::Scratch;
    use crate::{Pattern, RuleSet};

    /// How many blocks a trusted scan indexes at first after `events`, one scratch throughout.
    fn learned(rule: &str, events: &[String]) -> usize {
        let mut set = RuleSet::new();
        set.add(0u32, &Pattern::parse(rule).unwrap());
        let (mut s, mut out) = (Scratch::new(), Vec::new());
        for e in events {
            set.matches_prevalidated_with(e.as_bytes(), &mut s, &mut out)
                .unwrap();
            assert_eq!(out, [0], "{e}");
        }
        s.first_blocks.get()
    }

    #[test]
    fn the_first_build_settles_on_what_the_walks_of_like_events_read() {
        let rule = r#"{"a":["v"]}"#;
        // The field first, then 600 bytes no key spells: the walk ends in block 0.
        let early = format!(r#"{{"a":"v","rest":"{}"}}"#, "x".repeat(600));
        assert_eq!(
            learned(rule, std::slice::from_ref(&early)),
            3,
            "one fewer than built"
        );
        assert_eq!(learned(rule, &vec![early; 6]), 1);
        // Five members of 66 bytes first: the field is in block 5, past the first build (4).
        let pad: Vec<String> = (0..5)
            .map(|i| format!(r#""p{i}":"{}""#, "y".repeat(59)))
            .collect();
        let late = format!(
            r#"{{{},"a":"v","rest":"{}"}}"#,
            pad.join(","),
            "x".repeat(600)
        );
        assert!(late.find(r#""a""#).unwrap() / 64 == 5, "{late}");
        assert_eq!(
            learned(rule, std::slice::from_ref(&late)),
            7,
            "grown: one more than reached"
        );
        assert_eq!(learned(rule, &vec![late.clone(); 6]), 6);
        // A short event after a long one: back down, a block at a time.
        let mut mixed = vec![late; 3];
        mixed.push(r#"{"a":"v"}"#.to_string());
        assert_eq!(learned(rule, &mixed), 1, "a one-block event builds one");
    }

    #[test]
    fn the_empty_key_is_searched_for_only_when_a_rule_names_the_empty_path() {
        // After "a", the rest of the event is searched for the keys that matter; a member `"": ...`
        // at the end matters to a rule on the empty path, and `{"": {"a": 2}}` at the root is the
        // path `a` (found by the root's own key, `"a"`, inside it).
        let pad = "y".repeat(200);
        let events = [
            format!(r#"{{"a":1,"pad":"{pad}","":"x","z":{{"":{{"a":2}}}}}}"#),
            format!(r#"{{"a":1,"pad":"{pad}","":{{"a":2}}}}"#),
            format!(r#"{{"a":1,"pad":"{pad}","":"x"}}"#),
        ];
        let rules = [r#"{"a":[1]}"#, r#"{"":["x"]}"#, r#"{"a":[2]}"#];
        let patterns: Vec<Pattern> = rules.iter().map(|r| Pattern::parse(r).unwrap()).collect();
        let (mut s, mut out) = (Scratch::new(), Vec::new());
        for (with_empty, want_empty) in [(true, [true, false, true]), (false, [false; 3])] {
            let mut set = RuleSet::new();
            for (i, p) in patterns.iter().enumerate() {
                if i != 1 || with_empty {
                    set.add(i, p);
                }
            }
            for (e, want_empty) in events.iter().zip(want_empty) {
                let mut want: Vec<usize> = (0..rules.len())
                    .filter(|&i| {
                        (i != 1 || with_empty) && patterns[i].matches_bytes(e.as_bytes()).unwrap()
                    })
                    .collect();
                want.sort_unstable();
                assert_eq!(want.contains(&1), want_empty, "the reference, {e}");
                set.matches_prevalidated_with(e.as_bytes(), &mut s, &mut out)
                    .unwrap();
                out.sort_unstable();
                assert_eq!(out, want, "{e}");
                // (`"z":{"":{"a":2}}` is the path `z..a`, not `a`.)
                assert_eq!(
                    out.contains(&2),
                    e.contains(r#""a":2"#) && !e.contains(r#""z""#),
                    "{e}"
                );
            }
        }
    }
}
