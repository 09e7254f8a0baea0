//! The value rules of Kubernetes and Flux that a stack's own values must meet before they reach an
//! object: object names (DNS-1123 labels and subdomains, Kubernetes' `validation.IsDNS1123Label` /
//! `IsDNS1123Subdomain`), Flux durations (the CRDs' `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`) and Flux
//! Kustomization paths (relative, inside the source). Each rule has a `check_*` function returning the
//! message, and a serde `deserialize_with` helper so stack.toml and module.toml errors keep their line
//! and column.

use serde::{Deserialize, Deserializer};

/// A DNS-1123 label: at most 63 of `[a-z0-9-]`, starting and ending alphanumeric (namespaces, most
/// Flux object names).
pub fn check_dns_label(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("`{value}` is not a valid Kubernetes name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (DNS-1123 label)"))
    }
}

/// A DNS-1123 subdomain: at most 253 characters of dot-separated DNS-1123 labels (object names such as
/// ConfigMaps, Secrets and Flux sources).
pub fn check_dns_subdomain(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("`{value}` is not a valid Kubernetes object name: use at most 253 lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit (DNS-1123 subdomain)"))
    }
}

/// A Flux duration as the Flux CRDs validate it: `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$` (`1h`, `10m`,
/// `1h30m`, `1.5h`, `500ms`), and not zero (an interval of `0s` or a timeout of `0s` is never meant).
pub fn check_flux_duration(value: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "`{value}` is not a Flux duration: use a number and a unit of ms, s, m or h, e.g. \"10m\", \"1h30m\""
        ))
    };
    let b = value.as_bytes();
    if b.is_empty() {
        return bad();
    }
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return bad();
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let frac = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == frac {
                return bad();
            }
        }
        if b[i..].starts_with(b"ms") {
            i += 2;
        } else if i < b.len() && matches!(b[i], b's' | b'm' | b'h') {
            i += 1;
        } else {
            return bad();
        }
    }
    if value.bytes().all(|c| !c.is_ascii_digit() || c == b'0') {
        return Err(format!(
            "`{value}` is zero: a Flux interval or timeout must be longer than that, e.g. \"10m\""
        ));
    }
    Ok(())
}

/// A Flux Kustomization `path`: relative to the source's root (`./kubernetes`, `clusters/home`), with
/// no `..` segment, no backslash and no whitespace; kustomize-controller resolves it inside the
/// source's artifact.
pub fn check_flux_path(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && !value.starts_with('/')
        && !value.contains('\\')
        && !value.chars().any(char::is_whitespace)
        && value.split('/').all(|segment| segment != "..");
    if ok {
        Ok(())
    } else {
        Err(format!("`{value}` is not a Flux path: give a path relative to the source's root, such as \"./kubernetes\", without `..`, whitespace or backslashes"))
    }
}

/// A label's name part or value: at most 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
fn label_part_ok(part: &str) -> bool {
    part.len() <= 63
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && part
            .bytes()
            .next()
            .is_none_or(|b| b.is_ascii_alphanumeric())
        && part
            .bytes()
            .last()
            .is_none_or(|b| b.is_ascii_alphanumeric())
}

/// A label key as Kubernetes validates it (`IsQualifiedName`): an optional DNS-subdomain prefix and `/`,
/// then a name of at most 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let ok = !name.is_empty()
        && label_part_ok(name)
        && prefix.is_none_or(|p| check_dns_subdomain(p).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!("`{key}` is not a valid Kubernetes label key: an optional DNS prefix and `/`, then at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"))
    }
}

/// A label value as Kubernetes validates it: empty, or at most 63 of `[A-Za-z0-9._-]` starting and ending
/// alphanumeric.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if label_part_ok(value) {
        Ok(())
    } else {
        Err(format!("`{value}` is not a valid Kubernetes label value: at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"))
    }
}

/// `deserialize_with` for a map of labels (keys and values checked).
pub fn labels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    let labels = std::collections::BTreeMap::<String, String>::deserialize(d)?;
    for (key, value) in &labels {
        check_label_key(key).map_err(serde::de::Error::custom)?;
        check_label_value(value).map_err(serde::de::Error::custom)?;
    }
    Ok(labels)
}

fn with<'de, D: Deserializer<'de>>(
    d: D,
    check: fn(&str) -> Result<(), String>,
) -> Result<String, D::Error> {
    let value = String::deserialize(d)?;
    check(&value).map_err(serde::de::Error::custom)?;
    Ok(value)
}

/// `deserialize_with` for a DNS-1123 label.
pub fn dns_label<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    with(d, check_dns_label)
}

/// `deserialize_with` for a DNS-1123 subdomain.
pub fn dns_subdomain<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    with(d, check_dns_subdomain)
}

/// `deserialize_with` for a Flux duration.
pub fn flux_duration<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    with(d, check_flux_duration)
}

/// `deserialize_with` for a Flux path.
pub fn flux_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    with(d, check_flux_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_values_follow_kubernetes() {
        for ok in ["app", "pod-security.kubernetes.io/enforce", "a.b_c-d", "A1"] {
            assert!(check_label_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "bad key!", "-a", "a/", "Bad_Prefix/x", &"a".repeat(64)] {
            assert!(check_label_key(bad).is_err(), "{bad}");
        }
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("privileged").is_ok());
        assert!(check_label_value("no spaces").is_err());
    }

    #[test]
    fn flux_durations_follow_the_crd_pattern() {
        for ok in ["1h", "10m", "1h30m", "1.5h", "500ms", "30s", "2h0m0s"] {
            assert!(check_flux_duration(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "one hour", "1", "1d", "h", "1.h", "-1m", "1 h", "1hh", "m5", "0s", "0h0m", "0.0ms",
        ] {
            assert!(check_flux_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_labels_and_subdomains() {
        assert!(check_dns_label("flux-system").is_ok());
        for bad in [
            "Flux System",
            "flux_system",
            "-a",
            "a-",
            "",
            &"a".repeat(64),
            "a.b",
        ] {
            assert!(check_dns_label(bad).is_err(), "{bad}");
        }
        assert!(check_dns_subdomain("a.b-c.d").is_ok());
        assert!(check_dns_subdomain(&"a".repeat(63)).is_ok());
        for bad in ["a..b", ".a", "A", "a_b", &"a".repeat(254)] {
            assert!(check_dns_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flux_paths_stay_inside_the_source() {
        for ok in ["./kubernetes", "kubernetes/apps", "./", "."] {
            assert!(check_flux_path(ok).is_ok(), "{ok}");
        }
        for bad in ["/abs", "../up", "./a/../../b", "a b", "a\\b", ""] {
            assert!(check_flux_path(bad).is_err(), "{bad}");
        }
    }
}
