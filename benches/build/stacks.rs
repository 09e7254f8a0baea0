//! The stacks the benchmark builds: the repo's default stack with its 22 community dashboards switched
//! on (their bytes are the real upstream files of ../shared/upstream, as tests/mirror/mirror.toml maps
//! them), and generated stacks of N URL dashboards cycling through those upstream files, each with its
//! own uid and title so provisioning's uniqueness checks pass.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where the real upstream files live: `STACK_UPSTREAM_DATA` or ../shared/upstream.
pub fn upstream(repo: &Path) -> PathBuf {
    std::env::var_os("STACK_UPSTREAM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("../shared/upstream"))
}

fn read(p: &Path) -> String {
    fs_err::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        fs_err::create_dir_all(to).unwrap();
        for e in fs_err::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else {
        fs_err::copy(from, to).unwrap();
    }
}

/// A copy of the repo's stack (stack.toml, stack.lock, modules/) in `dir`.
fn base(repo: &Path, dir: &Path) {
    fs_err::create_dir_all(dir).unwrap();
    for item in ["stack.toml", "stack.lock", "modules"] {
        copy(&repo.join(item), &dir.join(item));
    }
}

/// The default stack with `community_dashboards = true` and each locked dashboard vendored.
pub fn default_stack(repo: &Path, dir: &Path) {
    base(repo, dir);
    for (path, file) in community(repo, dir) {
        let dest = dir.join(path);
        fs_err::create_dir_all(dest.parent().unwrap()).unwrap();
        fs_err::copy(&file, dest).unwrap();
    }
    let toml_path = dir.join("stack.toml");
    let text = read(&toml_path).replacen(
        "community_dashboards = false",
        "community_dashboards = true",
        1,
    );
    fs_err::write(toml_path, text).unwrap();
}

/// Each locked community dashboard's vendor path and the upstream file that holds its bytes.
fn community(repo: &Path, stack: &Path) -> Vec<(String, PathBuf)> {
    let mirror: toml::Value =
        toml::from_str(&read(&repo.join("tests/mirror/mirror.toml"))).unwrap();
    let lock: toml::Value = toml::from_str(&read(&stack.join("stack.lock"))).unwrap();
    let files = mirror["raw"]["file"].as_array().unwrap();
    let dashboards = upstream(repo).join("dashboards");
    lock["dashboard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let source = entry["source"].as_str().unwrap();
            let file = files
                .iter()
                .find(|f| {
                    let [repo, commit, path] =
                        ["repo", "commit", "path"].map(|k| f[k].as_str().unwrap());
                    source.ends_with(&format!("/{repo}/{commit}/{path}"))
                })
                .unwrap_or_else(|| panic!("tests/mirror/mirror.toml serves no file for {source}"));
            let path = dashboards.join(file["file"].as_str().unwrap());
            assert!(
                path.is_file(),
                "the upstream dashboards are missing: {}",
                path.display()
            );
            (entry["path"].as_str().unwrap().to_string(), path)
        })
        .collect()
}

/// The default stack (community dashboards off) plus `n` URL dashboards, locked and vendored, each
/// pretty-printed as upstream ships them.
pub fn generated_stack(repo: &Path, dir: &Path, n: usize) {
    add_dashboards(repo, dir, n, |doc| serde_json::to_vec_pretty(doc).unwrap());
}

/// The default stack plus one minified dashboard of about 900 KiB (node-exporter-full's panels, repeated):
/// 1.8 MB when pretty-printed, over a ConfigMap's 1 MiB.
pub fn minified_stack(repo: &Path, dir: &Path) {
    add_dashboards(repo, dir, 1, |doc| {
        let mut doc = doc.clone();
        let panels = doc["panels"].as_array().unwrap().clone();
        let mut all = Vec::new();
        while serde_json::to_vec(&all).unwrap().len() < 900 * 1024 - 30_000 {
            all.extend(panels.iter().cloned());
        }
        doc["panels"] = all.into();
        serde_json::to_vec(&doc).unwrap()
    });
}

/// The author datasource uids the community dashboards carry, mapped as the repo's stack.toml maps them
/// (a plugin id means what the active backend provisions).
const DATASOURCES: &str =
    "datasources = { PBFA97CFB590B2093 = \"prometheus\", prometheus = \"prometheus\" }";

fn add_dashboards(
    repo: &Path,
    dir: &Path,
    n: usize,
    bytes_of: impl Fn(&serde_json::Value) -> Vec<u8>,
) {
    base(repo, dir);
    let mut sources: Vec<(String, serde_json::Value)> = community(repo, dir)
        .iter()
        .map(|(_, file)| {
            (
                file.display().to_string(),
                serde_json::from_str(&read(file)).unwrap(),
            )
        })
        .collect();
    // The largest first, so the minified stack repeats node-exporter-full.
    sources.sort_by_key(|(file, _)| std::cmp::Reverse(fs_err::metadata(file).unwrap().len()));
    let (mut manifest, mut lock) = (String::new(), String::new());
    fs_err::create_dir_all(dir.join("vendor/dashboards")).unwrap();
    for i in 0..n {
        let name = format!("gen-{i:04}");
        let mut doc = sources[i % sources.len()].1.clone();
        let title = format!("{} #{i}", doc["title"].as_str().unwrap());
        doc["title"] = title.clone().into();
        doc["uid"] = format!("bench-{i:04}").into();
        let bytes = bytes_of(&doc);
        let path = format!("vendor/dashboards/{name}.json");
        fs_err::write(dir.join(&path), &bytes).unwrap();
        let url = format!("https://dashboards.example/{name}.json");
        writeln!(
            manifest,
            "\n[dashboards.{name}]\nurl = \"{url}\"\nfolder = \"Bench\"\n{DATASOURCES}"
        )
        .unwrap();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let b3 = blake3::hash(&bytes).to_hex();
        let title = title.replace('\\', "\\\\").replace('"', "\\\"");
        writeln!(lock, "\n[[dashboard]]\nname = \"{name}\"\nsource = \"{url}\"\ntitle = \"{title}\"\npath = \"{path}\"\ndigest = \"sha256:{sha}\"\nblake3 = \"{b3}\"").unwrap();
    }
    append(&dir.join("stack.toml"), &manifest);
    append(&dir.join("stack.lock"), &lock);
}

/// stack.lock's fingerprint covers the dashboards just added; the build says which one it expects.
pub fn fix_fingerprint(bin: &Path, dir: &Path) {
    let out = std::process::Command::new(bin)
        .arg("-C")
        .arg(dir)
        .arg("build")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let Some(rest) = err.split("stack.toml gives ").nth(1) else {
        return;
    };
    let (expected, rest) = rest.split_once(", the lock has ").unwrap();
    let actual = rest.split(')').next().unwrap();
    let lock = dir.join("stack.lock");
    fs_err::write(&lock, read(&lock).replacen(actual, expected, 1)).unwrap();
}

fn append(path: &Path, text: &str) {
    let mut all = read(path);
    all.push_str(text);
    fs_err::write(path, all).unwrap();
}
