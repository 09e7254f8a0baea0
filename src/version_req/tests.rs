//! Tests of version requirements: Masterminds semver as Helm and Flux read it, with property tests.

use super::*;

fn ver(s: &str) -> Version {
    parse_tag(s).unwrap_or_else(|| panic!("test version {s:?} does not parse"))
}

/// (requirement, version, matches). Masterminds' own test rows plus the PITFALLS table.
const CASES: &[(&str, &str, bool)] = &[
    // Bare full versions are exact, not caret (PITFALLS: "45.1.0").
    ("6.49.0", "6.49.0", true),
    ("6.49.0", "6.49.1", false),
    ("6.49.0", "6.50.0", false),
    ("45.1.0", "45.2.0", false),
    ("=6.49.0", "6.49.0", true),
    ("=6.49.0", "6.49.1", false),
    ("v6.49.0", "6.49.0", true),
    ("= 2.0.0", "2.0.0", true),
    ("1.2.3", "1.2.3-rc.1", false),
    ("1.2.3-rc.1", "1.2.3-rc.1", true),
    ("1.2.3-rc.1", "1.2.3-rc.2", false),
    ("1.2.3-rc.1", "1.2.3", false),
    // Partial versions and wildcards.
    ("1.2", "1.2.0", true),
    ("1.2", "1.2.9", true),
    ("1.2", "1.3.0", false),
    ("1.2", "1.1.9", false),
    ("=2.0", "2.0.1", true),
    ("1", "1.9.9", true),
    ("1", "2.0.0", false),
    ("1", "0.9.0", false),
    ("1.2.x", "1.2.7", true),
    ("1.2.x", "1.3.0", false),
    ("6.x", "6.0.0", true),
    ("6.x", "6.99.1", true),
    ("6.x", "7.0.0", false),
    ("6.x", "5.9.9", false),
    ("1.*", "1.4.0", true),
    ("1.X", "2.0.0", false),
    ("*", "1.2.3", true),
    ("*", "0.0.0", true),
    ("*", "1.2.3-alpha.1", false),
    ("x", "99.0.0", true),
    ("", "4.5.6", true),
    ("", "1.2.3-alpha.1", false),
    ("*-0", "1.2.3-alpha.1", true),
    // Comparison operators.
    ("!=4.1.0", "4.1.0", false),
    ("!=4.1.0", "4.1.1", true),
    ("!=4.1", "4.1.1", false),
    ("!=4.1", "5.1.0", true),
    ("!=4.x", "4.1.0", false),
    ("!=4.1", "5.1.0-alpha.1", false),
    (">1.1", "1.1.0", false),
    (">1.1", "1.1.1", false),
    (">1.1", "1.2.0", true),
    (">11", "11.9.0", false),
    (">11", "12.0.0", true),
    (">1.2.3", "1.2.4", true),
    (">1.2.3", "1.2.3+build", false),
    ("<1.1", "1.0.9", true),
    ("<1.1", "1.1.0", false),
    ("<1.x", "0.1.1", true),
    ("<1.x", "1.1.1", false),
    (">=1.1", "1.1.0", true),
    (">=1.1", "1.0.9", false),
    (">=1.1", "4.1.0-beta", false),
    ("=>1.1", "1.1.0", true),
    ("<=1.1", "1.1.9", true),
    ("<=1.1", "1.2.0", false),
    ("<=11", "11.2.3", true),
    ("<=11", "12.0.0", false),
    ("<=1.2.3", "1.2.3", true),
    ("=<1.2.3", "1.2.4", false),
    ("> 1.1 < 2", "1.2.1", true),
    // Tilde and ~> (PITFALLS: "~0.45").
    ("~0.45", "0.45.0", true),
    ("~0.45", "0.45.9", true),
    ("~0.45", "0.46.0", false),
    ("~1.2.3", "1.2.3", true),
    ("~1.2.3", "1.2.9", true),
    ("~1.2.3", "1.2.2", false),
    ("~1.2.3", "1.3.0", false),
    ("~1", "1.0.0", true),
    ("~1", "1.9.0", true),
    ("~1", "2.0.0", false),
    ("~>1.2.3", "1.2.5", true),
    ("~>1.2.3", "1.3.0", false),
    ("~*", "2.1.1", true),
    ("~0.0.0", "1.2.3", true),
    // Caret (PITFALLS: "^1.1"), Masterminds' zero-major rules.
    ("^1.1", "1.1.0", true),
    ("^1.1", "1.9.9", true),
    ("^1.1", "2.0.0", false),
    ("^1.1", "1.0.9", false),
    ("^1.2", "1.2.0", true),
    ("^1.2", "2.0.0", false),
    ("^1.2.3", "1.8.9", true),
    ("^1.2.3", "1.2.2", false),
    ("^0.2.3", "0.2.3", true),
    ("^0.2.3", "0.2.9", true),
    ("^0.2.3", "0.3.0", false),
    ("^0.0.3", "0.0.3", true),
    ("^0.0.3", "0.0.4", false),
    ("^0.0", "0.0.9", true),
    ("^0.0", "0.1.0", false),
    ("^0", "0.9.0", true),
    ("^0", "1.0.0", false),
    ("^1.x", "1.1.1", true),
    ("^1.x", "2.0.0", false),
    ("^*", "3.1.4", true),
    // AND by comma or whitespace (PITFALLS: `>=6.40 <7` is a Rust parse error).
    (">=6.40, <7", "6.40.0", true),
    (">=6.40, <7", "6.99.1", true),
    (">=6.40, <7", "7.0.0", false),
    (">=6.40, <7", "6.39.9", false),
    (">=6.40 <7", "6.45.0", true),
    (">=6.40 <7", "7.1.0", false),
    (">=6.40 , <7", "6.45.0", true),
    (">=1.1, <2, !=1.2.3", "1.2.3", false),
    (">=1.1\t<2", "1.5.0", true),
    // OR.
    ("1.2.3 || >=2", "1.2.3", true),
    ("1.2.3 || >=2", "1.2.4", false),
    ("1.2.3 || >=2", "2.5.0", true),
    (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", false),
    (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", true),
    // Hyphen ranges; a partial upper bound includes its whole minor.
    ("1.2 - 1.4.5", "1.2.0", true),
    ("1.2 - 1.4.5", "1.4.5", true),
    ("1.2 - 1.4.5", "1.4.6", false),
    ("1.2 - 1.4.5", "1.1.9", false),
    ("1.2 - 1.4", "1.4.9", true),
    ("1.2 - 1.4", "1.5.0", false),
    ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", true),
    ("1.1-3", "4.3.2", false),
    ("v1 - v2 || 4", "4.1.0", true),
    // Leading v.
    (">=v1.2", "1.3.0", true),
    ("^v1.2", "2.0.0", false),
    // Prereleases: only in AND groups that name one (PITFALLS `>=6.40.0-0, <7`).
    (">=6.40.0-0, <7", "6.45.0-rc.1", true),
    (">=6.40.0-0, <7", "6.40.0-alpha", true),
    (">=6.40.0-0, <7", "6.45.0", true),
    (">=6.40.0-0, <7", "7.0.0", false),
    // As in Helm: `<7` is `<7.0.0`, and 7.0.0-rc.1 sorts below 7.0.0.
    (">=6.40.0-0, <7", "7.0.0-rc.1", true),
    (">=6.40, <7", "6.45.0-rc.1", false),
    (">=6.40.0-0 <7 || >=8", "8.1.0-rc.1", false),
    (">=1.2.3-alpha.1", "1.2.3-alpha.2", true),
    (">=1.2.3-alpha.2", "1.2.3-alpha.1", false),
    ("~1.2.3-beta.2", "1.2.4-beta.2", true),
    ("~1.2.3-beta.2", "1.3.0-beta.2", false),
    ("^1.2.0-alpha.0", "1.2.1-alpha.1", true),
    ("<0-z", "0.0.0-alpha", true),
    // Build metadata is ignored.
    ("1.2.3", "1.2.3+build.7", true),
    ("=1.2.3+a", "1.2.3+b", true),
    ("!=1.2.3+a", "1.2.3", false),
    ("<1.2.3", "1.2.3+zzz", false),
    // Huge numbers do not overflow.
    ("^18446744073709551615", "18446744073709551615.9.9", true),
    (
        "<=18446744073709551615.18446744073709551615",
        "18446744073709551615.18446744073709551615.3",
        true,
    ),
];

#[test]
fn table() {
    let failures: Vec<String> = CASES
        .iter()
        .filter_map(|&(req, v, want)| {
            let parsed = VersionReq::parse(req).unwrap_or_else(|e| panic!("{e}"));
            let got = parsed.matches(&ver(v));
            (got != want).then(|| format!("{req:?} vs {v}: got {got}, want {want}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn exact_and_text() {
    for (req, want) in [
        ("6.49.0", Some("6.49.0")),
        ("=6.49.0", Some("6.49.0")),
        ("v6.49.0", Some("6.49.0")),
        ("= 1.2.3-rc.1+b.2", Some("1.2.3-rc.1+b.2")),
        ("1.2", None),
        ("1.2.x", None),
        (">=1.2.3", None),
        ("~1.2.3", None),
        ("1.2.3 || 1.2.3", None),
        ("1.2.3 - 1.2.3", None),
        ("", None),
    ] {
        let got = VersionReq::parse(req).unwrap().exact();
        assert_eq!(got, want.map(ver), "{req:?}");
    }
    let r: VersionReq = "  >=6.40 <7 ".parse().unwrap();
    assert_eq!(r.as_str(), ">=6.40 <7");
    assert_eq!(r.to_string(), ">=6.40 <7");
    assert_eq!(VersionReq::parse("").unwrap().as_str(), "");
    assert_eq!(r, VersionReq::parse(">=6.40 <7").unwrap());
}

#[test]
fn select() {
    let tags = [
        "1.2.3",
        "1.2.4",
        "1.3.0",
        "latest",
        "sha256-abc.sig",
        "main",
        "2.0.0-rc.1",
    ];
    let sel = |req: &str, tags: &[&'static str]| {
        VersionReq::parse(req)
            .unwrap()
            .select(tags.iter().copied())
            .map(|(t, _)| t)
    };
    assert_eq!(sel("~1.2", &tags), Some("1.2.4"));
    assert_eq!(
        sel("*", &tags),
        Some("1.3.0"),
        "prereleases excluded unless asked"
    );
    assert_eq!(sel("", &tags), Some("1.3.0"));
    assert_eq!(sel(">=2.0.0-0", &tags), Some("2.0.0-rc.1"));
    assert_eq!(sel("2.0.0-rc.1", &tags), Some("2.0.0-rc.1"));
    assert_eq!(
        sel("1.2.3", &tags),
        Some("1.2.3"),
        "bare version is exact, not caret"
    );
    assert_eq!(sel(">=3", &tags), None);
    assert_eq!(sel("*", &["latest", "main"]), None);
    // An exact string match wins over a higher match, as in Helm.
    assert_eq!(sel("1.2", &["1.2.5", "1.2"]), Some("1.2"));
    assert_eq!(sel("1.2", &["1.2.0", "1.2.5"]), Some("1.2.5"));
    assert_eq!(sel("v1.2.3", &["1.2.3", "v1.2.3"]), Some("v1.2.3"));
    // `_` stands for `+` in OCI tags.
    let (tag, v) = VersionReq::parse("1.2.3+build.1")
        .unwrap()
        .select(["1.2.3_build.1", "1.2.2"])
        .unwrap();
    assert_eq!((tag, v), ("1.2.3_build.1", ver("1.2.3+build.1")));
    assert_eq!(sel(">=1", &["0.9.0", "1.0.0_a"]), Some("1.0.0_a"));
    assert_eq!(
        VersionReq::parse("1.2.3_x").unwrap().exact(),
        Some(ver("1.2.3+x")),
        "the tag spelling of build metadata is accepted (issue: users copy tags)"
    );
    assert_eq!(
        sel("1.2.3+x", &["1.2.3_x", "1.2.3+x"]),
        Some("1.2.3+x"),
        "literal beats mapped"
    );
    // Prereleases only when the requirement names one (PITFALLS row).
    let flux = ["6.44.0", "6.45.0-rc.1", "7.0.0"];
    assert_eq!(sel(">=6.40, <7", &flux), Some("6.44.0"));
    assert_eq!(sel(">=6.40.0-0, <7", &flux), Some("6.45.0-rc.1"));
    // The answer does not depend on tag order.
    let mut rev = tags;
    rev.reverse();
    assert_eq!(sel("^1", &rev), Some("1.3.0"));
    assert_eq!(
        sel("^1", &["v1.2.3", "1.2.3"]),
        sel("^1", &["1.2.3", "v1.2.3"])
    );
    assert_eq!(sel("^1", &["1.2.3+a", "1.2.3+b"]), Some("1.2.3+b"));
}

#[test]
fn tags() {
    for (tag, want) in [
        ("1.2.3", Some("1.2.3")),
        ("v1.2.3", Some("1.2.3")),
        ("1.2", Some("1.2.0")),
        ("6", Some("6.0.0")),
        ("1.2.3_build.5", Some("1.2.3+build.5")),
        ("1.2.3-rc.1_sha.abc", Some("1.2.3-rc.1+sha.abc")),
        ("latest", None),
        ("sha256-abc.sig", None),
        ("main", None),
        ("1.2.x", None),
        ("1.2.3.4", None),
        ("1.2.3-01", None),
        ("1.2.3_", None),
        ("v", None),
        ("", None),
    ] {
        let want = want.map(|w| Version::parse(w).unwrap());
        assert_eq!(parse_tag(tag), want, "{tag:?}");
    }
    assert_eq!(
        version_to_tag(&ver("1.2.3-rc.1+build.5")),
        "1.2.3-rc.1_build.5"
    );
    assert_eq!(version_to_tag(&ver("1.2.3")), "1.2.3");
}

#[test]
fn errors() {
    let err = VersionReq::parse(">=abc").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid version requirement ">=abc": "abc" is not a version"#
    );
    for (req, needle) in [
        ("1.2.3.4", "more than three numeric parts"),
        (">=", r#"">=" has no version after it"#),
        (">= , <2", "has no version"),
        ("1.2 ||", r#"a side of "||" is empty"#),
        ("|| 1.2", "empty"),
        ("||", "empty"),
        (">=1,,<2", r#"a "," must stand between"#),
        (">=1,", r#"a "," must stand between"#),
        (",>=1", r#"a "," must stand between"#),
        ("1.2<2", r#"expected "," or a space before "<2""#),
        ("99999999999999999999", "is too large"),
        ("1.2.3-", r#"nothing after "-""#),
        ("1.2.3-01", "leading zero"),
        ("1.2.3+", r#"nothing after "+""#),
        ("1..2", "between dots is empty"),
        ("1 - ", "needs a version after"),
        (">=1 - 2", "takes plain versions"),
        ("1 - <2", "takes plain versions"),
        ("1.2 | 1.3", r#"use "||""#),
        ("==1", r#"unexpected "=1" after "=""#),
        ("latest", r#""latest" is not a version"#),
        ("1.x.y", r#""1.x.y" is not a version"#),
        ("~>~1", "unexpected"),
        ("!1.2", "unexpected"),
        ("１.２", "unexpected"),
    ] {
        let err = VersionReq::parse(req).expect_err(req).to_string();
        assert!(err.contains(needle), "{req:?}: {err}");
        assert!(
            err.starts_with(&format!("invalid version requirement {:?}: ", req.trim())),
            "{err}"
        );
    }
}

#[test]
fn serde_round_trip() {
    let r: VersionReq = serde_json::from_str(r#""^1.2 || 2.0.0""#).unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), r#""^1.2 || 2.0.0""#);
    let err = serde_json::from_str::<VersionReq>(r#""> = 1""#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(r#"invalid version requirement "> = 1""#),
        "{err}"
    );
    assert!(serde_json::from_str::<VersionReq>("3").is_err());
}

#[test]
fn weird_inputs_do_not_panic() {
    // Space-separated, then the ones that contain spaces.
    let mut weird: Vec<&str> = "| || ||| , - -- + v vv1 V1 x.x.x.x *.*.* 1.*.3 x-0 *+b ~ ^ ~> != ! <>1 \
            >=<1 =>=1 18446744073709551615 18446744073709551616 ^0.0.18446744073709551615 \
            >18446744073709551615.18446744073709551615.18446744073709551615 !=18446744073709551615.x \
            ~18446744073709551615.18446744073709551615.18446744073709551615-0 1.2.3- 1.2.3+ 1.2.3-+ \
            1.2.3-a..b 1.2.3-ü 🦀 1.2.3\u{0} .1 1. 1.. .. 0 0.0.0 v0 >0 <0 <=* >* !=* ^*-0 1,2 \
            1.2.3_4 _ 1.2.3-- 1.2.3-0.- 1.2.3+- 1.2.3+."
            .split(' ')
            .collect();
    weird.extend([
        "",
        " ",
        "\t\n",
        "|| ||",
        ", ,",
        " - ",
        "- 1",
        "1 -",
        "1 - 2 - 3",
        "1 ,2",
    ]);
    weird.extend([
        "1.2.3 || ",
        " || 1",
        "a || b",
        "1, 2 || 3 , 4",
        "1.2\u{2003}<2",
        "\u{a0}1.2",
    ]);
    let versions = [
        "0.0.0",
        "0.0.0-0",
        "1.2.3",
        "1.2.3-rc.1",
        "18446744073709551615.0.0",
    ]
    .map(ver);
    let long = "1.2.3 ".repeat(2000) + &"|| >=1".repeat(500);
    for text in weird.iter().copied().chain([long.as_str()]) {
        let _ = parse_tag(text);
        if let Ok(req) = VersionReq::parse(text) {
            for v in &versions {
                let _ = req.matches(v);
            }
            let _ = req.exact();
            let _ = req.select(weird.iter().copied());
            assert_eq!(VersionReq::parse(req.as_str()).as_ref(), Ok(&req));
        }
    }
}

#[test]
fn oci_tag_spelling_of_build_metadata_is_the_version() {
    let req = VersionReq::parse("104.1.1_up57.0.3").unwrap();
    assert_eq!(req.as_str(), "104.1.1_up57.0.3");
    let exact = req.exact().unwrap();
    assert_eq!(exact.to_string(), "104.1.1+up57.0.3");
    assert_eq!(version_to_tag(&exact), "104.1.1_up57.0.3");
    assert!(req.matches(&parse_tag("104.1.1_up57.0.3").unwrap()));
}

#[test]
fn helm_reads_only_strict_semver_tags_from_a_registry() {
    for ok in ["1.5.1", "104.1.1_up57.0.3", "1.0.0-rc.1"] {
        assert!(parse_oci_tag(ok).is_some(), "{ok}");
    }
    for not in ["v1.6.0", "1.6", "latest", "sha256-abc.sig", "01.2.3"] {
        assert!(parse_oci_tag(not).is_none(), "{not}");
    }
}
