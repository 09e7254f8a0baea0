//! Chart version requirements with the semantics of Helm and Flux (Masterminds semver v3).
//!
//! Users copy requirements from HelmRelease, HelmChart and OCIRepository manifests, so a
//! requirement here must select the same chart version Helm or Flux would. The `semver` crate's
//! `VersionReq` uses Cargo rules, which differ in ways that pick the wrong chart without an
//! error: a bare `45.1.0` means `^45.1.0` there (Helm: exactly 45.1.0), `1.2` means `^1.2`
//! (Helm: `1.2.x`), `>=6.40.0-0, <7` admits only `6.40.0-*` prereleases (Helm: any prerelease in
//! range), and `||`, hyphen ranges, `!=`, `~>`, `=>`, space-separated AND and a leading `v` do
//! not parse. So this module owns a small matcher that follows Masterminds' `constraints.go`
//! operator by operator, and uses `semver::Version` only to hold versions.
//!
//! Where Masterminds' behaviour is accidental, this module picks the safe reading: an empty side
//! of `||` (`1.2 ||`) is an error rather than a silent `*`, and `^*` matches everything, as
//! Masterminds documents (its code matches only 0.0.0). Its 512-byte and 32-group limits are not
//! copied: this parser is linear, so long input costs time in proportion only.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use semver::{BuildMetadata, Prerelease, Version};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A requirement that could not be parsed; the message names the text and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version requirement {requirement:?}: {reason}")]
pub struct VersionReqError {
    /// The requirement as written (trimmed).
    pub requirement: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed requirement: alternatives (`||`), each a set of comparators that must all hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionReq {
    text: String,
    groups: Vec<Group>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    comparators: Vec<Comparator>,
    /// Masterminds admits prerelease versions only into a group that names a prerelease.
    has_pre: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// No operator or `=`: exact, or tilde when the version has wildcards or missing parts.
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEq,
    LessEq,
    Tilde,
    Caret,
}

/// One comparator, kept the way Masterminds keeps it: the version with wildcards and missing
/// parts zeroed, plus which part was "dirty", because each operator reads those flags itself.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Comparator {
    op: Op,
    con: Version,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// An operator as written, and what it means.
type OpEntry = (&'static str, Op);

/// Operators, longest first so `>=` is not read as `>` followed by `=1`.
const OPS: &[OpEntry] = &[
    ("!=", Op::NotEqual),
    (">=", Op::GreaterEq),
    ("=>", Op::GreaterEq),
    ("<=", Op::LessEq),
    ("=<", Op::LessEq),
    ("~>", Op::Tilde),
    (">", Op::Greater),
    ("<", Op::Less),
    ("=", Op::TildeOrEqual),
    ("~", Op::Tilde),
    ("^", Op::Caret),
];

impl VersionReq {
    /// Parses Helm / Flux requirement syntax. An empty requirement means `*`, as in Helm.
    pub fn parse(text: &str) -> Result<VersionReq, VersionReqError> {
        let text = text.trim();
        let fail = |reason: String| VersionReqError {
            requirement: text.to_owned(),
            reason,
        };
        // The OCI tag spelling of build metadata (`104.1.1_up57.0.3`: tags cannot hold `+`) is the
        // version `104.1.1+up57.0.3`, as Helm reads the tag; users copy requirements from tag lists.
        let spelled = text.replace('_', "+");
        let groups = if text.is_empty() {
            vec![parse_group("*").map_err(fail)?]
        } else {
            spelled
                .split("||")
                .map(|alt| {
                    if alt.trim().is_empty() {
                        Err(r#"a side of "||" is empty"#.to_owned())
                    } else {
                        parse_group(alt)
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?
        };
        Ok(VersionReq {
            text: text.to_owned(),
            groups,
        })
    }

    /// The requirement as written (trimmed), so lockfiles and messages echo the user's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `version` satisfies any alternative. Build metadata is ignored.
    pub fn matches(&self, version: &Version) -> bool {
        self.groups
            .iter()
            .any(|g| g.comparators.iter().all(|c| c.check(version, g.has_pre)))
    }

    /// Some(v) when the requirement names exactly one version (bare `1.2.3`, `=1.2.3`,
    /// `v1.2.3`), so a resolver can fetch that tag directly instead of listing tags.
    pub fn exact(&self) -> Option<Version> {
        match self.groups.as_slice() {
            [g] => match g.comparators.as_slice() {
                [c] if c.op == Op::TildeOrEqual && !c.dirty => Some(c.con.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Picks a candidate like Helm: a candidate equal to the requirement text wins (first
    /// literally, then after `_`→`+`); otherwise the highest matching version. Candidates that
    /// are not versions (see [`parse_tag`]) are ignored. Ties in precedence (`1.2.3` vs
    /// `v1.2.3`, or differing build metadata) go to the higher build metadata, then the higher
    /// string, so the answer does not depend on the registry's tag order.
    pub fn select<'a, I: IntoIterator<Item = &'a str>>(
        &self,
        candidates: I,
    ) -> Option<(&'a str, Version)> {
        let mut literal = None;
        let mut mapped = None;
        let mut best: Option<(&'a str, Version)> = None;
        for tag in candidates {
            let Some(version) = parse_tag(tag) else {
                continue;
            };
            if literal.is_none() && tag == self.text {
                literal = Some((tag, version.clone()));
            } else if mapped.is_none() && tag.replace('_', "+") == self.text {
                mapped = Some((tag, version.clone()));
            }
            let higher = best.as_ref().is_none_or(|(t, v)| (&version, tag) > (v, *t));
            if higher && self.matches(&version) {
                best = Some((tag, version));
            }
        }
        literal.or(mapped).or(best)
    }
}

impl Comparator {
    /// Mirrors Masterminds' per-operator functions, including their handling of dirty parts.
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        let cmp = precedence(v, c);
        match self.op {
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.minor != v.minor {
                        return true;
                    }
                    if self.patch_dirty {
                        return v.pre != c.pre;
                    }
                    if c.patch != v.patch {
                        return true;
                    }
                }
                cmp != Ordering::Equal
            }
            Op::Greater => {
                if !self.dirty {
                    return cmp == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false; // `>1` needs 2.0.0 or more
                }
                if self.patch_dirty {
                    return v.minor > c.minor; // `>1.2` needs 1.3.0 or more
                }
                cmp == Ordering::Greater
            }
            Op::Less => cmp == Ordering::Less,
            Op::GreaterEq => cmp != Ordering::Less,
            Op::LessEq => {
                if !self.dirty {
                    return cmp != Ordering::Greater;
                }
                // `<=1.4` admits 1.4.x and `<=1` admits 1.x.
                v.major < c.major
                    || (v.major == c.major && (self.minor_dirty || v.minor <= c.minor))
            }
            Op::Tilde => self.tilde(v, cmp),
            Op::TildeOrEqual if self.dirty => self.tilde(v, cmp),
            Op::TildeOrEqual => cmp == Ordering::Equal,
            Op::Caret => {
                if cmp == Ordering::Less {
                    false
                } else if self.dirty && !self.minor_dirty && !self.patch_dirty {
                    true // `^*`
                } else if c.major > 0 || self.minor_dirty {
                    v.major == c.major
                } else if v.major > 0 {
                    false
                } else if c.minor > 0 || self.patch_dirty {
                    v.minor == c.minor
                } else {
                    v.minor == 0 && v.patch == c.patch // `^0.0.3` is 0.0.3 only
                }
            }
        }
    }

    fn tilde(&self, v: &Version, cmp: Ordering) -> bool {
        let c = &self.con;
        if cmp == Ordering::Less {
            return false;
        }
        // `~0.0.0`, and so `*`, `x` and the empty requirement, accept everything.
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (self.minor_dirty || v.minor == c.minor)
    }
}

/// Semver precedence without build metadata, as Masterminds' `Compare` (the `Ord` of
/// `semver::Version` would order by build metadata too).
fn precedence(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch, &a.pre).cmp(&(b.major, b.minor, b.patch, &b.pre))
}

/// Parses one AND group: comparators separated by whitespace or a single comma, and hyphen
/// ranges `A - B`, which become `>=A` and `<=B` as in Masterminds' `rewriteRange`.
fn parse_group(g: &str) -> Result<Group, String> {
    let b = g.as_bytes();
    let mut comparators = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        i = skip_ws(b, i);
        if i == b.len() {
            break;
        }
        if b[i] == b',' {
            i = skip_ws(b, i + 1);
            if comparators.is_empty() || i == b.len() || b[i] == b',' {
                return Err(r#"a "," must stand between two comparators"#.to_owned());
            }
        } else if !comparators.is_empty() && i == start {
            return Err(format!(r#"expected "," or a space before {:?}"#, &g[i..]));
        }
        let (op, lower, next) = parse_atom(g, i)?;
        i = next;
        let j = skip_ws(b, i);
        let is_range =
            j > i && b.get(j) == Some(&b'-') && b.get(j + 1).is_none_or(u8::is_ascii_whitespace);
        if !is_range {
            comparators.push(comparator(op.map_or(Op::TildeOrEqual, |o| o.1), lower));
            continue;
        }
        let k = skip_ws(b, j + 1);
        if k == b.len() {
            return Err(r#"a hyphen range needs a version after " - ""#.to_owned());
        }
        let (op2, upper, next) = parse_atom(g, k)?;
        if let Some((text, _)) = op.or(op2) {
            return Err(format!("a hyphen range takes plain versions, not {text:?}"));
        }
        comparators.push(comparator(Op::GreaterEq, lower));
        comparators.push(comparator(Op::LessEq, upper));
        i = next;
    }
    if comparators.is_empty() {
        return Err("no comparator".to_owned());
    }
    let has_pre = comparators.iter().any(|c| !c.con.pre.is_empty());
    Ok(Group {
        comparators,
        has_pre,
    })
}

/// Parses an optional operator, optional whitespace and a version token starting at `i`.
fn parse_atom(g: &str, i: usize) -> Result<(Option<OpEntry>, Partial, usize), String> {
    let b = g.as_bytes();
    let op = OPS
        .iter()
        .copied()
        .find(|(text, _)| g[i..].starts_with(text));
    let start = skip_ws(b, i + op.map_or(0, |o| o.0.len()));
    let mut end = start;
    while end < b.len() && (b[end].is_ascii_alphanumeric() || b".-+*_".contains(&b[end])) {
        end += 1;
    }
    if end == start {
        let rest = &g[start..];
        return Err(match op {
            _ if rest.starts_with('|') && !rest.starts_with("||") => {
                r#"a single "|" is not an operator; use "||" between alternatives"#.to_owned()
            }
            Some((text, _)) if rest.is_empty() || rest.starts_with(',') => {
                format!("{text:?} has no version after it")
            }
            Some((text, _)) => format!("unexpected {rest:?} after {text:?}"),
            None => format!("unexpected {rest:?}"),
        });
    }
    Ok((op, parse_partial(&g[start..end], true)?, end))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

enum Seg {
    Num(u64),
    Wild,
}

/// A version as written in a requirement or tag: up to three parts, some possibly missing or
/// wildcards, then prerelease and build metadata.
struct Partial {
    segs: Vec<Seg>,
    pre: Prerelease,
    build: BuildMetadata,
}

/// Reads `v?N(.N(.N)?)?(-pre)?(+build)?` like Masterminds' lenient `NewVersion`; with
/// `wildcards`, a part may also be `x`, `X` or `*`.
fn parse_partial(token: &str, wildcards: bool) -> Result<Partial, String> {
    let bad = |why: String| format!("{token:?} is not a version{why}");
    let body = token.strip_prefix('v').unwrap_or(token);
    let (rest, build) = body
        .split_once('+')
        .map_or((body, None), |(r, b)| (r, Some(b)));
    let (core, pre) = rest
        .split_once('-')
        .map_or((rest, None), |(c, p)| (c, Some(p)));
    let mut segs = Vec::new();
    for part in core.split('.') {
        if segs.len() == 3 {
            return Err(bad(": more than three numeric parts".to_owned()));
        }
        segs.push(
            if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                Seg::Num(
                    part.parse()
                        .map_err(|_| bad(format!(": {part} is too large")))?,
                )
            } else if wildcards && matches!(part, "x" | "X" | "*") {
                Seg::Wild
            } else if part.is_empty() && !core.is_empty() {
                return Err(bad(": a part between dots is empty".to_owned()));
            } else {
                return Err(bad(String::new()));
            },
        );
    }
    let pre = match pre {
        None => Prerelease::EMPTY,
        Some("") => return Err(bad(r#": nothing after "-""#.to_owned())),
        Some(p) => Prerelease::new(p).map_err(|e| bad(format!(": prerelease {p:?}: {e}")))?,
    };
    let build = match build {
        None => BuildMetadata::EMPTY,
        Some("") => return Err(bad(r#": nothing after "+""#.to_owned())),
        Some(m) => {
            BuildMetadata::new(m).map_err(|e| bad(format!(": build metadata {m:?}: {e}")))?
        }
    };
    Ok(Partial { segs, pre, build })
}

/// Builds a comparator the way Masterminds' `parseConstraint` does: the first wildcard or
/// missing part zeroes itself and everything after it and marks the comparator dirty.
fn comparator(op: Op, p: Partial) -> Comparator {
    let num = |i: usize| match p.segs.get(i) {
        Some(Seg::Num(n)) => Some(*n),
        _ => None,
    };
    let (a, b, c) = (num(0), num(1), num(2));
    let mut cmp = Comparator {
        op,
        con: Version::new(0, 0, 0),
        dirty: true,
        minor_dirty: false,
        patch_dirty: false,
    };
    match (a, b, c) {
        (None, _, _) => {}
        (Some(major), None, _) => {
            cmp.con.major = major;
            cmp.minor_dirty = true;
        }
        (Some(major), Some(minor), None) => {
            cmp.con = Version::new(major, minor, 0);
            cmp.patch_dirty = true;
        }
        (Some(major), Some(minor), Some(patch)) => {
            cmp.con = Version::new(major, minor, patch);
            cmp.con.build = p.build;
            cmp.dirty = false;
        }
    }
    cmp.con.pre = p.pre;
    cmp
}

/// Parses a version the way Helm reads an index.yaml entry or an OCI tag: optional leading `v`,
/// `_` replaced by `+` (OCI tags cannot hold `+`), and partial versions `1.2` -> 1.2.0, `6` ->
/// 6.0.0 accepted (Masterminds `NewVersion`). Returns None for non-versions like `latest`,
/// `sha256-abc.sig`, `main`.
pub fn parse_tag(tag: &str) -> Option<Version> {
    let p = parse_partial(&tag.replace('_', "+"), false).ok()?;
    let n = |i: usize| match p.segs.get(i) {
        Some(Seg::Num(n)) => *n,
        _ => 0,
    };
    let (major, minor, patch) = (n(0), n(1), n(2));
    Some(Version {
        major,
        minor,
        patch,
        pre: p.pre,
        build: p.build,
    })
}

/// Parses an OCI tag the way Helm's registry client lists chart versions (`Tags` in pkg/registry:
/// `semver.StrictNewVersion` after `_`→`+`): only full `MAJOR.MINOR.PATCH` versions without a `v`
/// prefix. A repository that also holds image tags (`v1.6.0`) next to chart tags (`1.5.1`) therefore
/// offers only the chart tags.
pub fn parse_oci_tag(tag: &str) -> Option<Version> {
    let version = Version::parse(&crate::helm_oci::version_for_tag(tag)).ok()?;
    Some(version)
}

/// The OCI tag for a chart version: `+` becomes `_`, as Helm pushes and pulls it.
pub fn version_to_tag(version: &Version) -> String {
    crate::helm_oci::tag_for_version(&version.to_string())
}

impl fmt::Display for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for VersionReq {
    type Err = VersionReqError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VersionReq::parse(s)
    }
}

impl Serialize for VersionReq {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// Validates while deserializing, so a config loader (e.g. toml) reports line and column.
impl<'de> Deserialize<'de> for VersionReq {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        VersionReq::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
