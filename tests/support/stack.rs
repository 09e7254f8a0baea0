//! `TestStack`: a stack directory in a temp dir and the real `stack` binary run on it.
//!
//! Every run is isolated: `-C <dir>`, its own `STACK_CACHE_DIR`, `HOME` and `DOCKER_CONFIG` inside the temp
//! dir, no inherited credentials or proxies, fast retries (`STACK_RETRY_BASE_MS=1`) and short request
//! timeouts (`STACK_HTTP_TIMEOUT_SECS=2`) so fault tests end quickly. [`TestStack::redact`] replaces temp
//! paths and loopback ports for insta snapshots.
//!
//! Also what the lock tests share about a stack: [`oci_chart`] inputs, a lock entry's [`field`], and
//! [`TestStack::assert_no_file_contains`] for secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{copy_tree, read_tree, repo_root};

pub const BIN: &str = env!("CARGO_BIN_EXE_stack");

/// The `[stack]` and `[modules]` a lock test needs around its `[charts]` / `[dashboards]`.
pub const MINIMAL_HEADER: &str = r#"[stack]
name = "lock-test"
flux = { source = { kind = "GitRepository", name = "flux-system" }, path = "./kubernetes" }

[modules]
enabled = []
"#;

/// A `[charts.<name>]` input pulled from the OCI registry `url` (`oci://host/repository`), for
/// [`TestStack::with_inputs`].
pub fn oci_chart(name: &str, url: &str, version: &str) -> String {
    format!("[charts.{name}]\noci = \"{url}\"\nversion = \"{version}\"\n\n")
}

/// A field of a lock entry ([`TestStack::locked_chart`], [`TestStack::locked_dashboard`]) as text: a
/// string as is, anything else as TOML writes it. Panics, showing the entry, when the field is missing.
pub fn field(table: &toml::Table, key: &str) -> String {
    match table.get(key) {
        Some(toml::Value::String(s)) => s.clone(),
        Some(toml::Value::Integer(i)) => i.to_string(),
        Some(other) => other.to_string(),
        None => panic!("no `{key}` in {table:#?}"),
    }
}

/// The result of one run of the binary.
#[derive(Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for failure messages.
    pub args: Vec<String>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`stack {}` exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

impl Output {
    /// Asserts exit code 0 and returns self.
    #[track_caller]
    pub fn success(self) -> Output {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        self
    }

    /// Asserts the exit code and returns self.
    #[track_caller]
    pub fn code(self, code: i32) -> Output {
        assert_eq!(self.code, code, "expected exit code {code}: {self:?}");
        self
    }

    /// stdout and stderr together (the wording may land on either).
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts that stdout or stderr contains each needle (case-insensitive).
    #[track_caller]
    pub fn mentions(self, needles: &[&str]) -> Output {
        let all = self.all().to_lowercase();
        for needle in needles {
            assert!(
                all.contains(&needle.to_lowercase()),
                "expected output to mention {needle:?}: {self:?}"
            );
        }
        self
    }

    /// Asserts that stdout or stderr contains at least one of the needles (case-insensitive): for facts the
    /// wording of which is the implementation's choice ("mismatch" / "differs" / "changed").
    #[track_caller]
    pub fn mentions_any(self, needles: &[&str]) -> Output {
        let all = self.all().to_lowercase();
        assert!(
            needles.iter().any(|n| all.contains(&n.to_lowercase())),
            "expected output to mention one of {needles:?}: {self:?}"
        );
        self
    }

    /// Asserts that neither stdout nor stderr contains `secret`.
    #[track_caller]
    pub fn never_shows(self, secret: &str) -> Output {
        assert!(
            !self.stdout.contains(secret),
            "stdout shows a secret: {self:?}"
        );
        assert!(
            !self.stderr.contains(secret),
            "stderr shows a secret: {self:?}"
        );
        self
    }
}

/// A stack directory under a temp dir, and the environment the binary runs with.
pub struct TestStack {
    temp: tempfile::TempDir,
    root: PathBuf,
    cache: PathBuf,
    env: BTreeMap<String, String>,
}

impl TestStack {
    /// An empty stack directory (no stack.toml yet).
    pub fn empty() -> TestStack {
        let temp = tempfile::Builder::new()
            .prefix("stack-it-")
            .tempdir()
            .unwrap();
        let root = temp.path().join("stack");
        let cache = temp.path().join("cache");
        let home = temp.path().join("home");
        let docker = temp.path().join("docker");
        for dir in [&root, &cache, &home, &docker] {
            fs_err::create_dir_all(dir).unwrap();
        }
        let mut env = BTreeMap::new();
        env.insert("STACK_CACHE_DIR".into(), cache.display().to_string());
        env.insert("STACK_RETRY_BASE_MS".into(), "1".into());
        env.insert("STACK_HTTP_TIMEOUT_SECS".into(), "2".into());
        env.insert("HOME".into(), home.display().to_string());
        env.insert(
            "XDG_CACHE_HOME".into(),
            home.join(".cache").display().to_string(),
        );
        env.insert("DOCKER_CONFIG".into(), docker.display().to_string());
        env.insert("NO_PROXY".into(), "*".into());
        env.insert("no_proxy".into(), "*".into());
        env.insert("NO_COLOR".into(), "1".into());
        env.insert("TERM".into(), "dumb".into());
        TestStack {
            temp,
            root,
            cache,
            env,
        }
    }

    /// A stack whose stack.toml is `text` as is.
    pub fn new(stack_toml: &str) -> TestStack {
        let stack = TestStack::empty();
        stack.write("stack.toml", stack_toml);
        stack
    }

    /// A stack whose stack.toml is [`MINIMAL_HEADER`] followed by `inputs` (`[charts.*]`, `[dashboards.*]`,
    /// `[mirrors]`).
    pub fn with_inputs(inputs: &str) -> TestStack {
        TestStack::new(&format!("{MINIMAL_HEADER}\n{inputs}"))
    }

    /// A copy of the repo's own stack: stack.toml and modules/ (not the lock or vendor/).
    pub fn from_repo() -> TestStack {
        let stack = TestStack::empty();
        let toml =
            fs_err::read_to_string(repo_root().join("stack.toml")).expect("the repo's stack.toml");
        stack.write("stack.toml", &toml);
        stack.copy_repo_modules();
        stack
    }

    /// Copies the repo's modules/ (with modules/settings.toml) into the stack.
    pub fn copy_repo_modules(&self) {
        copy_tree(&repo_root().join("modules"), &self.root.join("modules"));
    }

    /// The stack directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The content cache (`STACK_CACHE_DIR`).
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// Points `STACK_CACHE_DIR` elsewhere (e.g. a fresh dir for a cold cache, or another stack's cache).
    pub fn set_cache_dir(&mut self, dir: &Path) {
        self.cache = dir.to_path_buf();
        fs_err::create_dir_all(dir).unwrap();
        self.env
            .insert("STACK_CACHE_DIR".into(), dir.display().to_string());
    }

    /// A fresh, empty dir inside this stack's temp dir (for a cold cache or a second stack's files).
    pub fn fresh_dir(&self, name: &str) -> PathBuf {
        let dir = self.temp.path().join(name);
        fs_err::create_dir_all(&dir).unwrap();
        dir
    }

    /// Where `DOCKER_CONFIG` points (empty unless a test writes config.json there).
    pub fn docker_config_dir(&self) -> PathBuf {
        PathBuf::from(&self.env["DOCKER_CONFIG"])
    }

    /// Sets an environment variable for the following runs.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn remove_env(&mut self, key: &str) -> &mut Self {
        self.env.remove(key);
        self
    }

    /// Writes a file relative to the stack directory.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.root.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, contents)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Replaces stack.toml's inputs, keeping [`MINIMAL_HEADER`].
    pub fn set_inputs(&self, inputs: &str) {
        self.write("stack.toml", format!("{MINIMAL_HEADER}\n{inputs}"));
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.root.join(rel).exists()
    }

    pub fn read(&self, rel: &str) -> String {
        let path = self.root.join(rel);
        fs_err::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    pub fn read_bytes(&self, rel: &str) -> Vec<u8> {
        let path = self.root.join(rel);
        fs_err::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// stack.lock's text.
    pub fn lock_text(&self) -> String {
        self.read("stack.lock")
    }

    /// stack.lock parsed as TOML.
    pub fn lock_toml(&self) -> toml::Table {
        toml::from_str(&self.lock_text()).expect("stack.lock is TOML")
    }

    /// The `[[chart]]` entry of the lock named `name`.
    #[track_caller]
    pub fn locked_chart(&self, name: &str) -> toml::Table {
        self.lock_entry("chart", name)
    }

    /// The `[[dashboard]]` entry of the lock named `name`.
    #[track_caller]
    pub fn locked_dashboard(&self, name: &str) -> toml::Table {
        self.lock_entry("dashboard", name)
    }

    #[track_caller]
    fn lock_entry(&self, kind: &str, name: &str) -> toml::Table {
        let lock = self.lock_toml();
        lock.get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_table())
            .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} `{name}` in stack.lock:\n{}", self.lock_text()))
    }

    /// Names of the `[[chart]]` or `[[dashboard]]` entries of the lock.
    pub fn locked_names(&self, kind: &str) -> Vec<String> {
        self.lock_toml()
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("name").and_then(|n| n.as_str()).map(String::from))
            .collect()
    }

    /// Asserts `secret` is in no file of the stack (lock, vendor, anything) nor in the cache.
    #[track_caller]
    pub fn assert_no_file_contains(&self, secret: &str) {
        for dir in [self.root(), self.cache_dir()] {
            for (path, bytes) in read_tree(dir) {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} contains {secret:?}",
                    dir.join(path).display()
                );
            }
        }
    }

    /// stack.lock and every file under vendor/, by relative path: the state a lock must change all at once
    /// or not at all.
    pub fn locked_state(&self) -> BTreeMap<String, Vec<u8>> {
        let mut state: BTreeMap<String, Vec<u8>> = read_tree(&self.root.join("vendor"))
            .into_iter()
            .map(|(k, v)| (format!("vendor/{k}"), v))
            .collect();
        if let Ok(lock) = fs_err::read(self.root.join("stack.lock")) {
            state.insert("stack.lock".into(), lock);
        }
        state
    }

    /// The command that runs `stack -C <root> <args>` with this stack's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("-C").arg(&self.root).args(args);
        cmd.current_dir(self.temp.path());
        cmd.env_clear();
        for key in ["PATH", "LANG", "LC_ALL", "TZ", "RUST_BACKTRACE", "RUST_LOG"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(&self.env);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `stack <args>` (without `-C`) with `cwd` as the current directory: for stack.toml discovery.
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let out = self.output_in(cwd, args);
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Runs `stack <args>` (without `-C`) in `cwd` with this stack's environment, and returns the
    /// process's output as is (for tests that read raw bytes and the exit status).
    pub fn output_in(&self, cwd: &Path, args: &[&str]) -> std::process::Output {
        let cmd = self.command(args);
        let mut plain = Command::new(BIN);
        plain.args(args).current_dir(cwd).env_clear();
        for (key, value) in cmd.get_envs() {
            if let Some(value) = value {
                plain.env(key, value);
            }
        }
        plain.stdin(Stdio::null());
        plain
            .output()
            .unwrap_or_else(|e| panic!("running {BIN}: {e}"))
    }

    /// Runs `stack <args>` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("running {BIN}: {e}"));
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Runs `stack lock <args>`.
    pub fn lock(&self, args: &[&str]) -> Output {
        let mut all = vec!["lock"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Starts `stack <args>` without waiting, for a test that kills it.
    pub fn spawn(&self, args: &[&str]) -> Running {
        static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let out_path = self.temp.path().join(format!("spawned-{n}.out"));
        let err_path = self.temp.path().join(format!("spawned-{n}.err"));
        let child = self
            .command(args)
            .stdout(fs_err::File::create(&out_path).unwrap().into_file())
            .stderr(fs_err::File::create(&err_path).unwrap().into_file())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {BIN}: {e}"));
        Running {
            child: Some(child),
            out_path,
            err_path,
        }
    }

    /// Replaces this stack's temp paths and every `127.0.0.1:<port>` with stable placeholders, for insta
    /// snapshots: `[STACK]`, `[CACHE]`, `[TEMP]`, `127.0.0.1:[PORT]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.replace(&self.root.display().to_string(), "[STACK]");
        out = out.replace(&self.cache.display().to_string(), "[CACHE]");
        out = out.replace(&self.temp.path().display().to_string(), "[TEMP]");
        redact_ports(&out)
    }
}

/// Replaces the port of every `127.0.0.1:<digits>` and `localhost:<digits>` with `[PORT]`.
pub fn redact_ports(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["127.0.0.1:", "localhost:"]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
            .min();
        let Some((i, len)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..i + len]);
        rest = &rest[i + len..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("[PORT]");
            rest = &rest[digits..];
        }
    }
}

/// A `stack` process started by [`TestStack::spawn`]; killed on `Drop` if still running.
pub struct Running {
    child: Option<Child>,
    out_path: PathBuf,
    err_path: PathBuf,
}

impl Running {
    /// Kills the process (SIGKILL: no chance to clean up, as with a power cut or `kill -9`) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits for the process to exit and returns its output.
    pub fn wait(mut self) -> Output {
        let mut child = self.child.take().expect("still running");
        let status = child.wait().unwrap();
        Output {
            code: status.code().unwrap_or(-1),
            stdout: fs_err::read_to_string(&self.out_path).unwrap_or_default(),
            stderr: fs_err::read_to_string(&self.err_path).unwrap_or_default(),
            args: Vec::new(),
        }
    }

    /// What the process printed so far.
    pub fn output_so_far(&self) -> (String, String) {
        (
            fs_err::read_to_string(&self.out_path).unwrap_or_default(),
            fs_err::read_to_string(&self.err_path).unwrap_or_default(),
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}
