//! [`RuleSet`]: many patterns compiled into one machine; `matches(event bytes) -> ids`.
//!
//! Owns: the rules by id (insertion order decides output order), adding and removing them at run time,
//! and turning the machine's answer into ids. The machine itself lives in `automaton`.
//!
//! Promises:
//! - the same answer as [`Pattern::matches_bytes`] for every rule (the differential tests and the fuzz
//!   target hold it to that), for every event, including the error for bytes that are not a JSON object;
//! - matching scans the raw bytes once and decodes only the values that some rule names;
//! - `RuleSet` is `Send + Sync` and matching takes `&self`: no locks. Per-call working memory is a
//!   [`Scratch`] (its size follows the event, not the rule set); [`RuleSet::matches`] reuses one per
//!   thread, [`RuleSet::matches_with`] takes the caller's;
//! - `add` is incremental; `remove` is O(1) (the rule stops matching at once) and the machine is rebuilt
//!   from the live rules once removed rules outnumber them, so its size stays proportional to the rules.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;

use crate::automaton::Machine;
pub use crate::automaton::scan::Scratch;
use crate::error::EventError;
use crate::json::JsonError;
use crate::{Event, Pattern};

/// Many patterns, each under an id, matched together.
#[derive(Debug, Clone)]
pub struct RuleSet<Id> {
    /// By rule number; `None` once removed.
    rules: Vec<Option<(Id, Pattern)>>,
    numbers: HashMap<Id, u32>,
    removed: usize,
    machine: Machine,
}

impl<Id: Clone + Eq + Hash + Send + Sync> Default for RuleSet<Id> {
    fn default() -> Self {
        RuleSet::new()
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

impl<Id: Clone + Eq + Hash + Send + Sync> RuleSet<Id> {
    pub fn new() -> Self {
        RuleSet {
            rules: Vec::new(),
            numbers: HashMap::new(),
            removed: 0,
            machine: Machine::new(),
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// Whether a rule with this id is present.
    pub fn contains(&self, id: &Id) -> bool {
        self.numbers.contains_key(id)
    }

    /// Adds a rule; a rule already under `id` is replaced.
    pub fn add(&mut self, id: Id, pattern: &Pattern) {
        self.remove(&id);
        let n = self.rules.len() as u32;
        self.machine.add(n, pattern.branches());
        self.rules.push(Some((id.clone(), pattern.clone())));
        self.numbers.insert(id, n);
    }

    /// Removes the rule under `id`; returns whether there was one.
    pub fn remove(&mut self, id: &Id) -> bool {
        let Some(n) = self.numbers.remove(id) else {
            return false;
        };
        self.rules[n as usize] = None;
        self.machine.kill(n);
        self.removed += 1;
        if self.removed > 64 && self.removed > self.numbers.len() {
            self.rebuild();
        }
        true
    }

    /// Compiles the live rules afresh (dropping what removed rules left behind).
    fn rebuild(&mut self) {
        let live: Vec<(Id, Pattern)> = self.rules.drain(..).flatten().collect();
        self.numbers.clear();
        self.removed = 0;
        self.machine = Machine::new();
        for (id, p) in live {
            self.add(id, &p);
        }
    }

    /// The ids of the rules that match the event, in the order the rules were added.
    pub fn matches(&self, event: &[u8]) -> Result<Vec<Id>, EventError> {
        let mut out = Vec::new();
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => self.matches_with(event, &mut s, &mut out),
            Err(_) => self.matches_with(event, &mut Scratch::new(), &mut out),
        })?;
        Ok(out)
    }

    /// Like [`RuleSet::matches`], with the caller's working memory, writing into `out` (cleared
    /// first).
    pub fn matches_with(
        &self,
        event: &[u8],
        scratch: &mut Scratch,
        out: &mut Vec<Id>,
    ) -> Result<(), EventError> {
        self.run(event, false, scratch, out)
    }

    /// For bytes already known to be one valid JSON object (the daemon checks every event once, at
    /// ingest): values that no rule names are skipped by their structure alone, without validating them,
    /// which is about twice as fast on events that are mostly such values. On valid JSON the answer is
    /// exactly that of [`RuleSet::matches`]; on invalid bytes it never panics, but it may return an
    /// answer where `matches` returns an error.
    pub fn matches_prevalidated(&self, event: &[u8]) -> Result<Vec<Id>, EventError> {
        let mut out = Vec::new();
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => self.run(event, true, &mut s, &mut out),
            Err(_) => self.run(event, true, &mut Scratch::new(), &mut out),
        })?;
        Ok(out)
    }

    /// Like [`RuleSet::matches_prevalidated`], with the caller's working memory and output buffer.
    pub fn matches_prevalidated_with(
        &self,
        event: &[u8],
        scratch: &mut Scratch,
        out: &mut Vec<Id>,
    ) -> Result<(), EventError> {
        self.run(event, true, scratch, out)
    }

    fn run(
        &self,
        event: &[u8],
        trusted: bool,
        scratch: &mut Scratch,
        out: &mut Vec<Id>,
    ) -> Result<(), EventError> {
        out.clear();
        match self.machine.run(event, trusted, scratch) {
            Ok(true) => {
                out.extend(
                    scratch
                        .matched
                        .iter()
                        .filter_map(|&n| self.rules[n as usize].as_ref().map(|(id, _)| id.clone())),
                );
                Ok(())
            }
            Ok(false) | Err(_) => Err(event_error(event)),
        }
    }
}

/// The reference's error for bytes the scanner rejected.
fn event_error(event: &[u8]) -> EventError {
    match Event::from_bytes(event) {
        Err(e) => e,
        Ok(_) => EventError::Syntax(JsonError {
            message: "internal error: the compiled matcher rejected an event the reader accepts"
                .into(),
            offset: 0,
            line: 1,
            column: 1,
        }),
    }
}

/// `RuleSet` is shareable across threads (checked at compile time).
const _: () = {
    const fn check<T: Send + Sync>() {}
    check::<RuleSet<String>>();
};
