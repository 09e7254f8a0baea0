//! `cargo bench --bench parse`: how long `stack build` takes to read a module file of nested `[` (which
//! the YAML parser handles in time quadratic in the depth, so `stack` refuses it before parsing) and a
//! large but ordinary file of the same size, end to end through the binary. Prints figures; asserts
//! nothing about time (timings belong here, never in tests).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

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

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bench = std::env::args().any(|a| a == "--bench");
    // Without `--bench` (`cargo test --all-targets`): one small size as a smoke test, no figures.
    let sizes: &[usize] = if bench {
        &[10_000, 100_000, 300_000, 1_000_000]
    } else {
        &[10_000]
    };
    for &size in sizes {
        let nested = format!("k: {}{}\n", "[".repeat(size / 2), "]".repeat(size / 2));
        let wide: String = (0..size / 20)
            .map(|i| format!("k{i:07}: [[[[x]]]]\n"))
            .collect();
        for (label, text) in [("nested [", nested), ("wide [[[[x]]]]", wide)] {
            let dir = tempfile::tempdir().unwrap();
            copy(&repo.join("modules"), &dir.path().join("modules"));
            fs_err::write(
                dir.path().join("stack.toml"),
                "[stack]\nname = \"bench\"\nflux = { source = { kind = \"GitRepository\", name = \"flux-system\" }, path = \"./k\" }\n\n[modules]\nenabled = []\n\n[settings]\ncluster_name = \"bench\"\n",
            )
            .unwrap();
            fs_err::write(dir.path().join("modules/alerts/hubble-rules.yaml"), &text).unwrap();
            let start = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_stack"))
                .arg("-C")
                .arg(dir.path())
                .arg("build")
                .output()
                .unwrap();
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            let code = out.status.code().unwrap_or(-1);
            if bench {
                println!(
                    "{label:<16} {:>9} bytes  exit {code}  {ms:>8.1} ms",
                    text.len()
                );
            }
        }
    }
}
