//! `stack build`'s engine: from stack.toml, modules/, stack.lock and vendor/ alone, the Flux tree in
//! memory. It takes no HTTP client and reads nothing else, so it is offline by construction; its output
//! depends only on those files' contents (sorted maps, no clock, no paths, no environment).

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;

mod dashboards;
mod error;
mod render_cache;

pub use dashboards::unshipped_dashboards;
use dashboards::{dashboards_no_module_ships, recorded_series};
pub use error::BuildError;

use crate::emit::dashboard::{self, Datasources};
use crate::emit::staging::Sink;
use crate::emit::{flux, objects, promql, tree::Tree, yaml};
use crate::lock::{Lock, LOCK_FILE};
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::module::{merge_values, ModuleSet};
use crate::plan::Plan;
use crate::settings::substitute;
use crate::values_check;

/// What a build produced.
#[derive(Debug)]
pub struct Built {
    /// Every emitted file but the dashboards' JSON, which went to the sink of [`Loaded::build`]
    /// ([`build`] puts them back in, for a whole tree in memory).
    pub tree: Tree,
    pub components: Vec<String>,
    pub dashboards: usize,
    /// Things that will work with Flux but not everywhere (e.g. dashboards too big for client-side apply).
    pub warnings: Vec<String>,
    /// `[stack] flux.path`: where the Kustomizations expect the tree in their Git source.
    pub flux_path: String,
}

fn read(root: &Path, rel: &str) -> Result<Vec<u8>, BuildError> {
    crate::contain::read(root, rel).map_err(|source| BuildError::Read {
        path: rel.to_string(),
        source,
    })
}

/// Loads stack.toml and modules/ and plans the stack (no lock needed): what `build` and `lock` share.
pub fn load(root: &Path) -> Result<(Manifest, ModuleSet, Plan), BuildError> {
    let bytes = match read(root, MANIFEST_FILE) {
        Err(BuildError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(BuildError::NoManifest {
                dir: root.display().to_string(),
            })
        }
        other => other?,
    };
    let text = String::from_utf8(bytes).map_err(|_| BuildError::Read {
        path: MANIFEST_FILE.into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
    })?;
    let manifest = Manifest::parse(&text)?;
    let modules = ModuleSet::load(root)?;
    let plan = Plan::new(&manifest, &modules)?;
    for spec in manifest.dashboards.values() {
        spec.when
            .check_located(&modules.schema, MANIFEST_FILE, &text)?;
    }
    Ok((manifest, modules, plan))
}

/// Builds the stack at `root` into its Flux tree, all of it in memory (`stack diff`, tests).
pub fn build(root: &Path) -> Result<Built, BuildError> {
    let mut large = Tree::default();
    let mut built = open(root)?.build(root, &mut large)?;
    built.tree.files.append(&mut large.files);
    Ok(built)
}

/// A stack read and checked against its lock: ready to build, and already knowing where its tree goes.
pub struct Loaded {
    manifest: Manifest,
    plan: Plan,
    lock: Lock,
}

/// Reads the stack at `root` and its lock (every error of a stale or missing lock is found here).
pub fn open(root: &Path) -> Result<Loaded, BuildError> {
    let (manifest, _modules, plan) = load(root)?;
    let lock = read_lock(root, &manifest)?;
    Ok(Loaded {
        manifest,
        plan,
        lock,
    })
}

impl Loaded {
    /// `[stack] flux.path`: where the Kustomizations expect the tree in their Git source.
    pub fn flux_path(&self) -> &str {
        &self.manifest.stack.flux.path
    }

    /// Builds the stack into its Flux tree: the dashboards' JSON files go to `large` as they are
    /// rendered (a bounded window at a time), every other file into [`Built::tree`].
    pub fn build(&self, root: &Path, large: &mut dyn Sink) -> Result<Built, BuildError> {
        build_loaded(root, self, large)
    }
}

fn build_loaded(root: &Path, loaded: &Loaded, large: &mut dyn Sink) -> Result<Built, BuildError> {
    let Loaded {
        manifest,
        plan,
        lock,
    } = loaded;
    let stack = &manifest.stack;
    check_prefix(&stack.flux.prefix)?;
    let stack_name = stack.name.as_str();
    let cluster_mirrors = cluster_mirrors(manifest)?;
    let cache = render_cache::RenderCache::open();
    let dir = crate::contain::Canonical::new(root).map_err(|e| BuildError::Read {
        path: ".".into(),
        source: e.into(),
    })?;
    let mut out = Emit {
        cache: cache.as_ref(),
        root,
        dir: &dir,
        manifest,
        lock,
        plan,
        cluster_mirrors,
        recorded: recorded_series(plan),
        tree: Tree::default(),
        large,
        warnings: Vec::new(),
        emitted: objects::Emitted::default(),
        findings: Vec::new(),
        helm_repos: BTreeMap::new(),
        shipped: crate::emit::provisioning::Shipped::default(),
        dashboard_count: 0,
    };
    let mut top_resources = vec!["namespaces.yaml".to_string()];
    let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for component in &plan.components {
        add_namespace_labels(&mut namespaces, &component.module)?;
        top_resources.push(out.component(component)?);
    }
    out.warnings
        .extend(dashboards_no_module_ships(manifest, plan));

    if !out.findings.is_empty() {
        return Err(BuildError::ValuesCheck(out.findings));
    }
    let mut tree = out.tree;
    let ns_docs: Vec<Value> = namespaces
        .iter()
        .map(|(n, labels)| flux::namespace(stack_name, n, labels))
        .collect();
    tree.insert("namespaces.yaml", yaml_text(&ns_docs, "namespaces")?);
    tree.insert(
        "kustomization.yaml",
        yaml_text(
            &[flux::kustomize_file(&top_resources, Vec::new())],
            "top level",
        )?,
    );

    Ok(Built {
        tree,
        components: plan
            .components
            .iter()
            .map(|c| c.module.name.clone())
            .collect(),
        dashboards: out.dashboard_count,
        warnings: out.warnings,
        flux_path: stack.flux.path.clone(),
    })
}

/// Namespace labels of the active modules, merged by namespace: two modules may not disagree on one.
fn add_namespace_labels(
    namespaces: &mut BTreeMap<String, BTreeMap<String, String>>,
    module: &crate::module::Module,
) -> Result<(), BuildError> {
    let name = module.name.as_str();
    let labels = namespaces.entry(module.namespace.clone()).or_default();
    for (key, value) in &module.namespace_labels {
        if let Some(other) = labels.insert(key.clone(), value.clone()) {
            if &other != value {
                return Err(BuildError::Values {
                    path: format!("modules/{name}/module.toml"),
                    message: format!("namespace label `{key}` of `{}` is `{value}` here and `{other}` in another active module", module.namespace),
                });
            }
        }
    }
    Ok(())
}

/// stack.lock, which must answer stack.toml.
fn read_lock(root: &Path, manifest: &Manifest) -> Result<Lock, BuildError> {
    let lock_text = match crate::contain::read_to_string(root, LOCK_FILE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BuildError::NoLock),
        Err(source) => {
            return Err(BuildError::Read {
                path: LOCK_FILE.into(),
                source,
            })
        }
    };
    let lock = Lock::parse(&lock_text)?;
    let stale = lock.mismatches(manifest);
    if !stale.is_empty() {
        return Err(BuildError::StaleLock(stale));
    }
    Ok(lock)
}

/// `[stack] flux.prefix` starts every Kubernetes name the stack emits.
fn check_prefix(prefix: &str) -> Result<(), BuildError> {
    if !prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || prefix.starts_with('-')
    {
        return Err(BuildError::Values {
            path: MANIFEST_FILE.into(),
            message: format!("[stack] flux.prefix {prefix:?} cannot start a Kubernetes name: use lowercase letters, digits and `-`, not first\nhelp: use a prefix such as \"stack-\""),
        });
    }
    Ok(())
}

/// Mirrors marked `cluster = true` are where the cluster pulls charts from (air-gapped clusters).
fn cluster_mirrors(manifest: &Manifest) -> Result<crate::source::Mirrors, BuildError> {
    let cluster_mirrors: BTreeMap<String, crate::manifest::Mirror> = manifest
        .mirrors
        .iter()
        .filter(|(_, m)| m.cluster())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    crate::source::Mirrors::new(&cluster_mirrors, &[]).map_err(|e| BuildError::Values {
        path: MANIFEST_FILE.into(),
        message: e.to_string(),
    })
}

/// What the components emit together, gathered as `build` walks them in dependency order.
struct Emit<'a> {
    root: &'a Path,
    /// `root` resolved once, for reading the vendored dashboards.
    dir: &'a crate::contain::Canonical,
    manifest: &'a Manifest,
    lock: &'a Lock,
    plan: &'a Plan,
    /// Mirrors marked `cluster = true`: where the cluster pulls charts from.
    cluster_mirrors: crate::source::Mirrors,
    /// The series the stack's recording rules define.
    recorded: std::collections::BTreeSet<String>,
    tree: Tree,
    /// Rendered dashboards from earlier builds (`None`: no cache, render everything).
    cache: Option<&'a render_cache::RenderCache>,
    /// Where the dashboards' JSON goes as it is rendered.
    large: &'a mut dyn Sink,
    warnings: Vec<String>,
    emitted: objects::Emitted,
    findings: Vec<crate::values_check::Finding>,
    /// Repository URL -> (HelmRepository name, namespace) of the component that emits it.
    helm_repos: BTreeMap<String, (String, String)>,
    shipped: crate::emit::provisioning::Shipped,
    dashboard_count: usize,
}

impl Emit<'_> {
    /// One component's app (release, manifests, dashboards), its kustomization and its Flux
    /// Kustomization; returns the Kustomization's file for the top level.
    fn component(&mut self, component: &crate::plan::Component) -> Result<String, BuildError> {
        let module = &component.module;
        let name = module.name.as_str();
        let depends: Vec<String> = component.depends_on.iter().cloned().collect();
        let mut resources = Vec::new();
        if let Some(release) = &module.release {
            resources = self.release(module, release)?;
        }
        resources.extend(self.manifests(module)?);
        let generators = self.dashboards(module)?;
        let kustomize = flux::kustomize_file(&resources, generators);
        self.tree.insert(
            format!("{name}/app/kustomization.yaml"),
            yaml_text(&[kustomize], name)?,
        );
        let variables = flux_variables(&self.tree, name);
        let ks = flux::kustomization(
            &self.manifest.stack,
            name,
            &depends,
            &module.timeout,
            module.wait,
            &variables,
        );
        self.tree
            .insert(format!("{name}/ks.yaml"), yaml_text(&[ks], name)?);
        Ok(format!("{name}/ks.yaml"))
    }

    /// Where the cluster pulls `source` from (after cluster mirrors), and whether over plain HTTP.
    fn pull_from(
        &self,
        source: &crate::manifest::ChartSource,
    ) -> Result<(String, bool), BuildError> {
        Ok(match source {
            crate::manifest::ChartSource::Oci { url } => {
                let at = self.cluster_mirrors.oci(url);
                (format!("oci://{at}"), at.plain_http)
            }
            crate::manifest::ChartSource::Repo { url, .. } => {
                let at = self
                    .cluster_mirrors
                    .http(url)
                    .map_err(|e| BuildError::Values {
                        path: MANIFEST_FILE.into(),
                        message: format!("mirror of {url}: {e}"),
                    })?;
                (at.url.as_str().trim_end_matches('/').to_string(), false)
            }
        })
    }

    /// The chart source a release refers to: its name and namespace, and whether this component emits
    /// it. One HelmRepository per repository URL, so Flux fetches a (large) index.yaml once: the first
    /// component in dependency order that uses it emits it, later ones refer to it. The first cannot
    /// depend on a later one, so no Kustomization waits for a source behind itself.
    fn source_for(
        &mut self,
        source: &crate::manifest::ChartSource,
        release: &crate::module::Release,
        namespace: &str,
        pull_from: &str,
    ) -> (String, String, bool) {
        match source {
            crate::manifest::ChartSource::Oci { .. } => {
                (release.chart.to_string(), namespace.to_string(), true)
            }
            crate::manifest::ChartSource::Repo { .. } => match self.helm_repos.get(pull_from) {
                Some((n, ns)) => (n.clone(), ns.clone(), false),
                None => {
                    let n = flux::helm_repository_name(pull_from);
                    self.helm_repos
                        .insert(pull_from.to_string(), (n.clone(), namespace.to_string()));
                    (n, namespace.to_string(), true)
                }
            },
        }
    }

    /// A module's HelmRelease and (unless an earlier component emitted it) its chart's source; returns
    /// the files for the component's kustomization.
    fn release(
        &mut self,
        module: &crate::module::Module,
        release: &crate::module::Release,
    ) -> Result<Vec<String>, BuildError> {
        let name = module.name.as_str();
        let stack_name = self.manifest.stack.name.as_str();
        let interval = self.manifest.stack.flux.interval.as_str();
        let mut resources = Vec::new();
        let chart = &self.manifest.charts[&release.chart];
        let locked = &self.lock.charts()[&release.chart];
        self.warnings.extend(locked.unverified_warning());
        let values = self.release_values(name, release)?;
        match values_check::check_release(self.root, release, locked, &values)? {
            values_check::Checked::Findings(mut f) => self.findings.append(&mut f),
            values_check::Checked::NotChecked(why) => self.warnings.push(why),
        }
        let (pull_from, insecure) = self.pull_from(&chart.source)?;
        let at = flux::Placement {
            stack: stack_name,
            namespace: &module.namespace,
            interval,
        };
        let (source_name, source_namespace, emit) =
            self.source_for(&chart.source, release, &module.namespace, &pull_from);
        let mut source_file = None;
        if emit {
            let source = flux::source(
                &at,
                &source_name,
                &chart.source,
                &pull_from,
                insecure,
                locked,
            );
            let file = match chart.source {
                crate::manifest::ChartSource::Oci { .. } => "ocirepository.yaml",
                crate::manifest::ChartSource::Repo { .. } => "helmrepository.yaml",
            };
            self.emitted
                .add_documents(name, std::slice::from_ref(&source), &module.namespace)?;
            self.tree
                .insert(format!("{name}/app/{file}"), yaml_text(&[source], name)?);
            source_file = Some(file);
        }
        let hr = flux::helm_release(
            &at,
            &release.name,
            (&source_name, &source_namespace),
            &chart.source,
            locked,
            values,
        );
        self.emitted
            .add_documents(name, std::slice::from_ref(&hr), &module.namespace)?;
        self.tree.insert(
            format!("{name}/app/helmrelease.yaml"),
            yaml_text(&[hr], name)?,
        );
        resources.push("helmrelease.yaml".to_string());
        resources.extend(source_file.map(String::from));
        Ok(resources)
    }

    /// A release's values: its values files merged in order (each replacing), then the patches whose
    /// `when` holds under the settings (each with its own merge), then `${settings.NAME}` substituted.
    /// Errors: a setting the values name that does not exist, named by module and release.
    fn release_values(
        &self,
        module: &str,
        release: &crate::module::Release,
    ) -> Result<Value, BuildError> {
        let mut values = Value::Mapping(Default::default());
        for file in &release.values {
            merge_values(
                &mut values,
                &file.documents[0],
                crate::module::Merge::Replace,
            );
        }
        for patch in release
            .patches
            .iter()
            .filter(|p| p.when.holds(&self.plan.settings))
        {
            merge_values(&mut values, &patch.file.documents[0], patch.merge);
        }
        substitute(&mut values, &self.plan.settings).map_err(|message| BuildError::Values {
            path: format!("modules/{module}/ (values of release {})", release.name),
            message,
        })?;
        Ok(values)
    }

    /// A module's plain manifests whose `when` holds; returns their files.
    fn manifests(&mut self, module: &crate::module::Module) -> Result<Vec<String>, BuildError> {
        let name = module.name.as_str();
        let mut resources = Vec::new();
        for extra in module
            .manifests
            .iter()
            .filter(|m| m.when.holds(&self.plan.settings))
        {
            let mut docs = extra.file.documents.clone();
            for (index, doc) in docs.iter_mut().enumerate() {
                substitute(doc, &self.plan.settings).map_err(|message| BuildError::Values {
                    path: extra.file.path.clone(),
                    message,
                })?;
                objects::check_manifest_object(&extra.file.path, index + 1, doc)?;
                default_namespace(doc, &module.namespace);
            }
            self.emitted.add_documents(name, &docs, &module.namespace)?;
            let file = extra
                .file
                .path
                .trim_start_matches(&format!("modules/{name}/"))
                .replace('/', "-");
            self.tree.insert(
                format!("{name}/app/{file}"),
                yaml_text(&docs, &extra.file.path)?,
            );
            resources.push(file);
        }
        Ok(resources)
    }
}

/// The `${VAR}`s a component's app leaves for Flux's `postBuild` substitution (dashboards opt out of it),
/// sorted. `$${VAR}` is Flux's escape and does not count.
fn flux_variables(tree: &Tree, component: &str) -> Vec<String> {
    let app = format!("{component}/app/");
    let dashboards = format!("{component}/app/dashboards/");
    let mut vars = std::collections::BTreeSet::new();
    for (path, bytes) in &tree.files {
        if !path.starts_with(&app) || path.starts_with(&dashboards) {
            continue;
        }
        let text = String::from_utf8_lossy(bytes);
        let mut rest = text.as_ref();
        while let Some(at) = rest.find("${") {
            let escaped = rest[..at].ends_with('$');
            let after = &rest[at + 2..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let closed = after[name.len()..].starts_with(['}', ':']);
            if !escaped
                && closed
                && !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
            {
                vars.insert(name.clone());
            }
            rest = &after[name.len()..];
        }
    }
    vars.into_iter().collect()
}

/// Namespaced objects of a module without a namespace land in the module's namespace.
fn default_namespace(doc: &mut Value, namespace: &str) {
    const CLUSTER_SCOPED: &[&str] = &[
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    ];
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if CLUSTER_SCOPED.contains(&kind.as_str()) {
        return;
    }
    if let Some(Value::Mapping(meta)) = doc.get_mut("metadata") {
        let key = Value::String("namespace".into());
        if !meta.contains_key(&key) {
            meta.insert(key, Value::String(namespace.into()));
        }
    }
}

fn yaml_text(docs: &[Value], what: &str) -> Result<String, BuildError> {
    yaml::documents(docs).map_err(|e| BuildError::Values {
        path: what.to_string(),
        message: e.to_string(),
    })
}
