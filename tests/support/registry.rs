//! `Registry`: Debian's `docker-registry` (CNCF distribution 2.8) on a free port of 127.0.0.1 with its
//! storage in a temp dir, optionally behind htpasswd basic auth; killed on `Drop`.
//!
//! Charts are pushed the way `helm push` stores them (an OCI image manifest whose config is the Helm config
//! type and whose one layer is the chart archive), with raw HTTP and byte-for-byte deterministic manifests,
//! so a chart fixture always gets the same manifest digest. Facts about this registry that shape the code
//! (checked by hand against the Debian package 2.8.2): its packaged config listens on all interfaces, so it gets its own; an OCI
//! manifest is only served with an OCI `Accept`; tags/list ignores `n`/`last`; a `+` in a tag is a 404.
//!
//! `registry!()` starts one in a test, or skips the test where docker-registry is missing outside CI.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::http_client::{self, Response};
use super::{require_tool, sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub use stack::helm_oci::{HELM_CHART_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE};

/// The user of [`Registry::start_with_basic_auth`].
pub const USER: &str = "stack-test";
/// Its password. Tests assert it never appears in stack.lock, stdout or stderr.
pub const PASSWORD: &str = "correct-horse-battery-staple-7f3a";
/// bcrypt (cost 5) of [`PASSWORD`], as `htpasswd -Bbn` would write it; distribution accepts only bcrypt and
/// apache2-utils is not installed, so the line was computed once with
/// `python3 -c "import crypt; print(crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=32)))"`.
const HTPASSWD: &str = "stack-test:$2b$05$.b3kToMKA1PgLcMqnFPFkOUxrWDUWMhlyRtTUxHLP.YL7yZGNKdYu";

/// Starts a registry ([`Registry::start`]) in a test, or returns from the test when docker-registry is
/// missing outside CI (the support code has printed a loud skip message; under CI it has failed the test).
macro_rules! registry {
    () => {
        match $crate::support::registry::Registry::start() {
            Some(registry) => registry,
            None => return,
        }
    };
}
pub(crate) use registry;

/// See the module docs.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1`, or `[::1]` for [`Registry::start_on_ipv6_loopback`].
    listen: &'static str,
    port: u16,
    /// `Authorization` header value the harness uses when the registry demands auth.
    auth_header: Option<String>,
}

impl Registry {
    /// Starts an anonymous registry. `None` (after a loud message) when `docker-registry` is not installed
    /// and CI is not set; under CI a missing registry fails the test.
    pub fn start() -> Option<Registry> {
        Registry::launch(false, "127.0.0.1")
    }

    /// Starts a registry that demands basic auth as [`USER`] / [`PASSWORD`].
    pub fn start_with_basic_auth() -> Option<Registry> {
        Registry::launch(true, "127.0.0.1")
    }

    /// Starts an anonymous registry on `[::1]` (IPv6 loopback) only.
    pub fn start_on_ipv6_loopback() -> Option<Registry> {
        Registry::launch(false, "[::1]")
    }

    fn launch(basic_auth: bool, listen: &'static str) -> Option<Registry> {
        let binary = require_tool(
            "docker-registry",
            &["/usr/bin/docker-registry"],
            "apt-get install -y docker-registry",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("stack-registry-")
            .tempdir()
            .unwrap();
        let log_path = dir.path().join("registry.log");
        for _attempt in 0..5 {
            let port = super::free_port();
            let config = dir.path().join("config.yml");
            let mut text = format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {data}}}, delete: {{enabled: true}}}}\nhttp: {{addr: \"{listen}:{port}\", secret: stack-tests-not-a-secret}}\n",
                data = dir.path().join("data").display(),
            );
            if basic_auth {
                let htpasswd = dir.path().join("htpasswd");
                fs_err::write(&htpasswd, format!("{HTPASSWD}\n")).unwrap();
                text.push_str(&format!(
                    "auth: {{htpasswd: {{realm: stack-tests, path: {}}}}}\n",
                    htpasswd.display()
                ));
            }
            fs_err::write(&config, text).unwrap();
            let log = fs_err::File::create(&log_path).unwrap();
            let mut child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap().into_file())
                .stderr(log.into_file())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            if wait_ready(&mut child, listen, port) {
                let auth_header = basic_auth.then(|| basic_header(USER, PASSWORD));
                return Some(Registry {
                    child,
                    dir,
                    listen,
                    port,
                    auth_header,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not become ready on {listen}; its log:\n{}",
            fs_err::read_to_string(&log_path).unwrap_or_default()
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT` (or `[::1]:PORT`): the registry host as an `oci://` URL, a `--mirror` target or a
    /// credentials key names it.
    pub fn host(&self) -> String {
        format!("{}:{}", self.listen, self.port)
    }

    /// `oci://127.0.0.1:PORT/<repo_path>`.
    pub fn oci_url(&self, repo_path: &str) -> String {
        format!("oci://{}/{repo_path}", self.host())
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The registry's own log (startup errors, access log).
    pub fn log(&self) -> String {
        fs_err::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The registry's access log as (method, path, status), in order: what `stack` asked the registry for.
    ///
    /// The registry writes a request's line after its handler returns, which can be after the client has
    /// read the whole answer; so a marker request is sent first and the log is read once it shows the
    /// marker (marker lines are left out).
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.settled_log()
            .lines()
            .filter(|line| !line.contains(SETTLE_MARKER))
            .filter_map(|line| {
                // 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 401 87 "" "agent"
                let start = line.find("] \"")? + 3;
                let rest = &line[start..];
                let end = rest.find('"')?;
                let mut request = rest[..end].split(' ');
                let method = request.next()?.to_string();
                let path = request.next()?.to_string();
                let status = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
                Some((method, path, status))
            })
            .collect()
    }

    /// The access log once every request answered before this call has its line (see `requests`).
    fn settled_log(&self) -> String {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = format!("/v2/{SETTLE_MARKER}/{n}/tags/list");
        self.call("GET", &format!("{}{path}", self.http_url()), &[], b"");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(&format!("{path} ")) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// How many blob downloads (`GET /v2/…/blobs/…`) the registry has answered with 200.
    pub fn blob_downloads(&self) -> usize {
        self.requests()
            .iter()
            .filter(|(method, path, status)| {
                method == "GET" && path.contains("/blobs/sha256:") && *status == 200
            })
            .count()
    }

    /// Where the registry keeps its data (for tests that corrupt a stored blob).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn call(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(auth) = &self.auth_header {
            all.push(("Authorization", auth));
        }
        http_client::request(method, url, &all, body)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", self.log()))
    }

    /// Uploads a blob (POST to start the upload, PUT with the digest to finish it) and returns its digest.
    pub fn push_blob(&self, repo_path: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let start = self.call(
            "POST",
            &format!("{}/v2/{repo_path}/blobs/uploads/", self.http_url()),
            &[],
            b"",
        );
        assert_eq!(
            start.status,
            202,
            "starting a blob upload to {repo_path}: {}",
            start.text()
        );
        let location = start
            .header("location")
            .expect("upload Location")
            .to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.http_url())
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let done = self.call(
            "PUT",
            &format!("{location}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        assert_eq!(
            done.status,
            201,
            "finishing the blob upload to {repo_path}: {}",
            done.text()
        );
        digest
    }

    /// PUTs manifest bytes as they are under `reference` (a tag or digest) with `media_type`; returns the
    /// digest the registry states (asserted equal to sha256 of the bytes).
    pub fn push_raw_manifest(
        &self,
        repo_path: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let resp = self.call(
            "PUT",
            &format!("{}/v2/{repo_path}/manifests/{reference}", self.http_url()),
            &[("Content-Type", media_type)],
            bytes,
        );
        assert_eq!(
            resp.status,
            201,
            "pushing manifest {repo_path}:{reference}: {}",
            resp.text()
        );
        let digest = sha256(bytes);
        assert_eq!(resp.header("docker-content-digest"), Some(digest.as_str()));
        digest
    }

    /// Pushes a packaged chart (.tgz) as `helm push` would: config blob (Chart.yaml as JSON), chart layer,
    /// then the OCI manifest under `tag`. Returns the manifest digest (what Flux's `ref.digest` pins).
    pub fn push_chart(&self, repo_path: &str, tag: &str, tgz: &[u8]) -> String {
        let (config, manifest) = chart_manifest(tgz);
        self.push_blob(repo_path, &config);
        self.push_blob(repo_path, tgz);
        self.push_raw_manifest(repo_path, tag, OCI_MANIFEST, &manifest)
    }

    /// Pushes a chart fixture under its version (`+` becomes `_`, as Helm does).
    pub fn push_fixture(&self, repo_path: &str, chart: &super::Chart) -> String {
        self.push_chart(
            repo_path,
            &stack::helm_oci::tag_for_version(&chart.version),
            &chart.bytes,
        )
    }

    /// Overwrites a stored blob's bytes on disk, so the registry serves bytes that do not match their
    /// digest (what a corrupted store or a lying proxy does). Same length keeps Content-Length honest.
    pub fn corrupt_blob(&self, digest: &str, bytes: &[u8]) {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let path = self
            .storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data");
        assert!(path.is_file(), "no stored blob at {}", path.display());
        fs_err::write(&path, bytes).unwrap();
    }

    /// `GET /v2/<repo>/tags/list` as the registry answers it (the harness's own check).
    pub fn tags(&self, repo_path: &str) -> Vec<String> {
        let resp = self.call(
            "GET",
            &format!("{}/v2/{repo_path}/tags/list", self.http_url()),
            &[],
            b"",
        );
        assert_eq!(resp.status, 200, "{}", resp.text());
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        tags.sort();
        tags
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET /v2/` until it answers 200 (or 401 when auth is on). False if the process exited first
/// (e.g. the port was taken in the meantime).
fn wait_ready(child: &mut Child, listen: &str, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(resp) =
            http_client::request("GET", &format!("http://{listen}:{port}/v2/"), &[], b"")
        {
            if resp.status == 200 || resp.status == 401 {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

pub fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The config blob and OCI manifest `helm push` would make for a chart archive, as deterministic bytes:
/// the config is the chart's Chart.yaml fields as compact JSON in a fixed key order; the manifest has a
/// fixed key order and no creation timestamp, so the same .tgz always gives the same manifest digest.
pub fn chart_manifest(tgz: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let chart_yaml = super::charts::chart_yaml(tgz);
    let field = |k: &str| chart_yaml.get(k).and_then(|v| v.as_str()).map(String::from);
    let mut config = serde_json::Map::new();
    for key in [
        "name",
        "version",
        "description",
        "apiVersion",
        "appVersion",
        "type",
    ] {
        if let Some(v) = field(key) {
            config.insert(key.to_string(), serde_json::Value::String(v));
        }
    }
    let config = serde_json::to_vec(&serde_json::Value::Object(config)).unwrap();
    let name = field("name").expect("Chart.yaml name");
    let version = field("version").expect("Chart.yaml version");
    let manifest = format!(
        concat!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{mt}\",",
            "\"config\":{{\"mediaType\":\"{cmt}\",\"digest\":\"{cd}\",\"size\":{cs}}},",
            "\"layers\":[{{\"mediaType\":\"{lmt}\",\"digest\":\"{ld}\",\"size\":{ls}}}],",
            "\"annotations\":{{\"org.opencontainers.image.title\":\"{name}\",\"org.opencontainers.image.version\":\"{version}\"}}}}"
        ),
        mt = OCI_MANIFEST,
        cmt = HELM_CONFIG_MEDIA_TYPE,
        cd = sha256(&config),
        cs = config.len(),
        lmt = HELM_CHART_MEDIA_TYPE,
        ld = sha256(tgz),
        ls = tgz.len(),
        name = name,
        version = version,
    );
    (config, manifest.into_bytes())
}

/// An OCI manifest that is not a Helm chart (an image config), pushed to test that the lock refuses it.
pub fn image_manifest(config: &[u8], layer: &[u8]) -> Vec<u8> {
    format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{}\",\"size\":{}}},\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"{}\",\"size\":{}}}]}}",
        sha256(config),
        config.len(),
        sha256(layer),
        layer.len()
    )
    .into_bytes()
}

/// `$DOCKER_CONFIG/config.json` text with credentials for `host`, as `docker login` writes it.
pub fn docker_config_json(host: &str, user: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!(
        "{{\n\t\"auths\": {{\n\t\t\"{host}\": {{\n\t\t\t\"auth\": \"{auth}\"\n\t\t}}\n\t}}\n}}\n"
    )
}

/// The repository name of the marker request `settled_log` sends (never a real repository).
const SETTLE_MARKER: &str = "stack-test-settle-marker";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pushed_chart_is_served_as_pushed_only_with_an_oci_accept() {
        let Some(registry) = Registry::start() else {
            return;
        };
        let chart = crate::support::charts::fixture_chart("loki", "6.49.0");
        let digest = registry.push_fixture("grafana/helm-charts/loki", &chart);
        let (_, manifest) = chart_manifest(&chart.bytes);
        assert_eq!(digest, sha256(&manifest));

        let url = format!(
            "{}/v2/grafana/helm-charts/loki/manifests/6.49.0",
            registry.http_url()
        );
        let got = http_client::request("GET", &url, &[("Accept", OCI_MANIFEST)], b"").unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body, manifest);
        assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));
        // PITFALLS §5: without the OCI type in Accept this registry answers 404.
        assert_eq!(
            http_client::request("GET", &url, &[], b"").unwrap().status,
            404
        );

        let blob = format!(
            "{}/v2/grafana/helm-charts/loki/blobs/{}",
            registry.http_url(),
            chart.sha256()
        );
        assert_eq!(
            http_client::request("GET", &blob, &[], b"").unwrap().body,
            chart.bytes
        );
        assert_eq!(registry.tags("grafana/helm-charts/loki"), ["6.49.0"]);
        assert_eq!(registry.blob_downloads(), 1);
        assert!(registry
            .requests()
            .iter()
            .any(|(m, p, s)| m == "PUT" && p.ends_with("/manifests/6.49.0") && *s == 201));
    }

    #[test]
    fn basic_auth_registry_takes_only_the_right_password() {
        let Some(registry) = Registry::start_with_basic_auth() else {
            return;
        };
        let url = format!("{}/v2/", registry.http_url());
        assert_eq!(
            http_client::request("GET", &url, &[], b"").unwrap().status,
            401
        );
        let wrong = basic_header(USER, "wrong");
        assert_eq!(
            http_client::request("GET", &url, &[("Authorization", &wrong)], b"")
                .unwrap()
                .status,
            401
        );
        let right = basic_header(USER, PASSWORD);
        assert_eq!(
            http_client::request("GET", &url, &[("Authorization", &right)], b"")
                .unwrap()
                .status,
            200
        );
        // The harness itself pushes with the credentials.
        registry.push_fixture(
            "private/loki",
            &crate::support::charts::fixture_chart("loki", "6.48.0"),
        );
    }

    #[test]
    fn a_corrupted_blob_is_served_with_its_old_digest() {
        let Some(registry) = Registry::start() else {
            return;
        };
        let chart = crate::support::charts::fixture_chart("alloy", "1.1.2");
        registry.push_fixture("grafana/alloy", &chart);
        let mut bad = chart.bytes.clone();
        bad[10] ^= 0xff;
        registry.corrupt_blob(&chart.sha256(), &bad);
        let blob = format!(
            "{}/v2/grafana/alloy/blobs/{}",
            registry.http_url(),
            chart.sha256()
        );
        assert_eq!(
            http_client::request("GET", &blob, &[], b"").unwrap().body,
            bad
        );
    }
}
