//! Numbers as AWS compares them: [`Comparable`] is event-ruler's `ComparableNumber`.
//!
//! EventBridge compares numbers after turning them into integers of millionths: a number is read as a
//! double, must lie in [-5e9, 5e9], and is rounded (Java's `Math.round`) to 6 decimal places. So
//! `300` equals `300.0`, `0.0000001` equals `0`, and `1e10` cannot take part in numeric matching at all
//! (it still matches the same number text exactly). Both doors (the interpreter and the compiled
//! `RuleSet`) go through [`comparable`], so they cannot disagree about a number.

/// The largest magnitude numeric matching accepts.
pub const LIMIT: f64 = 5e9;

/// A number as EventBridge compares it: millionths, in [-5e15, 5e15].
pub type Comparable = i64;

/// The comparable form of a JSON number's text, or `None` when it is outside [-5e9, 5e9] or not a
/// number at all.
pub fn comparable(text: &str) -> Option<Comparable> {
    let d: f64 = text.parse().ok()?;
    from_f64(d)
}

/// The comparable form of a double, as event-ruler's `ComparableNumber.generate(double)`.
pub fn from_f64(d: f64) -> Option<Comparable> {
    if !(-LIMIT..=LIMIT).contains(&d) {
        return None; // also rejects NaN
    }
    // Java's Math.round: floor(x + 0.5).
    Some((d * 1e6 + 0.5).floor() as i64)
}

/// A JSON number from an event or a pattern: its text, and its comparable form when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number {
    pub text: String,
    pub cmp: Option<Comparable>,
}

impl Number {
    pub fn new(text: &str) -> Number {
        Number {
            text: text.to_string(),
            cmp: comparable(text),
        }
    }

    /// AWS's number equality: same text, or the same comparable value.
    pub fn same(&self, other: &Number) -> bool {
        self.text == other.text || (self.cmp.is_some() && self.cmp == other.cmp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_after_rounding_to_six_places() {
        assert_eq!(comparable("300"), comparable("300.0"));
        assert_eq!(comparable("3.018e2"), comparable("301.8"));
        assert_eq!(comparable("0.0000001"), comparable("0"));
        assert_ne!(comparable("0.000001"), comparable("0"));
        assert_eq!(comparable("-0"), comparable("0"));
    }

    #[test]
    fn range_is_plus_minus_five_billion() {
        assert!(comparable("5000000000").is_some());
        assert!(comparable("-5000000000").is_some());
        assert!(comparable("5000000000.1").is_none());
        assert!(comparable("1e400").is_none());
        assert!(comparable("123456789012").is_none());
    }

    #[test]
    fn out_of_range_numbers_still_match_by_text() {
        assert!(Number::new("123456789012").same(&Number::new("123456789012")));
        assert!(!Number::new("123456789012").same(&Number::new("123456789012.0")));
        assert!(Number::new("1").same(&Number::new("1.0")));
    }
}
