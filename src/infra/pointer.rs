//! JSON pointers (RFC 6901) as `check-patterns` builds and reads them.

/// Appends one RFC 6901 reference token to a JSON pointer.
pub fn pointer_push(base: &str, token: &str) -> String {
    format!("{base}/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// The reference tokens of a JSON pointer, unescaped.
pub fn pointer_tokens(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_and_split_as_rfc_6901_says() {
        let p = pointer_push(&pointer_push("", "a/b"), "c~d");
        assert_eq!(p, "/a~1b/c~0d");
        assert_eq!(pointer_tokens(&p), ["a/b", "c~d"]);
        assert!(pointer_tokens("").is_empty());
    }
}
