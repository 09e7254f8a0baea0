//! Content digests. Two algorithms on purpose: sha256 is what registries, Helm indexes and Flux state and
//! verify (so it is recorded exactly as upstream states it), blake3 is ours: fast to recompute over every
//! vendored file on each build, and the key of the content-addressed cache.

use sha2::Digest as _;

/// The sha256 of `bytes` in the OCI digest form (OCI image spec, "Digests"): `sha256:` and 64 lowercase
/// hex digits. What stack.lock records as a chart's `digest` and Flux verifies.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The blake3 of `bytes` as 64 lowercase hex digits, no prefix: what stack.lock records as `blake3`
/// and what names an entry of the content-addressed cache.
pub fn blake3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Normalises a digest as an index or registry may state it (`abc…`, `sha256:abc…`, upper case) to
/// `sha256:<lowercase hex>`; `None` when it is not a sha256 digest.
pub fn normalize_sha256(stated: &str) -> Option<String> {
    let hex_part = stated
        .strip_prefix("sha256:")
        .unwrap_or(stated)
        .to_ascii_lowercase();
    (hex_part.len() == 64 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{hex_part}"))
}

/// Defines a digest newtype over its canonical text, validated wherever one is made (so a hand-edited
/// `digest = "nope"` in stack.lock is an error with line and column, not a value emitted to Flux).
macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident, $check:expr, $form:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The canonical text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok($name(s.to_string()))
                } else {
                    Err(format!(concat!("`{}` is not a ", $form), s))
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<$name, String> {
                s.parse()
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == &other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

digest_type!(
    /// `sha256:<64 lowercase hex>`: what registries, Helm indexes and Flux state and verify.
    Sha256Digest,
    |s| s.strip_prefix("sha256:").is_some_and(|h| lower_hex(h, 64)),
    "sha256 digest: write `sha256:` and 64 lowercase hex digits"
);

digest_type!(
    /// 64 lowercase hex digits of blake3: the content cache's key and the vendored files' check.
    Blake3Digest,
    |s| lower_hex(s, 64),
    "blake3 digest: write 64 lowercase hex digits"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            blake3(b""),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn normalize_accepts_helm_index_forms() {
        let hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(normalize_sha256(hex).unwrap(), sha256(b""));
        assert_eq!(
            normalize_sha256(&format!("sha256:{hex}")).unwrap(),
            sha256(b"")
        );
        assert_eq!(normalize_sha256("sha512:abc"), None);
    }

    #[test]
    fn digest_types_accept_only_their_canonical_form() {
        assert!(sha256(b"").parse::<Sha256Digest>().is_ok());
        assert!(blake3(b"").parse::<Blake3Digest>().is_ok());
        for bad in [
            "nope",
            "sha256:",
            "sha512:00",
            &sha256(b"").to_uppercase(),
            &blake3(b""),
        ] {
            let err = bad.parse::<Sha256Digest>().unwrap_err();
            assert!(err.contains("is not a sha256 digest"), "{err}");
        }
        for bad in ["nope", &blake3(b"")[1..], &sha256(b"")] {
            let err = bad.parse::<Blake3Digest>().unwrap_err();
            assert!(err.contains("is not a blake3 digest"), "{err}");
        }
    }
}
