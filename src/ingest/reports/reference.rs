//! Image references as scanners write them: `[registry/]repository[:tag][@digest]`.
//!
//! The registry is the first path component when it looks like a host (`ghcr.io`, `localhost:5000`,
//! `localhost`), as Docker decides; the repository is the rest, as written (no `library/` added). What is
//! not a reference — a path (`/src`, `./app`, `.`), an archive (`alpine.tar`, `image.tar.gz`), anything
//! with spaces or characters a reference cannot hold — is `None`, so callers fall back to naming what
//! was scanned.
//!
//! [`resolve`] holds the rules for what wins when a report names its image several ways (Trivy's
//! `ArtifactName`, `RepoTags`, `RepoDigests`, `ImageID`; Grype's `userInput`, `tags`, `repoDigests`,
//! `manifestDigest`, `imageID`):
//! 1. the repository (and registry) come from what the user asked to scan when it is a reference, else
//!    from the first tag, else from the first repo digest; when none is a reference (a tarball, a
//!    directory), `repository-name` is what was scanned, as written;
//! 2. the tags are the reference's own tag, then every listed tag of the same repository, once each;
//! 3. the digest is the reference's own `@digest`, else the repo digest of the same repository, else the
//!    first repo digest, else the manifest digest, else the image ID (the config digest: an image that
//!    was never pushed has no other);
//! 4. the image ID is kept apart too (`detail.image-id`).

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Whether `other` names the same repository (registry included).
    pub fn same_repository(&self, other: &Reference) -> bool {
        self.registry == other.registry && self.repository == other.repository
    }
}

fn is_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some((algo, hex)) => {
            !algo.is_empty()
                && algo.chars().all(|c| c.is_ascii_alphanumeric())
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Parses `s`; `None` when it is not an image reference.
pub fn parse(s: &str) -> Option<Reference> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    if s.is_empty()
        || s.len() > 1024
        || s.starts_with(['/', '.', '-', ':', '@'])
        || [".tar", ".tar.gz", ".tgz", ".tar.zst", ".oci"]
            .iter()
            .any(|ext| lower.ends_with(ext))
    {
        return None;
    }
    let (name, digest) = match s.split_once('@') {
        Some((n, d)) if is_digest(d) => (n, Some(d.to_owned())),
        Some(_) => return None,
        None => (s, None),
    };
    let (host, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first.to_owned()), rest)
        }
        _ => (None, name),
    };
    let (repository, tag) = match path.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t.to_owned())),
        _ => (path, None),
    };
    let repo_ok = !repository.is_empty()
        && repository
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && !repository.contains("//")
        && !repository.ends_with('/');
    let tag_ok = tag.as_deref().is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    let host_ok = host.as_deref().is_none_or(|h| {
        h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
    });
    (repo_ok && tag_ok && host_ok).then(|| Reference {
        registry: host,
        repository: repository.to_owned(),
        tag,
        digest,
    })
}

/// Applies the rules of the module doc.
pub fn resolve(
    named: &str,
    tags: &[&str],
    repo_digests: &[&str],
    manifest_digest: Option<&str>,
    image_id: Option<&str>,
) -> super::report::Image {
    let image_id = super::report::non_empty(image_id);
    let primary = parse(named)
        .or_else(|| tags.first().and_then(|t| parse(t)))
        .or_else(|| repo_digests.first().and_then(|d| parse(d)));
    let named = super::report::non_empty(Some(named));
    let fallback_digest = || super::report::non_empty(manifest_digest).or_else(|| image_id.clone());
    let Some(p) = primary else {
        return super::report::Image {
            repository: named.clone(),
            digest: fallback_digest(),
            image_id: image_id.clone(),
            artifact: named,
            ..Default::default()
        };
    };
    let mut out_tags: Vec<String> = p.tag.iter().cloned().collect();
    for t in tags.iter().filter_map(|t| parse(t)) {
        if let Some(tag) = t.tag.filter(|tag| !out_tags.contains(tag))
            && t.registry == p.registry
            && t.repository == p.repository
        {
            out_tags.push(tag);
        }
    }
    let digests: Vec<Reference> = repo_digests.iter().filter_map(|d| parse(d)).collect();
    let digest = p
        .digest
        .clone()
        .or_else(|| {
            digests
                .iter()
                .find(|d| d.same_repository(&p))
                .and_then(|d| d.digest.clone())
        })
        .or_else(|| digests.iter().find_map(|d| d.digest.clone()))
        .or_else(fallback_digest);
    super::report::Image {
        repository: Some(p.repository),
        registry: p.registry,
        tags: out_tags,
        digest,
        image_id,
        artifact: named.or_else(|| tags.first().map(|t| (*t).to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(reg: Option<&str>, repo: &str, tag: Option<&str>, digest: Option<&str>) -> Reference {
        Reference {
            registry: reg.map(Into::into),
            repository: repo.into(),
            tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        }
    }

    #[test]
    fn references_and_non_references() {
        let d = "sha256:b1c5a500182b21d0bfa5a584a8526b56d8be316f89e87d951be04abed2446e60";
        for (text, want) in [
            ("alpine", Some(r(None, "alpine", None, None))),
            ("alpine:3.10", Some(r(None, "alpine", Some("3.10"), None))),
            (
                "payments/api:v2.14.0",
                Some(r(None, "payments/api", Some("v2.14.0"), None)),
            ),
            (
                "localhost:53869/alpine:3.10",
                Some(r(Some("localhost:53869"), "alpine", Some("3.10"), None)),
            ),
            (
                &format!("localhost:53869/alpine@{d}"),
                Some(r(Some("localhost:53869"), "alpine", None, Some(d))),
            ),
            (
                &format!("ghcr.io/org/app:1.0@{d}"),
                Some(r(Some("ghcr.io"), "org/app", Some("1.0"), Some(d))),
            ),
            ("user-input", Some(r(None, "user-input", None, None))),
            ("testdata/fixtures/images/alpine-39.tar.gz", None),
            ("/src", None),
            (".", None),
            ("./app", None),
            ("alpine@sha256:short", None),
            ("has space:1", None),
            ("", None),
        ] {
            assert_eq!(parse(text), want, "{text}");
        }
        assert!(
            parse("localhost:53869/alpine:3.10")
                .unwrap()
                .same_repository(&parse(&format!("localhost:53869/alpine@{d}")).unwrap())
        );
    }

    #[test]
    fn what_wins() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        let id = format!("sha256:{}", "9".repeat(64));
        // The user's reference wins; other tags of the same repository follow; its repo digest wins.
        let i = resolve(
            "ghcr.io/org/app:1.0",
            &[
                "ghcr.io/org/app:1.0",
                "ghcr.io/org/app:latest",
                "other/app:x",
            ],
            &[&format!("other/app@{d2}"), &format!("ghcr.io/org/app@{d1}")],
            None,
            Some(&id),
        );
        assert_eq!(i.repository.as_deref(), Some("org/app"));
        assert_eq!(i.registry.as_deref(), Some("ghcr.io"));
        assert_eq!(i.tags, ["1.0", "latest"]);
        assert_eq!(i.digest.as_deref(), Some(d1.as_str()));
        assert_eq!(i.image_id.as_deref(), Some(id.as_str()));
        assert_eq!(i.artifact.as_deref(), Some("ghcr.io/org/app:1.0"));
        // A digest in the reference wins over everything.
        let i = resolve(
            &format!("app@{d2}"),
            &[],
            &[&format!("app@{d1}")],
            None,
            None,
        );
        assert_eq!(i.digest.as_deref(), Some(d2.as_str()));
        // A tarball: named as scanned; the first tag gives the repository if there is one.
        let i = resolve("img.tar", &["web/app:2"], &[], Some(&d1), Some(&id));
        assert_eq!(
            (i.repository.as_deref(), i.tags.clone()),
            (Some("web/app"), vec!["2".to_owned()])
        );
        assert_eq!(
            i.digest.as_deref(),
            Some(d1.as_str()),
            "manifest digest before the image id"
        );
        let i = resolve("img.tar", &[], &[], None, Some(&id));
        assert_eq!(i.repository.as_deref(), Some("img.tar"));
        assert_eq!(
            i.digest.as_deref(),
            Some(id.as_str()),
            "the image id as the last resort"
        );
        assert!(i.tags.is_empty());
    }
}
