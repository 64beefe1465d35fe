//! Numbers as AWS compares them: [`Comparable`] orders numbers as event-ruler 2.0.1 does.
//!
//! A number takes part in numeric matching when, read as a double, it lies in [-5e9, 5e9]; numbers then
//! compare by their double value at full double precision. So `300` equals `300.0` and `3.018e2` equals
//! `301.8`, but `0.0000001` does not equal `0`, and `1e10` cannot take part in numeric matching at all
//! (it still matches the same number text exactly).
//!
//! Why full precision, not "rounded to 6 decimals": AWS documents numeric matching as precise to six
//! decimal places, and this module first implemented event-ruler's old `ComparableNumber` (round(d*1e6)).
//! The shared bench kit's expected counts, which are event-ruler 2.0.1's own answers, disprove that for
//! 14-decimal numbers: rounding gives 301,774 matches for the `numeric` set and 302,412 for
//! `complex_arrays`, event-ruler gives 301,777 and 302,407, and comparing doubles gives exactly those.
//! Both doors (the interpreter and the compiled `RuleSet`) go through [`comparable`], so they cannot
//! disagree about a number.

/// The largest magnitude numeric matching accepts.
pub const LIMIT: f64 = 5e9;

/// A number as EventBridge compares it: an integer whose order is the order of the double values
/// (the IEEE-754 bits, flipped so that integer order is numeric order; -0 and 0 are the same).
pub type Comparable = i64;

/// The comparable form of a JSON number's text, or `None` when it is outside [-5e9, 5e9] or not a
/// number at all.
pub fn comparable(text: &str) -> Option<Comparable> {
    let d: f64 = text.parse().ok()?;
    from_f64(d)
}

/// The comparable form of a double.
pub fn from_f64(d: f64) -> Option<Comparable> {
    if !(-LIMIT..=LIMIT).contains(&d) {
        return None; // also rejects NaN
    }
    let bits = (d + 0.0).to_bits() as i64; // + 0.0 turns -0 into 0
    // Non-negative doubles order like their bits; negative ones in reverse.
    Some(if bits < 0 { !bits | i64::MIN } else { bits })
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
    fn equal_as_doubles_at_full_precision() {
        assert_eq!(comparable("300"), comparable("300.0"));
        assert_eq!(comparable("3.018e2"), comparable("301.8"));
        assert_ne!(comparable("0.0000001"), comparable("0"));
        assert_ne!(
            comparable("-122.41600944012424"),
            comparable("-122.416009440124")
        );
        assert_eq!(comparable("-0"), comparable("0"));
    }

    #[test]
    fn order_is_numeric_order() {
        let v = [
            "-5e9",
            "-122.5",
            "-122.41600944012424",
            "-1",
            "-1e-300",
            "0",
            "1e-300",
            "0.0000001",
            "1",
            "37.7",
            "5e9",
        ];
        for w in v.windows(2) {
            assert!(comparable(w[0]) < comparable(w[1]), "{} < {}", w[0], w[1]);
        }
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
