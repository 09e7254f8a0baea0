//! The catalogue of bad inputs, continued: what upstreams answer (URL dashboards and vendor/, grafana.com,
//! Helm repositories, OCI registries), each a real server on loopback. The rows run through
//! `catalogue::run`, so their snapshots keep the `catalogue` module's names.

use crate::catalogue::Edit::{Append, Lock, Remove, Replace, Write};
use crate::catalogue::{apply, base, row, run, Edit, Row, BUILD, CHECK, LOCK, M};
use crate::support::registry::{HELM_CHART_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, OCI_MANIFEST};
use crate::support::{self, Fault, GrafanaCom, HttpServer, Registry, TestStack};

/// The base stack with one URL dashboard `extra` from `server`, locked and vendored.
fn base_with_url_dashboard(server: &HttpServer) -> TestStack {
    let stack = base();
    apply(
        &stack,
        &[
            Replace(
                M,
                "namespace = \"apps\"",
                "namespace = \"apps\"\ndashboards = true",
            ),
            Append(
                "stack.toml",
                "\n[dashboards.extra]\nurl = \"{HTTP}/extra.json\"\nfolder = \"Extra\"\n",
            ),
        ],
        &[("{HTTP}", server.url())],
    );
    stack.lock(&[]).success();
    stack
}

const EXTRA: &str = "{\"title\": \"Extra\", \"uid\": \"extra\", \"panels\": []}\n";
const V: &str = "vendor/dashboards/extra.json";

#[rustfmt::skip]
const URL_DASHBOARDS: &[Row] = &[
    row("vendored-file-missing", &[Remove(V)], BUILD, 2),
    row("vendored-file-changed", &[Replace(V, "Extra", "Extra!")], BUILD, 2),
    row("vendored-file-stray", &[Write("vendor/dashboards/stray.json", EXTRA)], CHECK, 1),
    row("shipped-by-no-module", &[Replace(M, "dashboards = true", "")], BUILD, 0),
    row("uid-clash", &[Replace("stack.toml", "/extra.json", "/clash.json"), Lock], BUILD, 2),
    row("title-clash-in-folder", &[Replace("stack.toml", "/extra.json", "/same-title.json"), Replace("stack.toml", "folder = \"Extra\"", "folder = \"Apps\""), Lock], BUILD, 2),
    row("not-found", &[Append("stack.toml", "\n[dashboards.fresh]\nurl = \"{HTTP}/missing.json\"\n")], LOCK, 2),
    row("server-error", &[Append("stack.toml", "\n[dashboards.fresh]\nurl = \"{HTTP}/error.json\"\n")], LOCK, 2),
    row("not-json", &[Append("stack.toml", "\n[dashboards.fresh]\nurl = \"{HTTP}/page.html\"\n")], LOCK, 2),
    row("api-error-with-200", &[Append("stack.toml", "\n[dashboards.fresh]\nurl = \"{HTTP}/api-error.json\"\n")], LOCK, 2),
    row("no-panels", &[Append("stack.toml", "\n[dashboards.fresh]\nurl = \"{HTTP}/no-panels.json\"\n")], LOCK, 2),
    row("truncated", &[Append("stack.toml", "\n[dashboards.fresh]\nurl = \"{HTTP}/truncated.json\"\n")], LOCK, 2),
    row("connection-refused", &[Append("stack.toml", "\n[dashboards.fresh]\nurl = \"http://127.0.0.1:9/x.json\"\n")], LOCK, 2),
    row("oversized", &[Append("stack.toml", "\n[dashboards.fresh]\nurl = \"{HTTP}/big.json\"\n")], LOCK, 2),
    row("redirect-to-file", &[Append("stack.toml", "\n[dashboards.fresh]\nurl = \"{HTTP}/redirect.json\"\n")], LOCK, 2),
];

#[test]
fn upstream_url_dashboards_and_vendor() {
    let server = HttpServer::start();
    server.serve("/extra.json", EXTRA);
    server.serve(
        "/fresh.json",
        "{\"title\": \"Fresh\", \"uid\": \"app-overview\", \"panels\": []}\n",
    );
    server.fail_always("/error.json", Fault::Status(500));
    server.serve("/page.html", "<html><body>Sign in</body></html>\n");
    server.serve(
        "/api-error.json",
        "{\"code\":\"InvalidArgument\",\"message\":\"invalid dashboard id\"}",
    );
    server.serve(
        "/no-panels.json",
        "{\"title\": \"Empty\", \"uid\": \"empty\"}",
    );
    server.serve("/truncated.json", EXTRA);
    server.fail_always("/truncated.json", Fault::Truncate { send: 10 });
    let panels = "{\"type\": \"text\"},".repeat(70_000);
    server.serve(
        "/big.json",
        format!("{{\"title\": \"Big\", \"panels\": [{panels}{{}}]}}"),
    );
    server.fail_always(
        "/redirect.json",
        Fault::Redirect("file:///etc/passwd".into()),
    );
    server.serve(
        "/clash.json",
        "{\"title\": \"Clash\", \"uid\": \"app-overview\", \"panels\": []}\n",
    );
    server.serve(
        "/same-title.json",
        "{\"title\": \"App overview\", \"uid\": \"same-title\", \"panels\": []}\n",
    );
    run(
        "url",
        || base_with_url_dashboard(&server),
        &[("{HTTP}", server.url())],
        URL_DASHBOARDS,
    );
}

// ----- grafana.com ------------------------------------------------------------------------------------

#[rustfmt::skip]
const GRAFANA_ROWS: &[Row] = &[
    row("unknown-id", &[Append("stack.toml", "\n[dashboards.g]\ngrafana_com = 99999\n")], LOCK, 2),
    row("unknown-revision", &[Append("stack.toml", "\n[dashboards.g]\ngrafana_com = 16611\nrevision = 7\n")], LOCK, 2),
];

#[test]
fn upstream_grafana_com() {
    let grafana = GrafanaCom::with_fixtures();
    let mirror = format!(
        "\n[mirrors]\n\"https://grafana.com\" = \"{}\"\n",
        grafana.url()
    );
    run(
        "grafana",
        || {
            let stack = base();
            apply(
                &stack,
                &[Append("stack.toml", "{MIRROR}")],
                &[("{MIRROR}", mirror.clone())],
            );
            stack
        },
        &[("{GRAFANA}", grafana.url())],
        GRAFANA_ROWS,
    );
}

// ----- Helm repositories --------------------------------------------------------------------------------

#[rustfmt::skip]
const HELM_ROWS: &[Row] = &[
    row("index-not-yaml", &[Append("stack.toml", "\n[charts.op]\nrepo = \"{HTTP}/broken\"\nversion = \"1.0.0\"\n")], LOCK, 2),
    row("chart-not-in-index", &[Append("stack.toml", "\n[charts.nope]\nrepo = \"{HTTP}/good\"\nversion = \"1.0.0\"\n")], LOCK, 2),
    row("no-version-matches", &[Append("stack.toml", "\n[charts.op]\nrepo = \"{HTTP}/good\"\nversion = \">=2.0.0\"\n")], LOCK, 2),
    row("duplicate-version", &[Append("stack.toml", "\n[charts.op]\nrepo = \"{HTTP}/duplicate\"\nversion = \"1.0.0\"\n")], LOCK, 0),
    row("digest-mismatch", &[Append("stack.toml", "\n[charts.op]\nrepo = \"{HTTP}/lying\"\nversion = \"1.0.0\"\n")], LOCK, 2),
    row("archive-of-another-chart", &[Append("stack.toml", "\n[charts.op]\nrepo = \"{HTTP}/renamed\"\nversion = \"1.0.0\"\n")], LOCK, 2),
    row("skipped-entry-then-no-match", &[Append("stack.toml", "\n[charts.op]\nrepo = \"{HTTP}/skipping\"\nversion = \">=2.0.0\"\n")], LOCK, 2),
    row("index-missing", &[Append("stack.toml", "\n[charts.op]\nrepo = \"{HTTP}/nothing\"\nversion = \"1.0.0\"\n")], LOCK, 2),
];

/// An index.yaml entry for `name` `version` pointing at `file` with `tgz`'s digest.
fn index_entry(name: &str, version: &str, file: &str, tgz: &[u8]) -> String {
    format!(
        "  - apiVersion: v2\n    name: {name}\n    version: {version}\n    digest: {}\n    urls: [{file}]\n",
        &support::sha256(tgz)["sha256:".len()..]
    )
}

#[test]
fn upstream_helm_repositories() {
    let server = HttpServer::start();
    let good = support::charts::package("op", "1.0.0", "1.0.0", "catalogue");
    let other = support::charts::package("other", "1.0.0", "1.0.0", "catalogue");
    let index = |entries: &str| format!("apiVersion: v1\nentries:\n  op:\n{entries}");
    server.serve("/broken/index.yaml", "apiVersion: v1\nentries: [\n");
    server.serve(
        "/good/index.yaml",
        index(&index_entry("op", "1.0.0", "op-1.0.0.tgz", &good)),
    );
    server.serve("/good/op-1.0.0.tgz", good.clone());
    server.serve(
        "/duplicate/index.yaml",
        index(&format!(
            "{}{}",
            index_entry("op", "1.0.0", "op-1.0.0.tgz", &good),
            index_entry("op", "1.0.0", "op-1.0.0-b.tgz", &good)
        )),
    );
    server.serve("/duplicate/op-1.0.0.tgz", good.clone());
    server.serve(
        "/skipping/index.yaml",
        index(&format!(
            "{}  - name: op\n    urls: [op-2.0.0.tgz]\n",
            index_entry("op", "1.0.0", "op-1.0.0.tgz", &good)
        )),
    );
    server.serve(
        "/lying/index.yaml",
        index(&index_entry("op", "1.0.0", "op-1.0.0.tgz", &good)),
    );
    server.serve("/lying/op-1.0.0.tgz", other.clone());
    server.serve(
        "/renamed/index.yaml",
        index(&index_entry("op", "1.0.0", "op-1.0.0.tgz", &other)),
    );
    server.serve("/renamed/op-1.0.0.tgz", other.clone());
    run("helm", base, &[("{HTTP}", server.url())], HELM_ROWS);
}

// ----- OCI registries -----------------------------------------------------------------------------------

#[rustfmt::skip]
const OCI_ROWS: &[Row] = &[
    row("repository-missing", &[Append("stack.toml", "\n[charts.op]\noci = \"{OCI}/acme/missing\"\nversion = \"1.0.0\"\n")], LOCK, 2),
    row("no-version-matches", &[Append("stack.toml", "\n[charts.op]\noci = \"{OCI}/acme/op\"\nversion = \">=2.0.0\"\n")], LOCK, 2),
    row("exact-version-missing", &[Append("stack.toml", "\n[charts.op]\noci = \"{OCI}/acme/op\"\nversion = \"1.0.1\"\n")], LOCK, 2),
    row("image-not-chart", &[Append("stack.toml", "\n[charts.op]\noci = \"{OCI}/acme/image\"\nversion = \"1.0.0\"\n")], LOCK, 2),
    row("chart-name-differs", &[Append("stack.toml", "\n[charts.op]\noci = \"{OCI}/acme/renamed\"\nversion = \"1.0.0\"\n")], LOCK, 2),
    row("chart-version-differs", &[Append("stack.toml", "\n[charts.op]\noci = \"{OCI}/retagged/op\"\nversion = \"1.0.0\"\n")], LOCK, 2),
    row("connection-refused", &[Append("stack.toml", "\n[charts.op]\noci = \"oci://127.0.0.1:9/acme/op\"\nversion = \"1.0.0\"\n")], LOCK, 2),
    row("silent-registry", &[Append("stack.toml", "\n[charts.op]\noci = \"{SILENT}/acme/op\"\nversion = \"1.0.0\"\n")], LOCK, 2),
    row("values-not-a-map", &[OP_RELEASE, Write("modules/app/values.yaml", "- a\n- b\n")], BUILD, 2),
    row("values-unknown-key", &[OP_RELEASE, Write("modules/app/values.yaml", "replicaCont: 2\n")], BUILD, 2),
    row("values-syntax", &[OP_RELEASE, Write("modules/app/values.yaml", "a: [\n")], BUILD, 2),
    row("values-setting-typo", &[OP_RELEASE, Write("modules/app/values.yaml", "replicaCount: \"${setting.replicas}\"\n")], BUILD, 2),
    row("release-name", &[OP_RELEASE, Write("modules/app/values.yaml", "{}\n"), Replace(M, "chart = \"op\"", "chart = \"op\"\nname = \"Op_Release\"")], BUILD, 2),
    row("same-release-twice", &[OP_RELEASE, Write("modules/app/values.yaml", "{}\n"), Write("modules/other/module.toml", "namespace = \"apps\"\n\n[release]\nchart = \"op\"\nname = \"app\"\n"), Replace("stack.toml", "[\"app\"]", "[\"app\", \"other\"]")], BUILD, 2),
];

/// Gives module `app` a release of chart `op` with values.yaml.
const OP_RELEASE: Edit = Append(
    M,
    "\n[release]\nchart = \"op\"\nvalues = [\"values.yaml\"]\n",
);

/// Pushes a chart archive under `tag` with Helm's layer media type.
pub(crate) fn push(registry: &Registry, repo: &str, tag: &str, tgz: &[u8]) {
    let config = b"{\"name\":\"op\"}".to_vec();
    registry.push_blob(repo, &config);
    registry.push_blob(repo, tgz);
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"mediaType\":\"{HELM_CONFIG_MEDIA_TYPE}\",\"digest\":\"{}\",\"size\":{}}},\"layers\":[{{\"mediaType\":\"{HELM_CHART_MEDIA_TYPE}\",\"digest\":\"{}\",\"size\":{}}}]}}",
        support::sha256(&config),
        config.len(),
        support::sha256(tgz),
        tgz.len()
    );
    registry.push_raw_manifest(repo, tag, OCI_MANIFEST, manifest.as_bytes());
}

#[test]
fn upstream_oci_registries() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let chart =
        |name: &str, version: &str| support::charts::package(name, version, "1.0.0", "catalogue");
    push(&registry, "acme/op", "1.0.0", &chart("op", "1.0.0"));
    push(&registry, "acme/renamed", "1.0.0", &chart("other", "1.0.0"));
    push(&registry, "retagged/op", "1.0.0", &chart("op", "0.9.0"));
    let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
    registry.push_blob("acme/image", &config);
    registry.push_blob("acme/image", b"not a chart");
    let manifest = support::registry::image_manifest(&config, b"not a chart");
    registry.push_raw_manifest("acme/image", "1.0.0", OCI_MANIFEST, &manifest);
    let oci = registry.oci_url("").trim_end_matches('/').to_string();
    // A registry that accepts connections and never answers.
    let silent = HttpServer::start();
    silent.fail_always("/v2/", Fault::Hang);
    silent.fail_always("/v2/acme/op/manifests/1.0.0", Fault::Hang);
    let vars = [
        ("{OCI}", oci.clone()),
        ("{SILENT}", format!("oci://{}", silent.host())),
    ];
    let locked = |stack: &TestStack| {
        apply(
            stack,
            &[Append(
                "stack.toml",
                "\n[charts.op]\noci = \"{OCI}/acme/op\"\nversion = \"1.0.0\"\n",
            )],
            &vars,
        );
        stack.lock(&[]).success();
    };
    let (lock_rows, build_rows) = OCI_ROWS.split_at(8);
    run("oci", base, &vars, lock_rows);
    run(
        "oci",
        || {
            let stack = base();
            locked(&stack);
            stack
        },
        &vars,
        build_rows,
    );
}
