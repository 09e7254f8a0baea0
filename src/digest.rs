//! Content digests. Two algorithms on purpose: sha256 is what registries, Helm indexes and Flux state and
//! verify (so it is recorded exactly as upstream states it), blake3 is ours: fast to recompute over every
//! vendored file on each build, and the key of the content-addressed cache.

use sha2::Digest as _;

/// `sha256:<hex>`, the OCI digest form.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// `<hex>` of blake3.
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
}
