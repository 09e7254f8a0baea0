//! The dashboards a component ships: vendored ones checked against the lock, the module's own, and the
//! recording rules their queries need.

use super::render_cache::{Hit, Render};
use super::*;

/// A dashboard a component ships: a vendored one of stack.toml (when the module carries them) or one
/// of the module's own.
pub(super) struct ToShip<'a> {
    /// The ConfigMap is `dashboard-<name>`.
    pub(super) name: String,
    /// For messages: `[dashboards.NAME] of stack.toml` or the module file.
    pub(super) input: String,
    /// The file the bytes come from.
    pub(super) path: String,
    pub(super) bytes: Bytes<'a>,
    pub(super) provision: dashboard::Provision<'a>,
    pub(super) folder: &'a str,
    /// A module's own dashboard: its queries must use only recording rules the stack defines.
    pub(super) own: bool,
}

/// Where a dashboard's bytes are: read (and checked against the lock) only when it is rendered, so a
/// build holds one input dashboard per worker at a time, not all of them.
pub(super) enum Bytes<'a> {
    /// Vendored under `[dashboards.NAME]`, pinned by the lock.
    Vendored(&'a crate::lock::LockedDashboard),
    /// A module's own file, read with the module.
    Own(&'a [u8]),
}

impl ToShip<'_> {
    /// The dashboard's bytes (a vendored one checked against its lock entry).
    pub(super) fn read(
        &self,
        dir: &crate::contain::Canonical,
    ) -> Result<std::borrow::Cow<'_, [u8]>, BuildError> {
        match self.bytes {
            Bytes::Vendored(locked) => Ok(vendored_bytes(dir, &self.name, locked)?.into()),
            Bytes::Own(bytes) => Ok(bytes.into()),
        }
    }

    /// The blake3 of `bytes`, as [`ToShip::read`] gave them: a vendored input's is the lock's (the read
    /// checked it), so an input is hashed once.
    pub(super) fn input_blake3(&self, bytes: &[u8]) -> String {
        match self.bytes {
            Bytes::Vendored(locked) => locked.blake3.to_string(),
            Bytes::Own(_) => crate::digest::blake3(bytes),
        }
    }
}

/// One dashboard read and rendered: the outer error is reading it (missing, or not what the lock pins),
/// the inner one rendering it; `None`: not rendered, since an earlier dashboard already failed.
pub(super) type Outcome =
    Result<Option<Result<super::render_cache::Render, dashboard::DashboardError>>, BuildError>;

/// Dashboards a worker may render ahead of the one being shipped, per core: enough to keep every core
/// busy behind one slow dashboard, few enough that a build holds a handful of rendered files, not all.
const WINDOW_PER_WORKER: usize = 4;

impl Emit<'_> {
    /// A module's dashboards, rendered for provisioning on every core (a bounded number ahead), each handed to
    /// the sink and dropped in `list` order; returns their ConfigMap generators. The errors are those of
    /// rendering them one by one after reading them all: the first read error, else the first other one.
    pub(super) fn dashboards(
        &mut self,
        module: &crate::module::Module,
    ) -> Result<Vec<Value>, BuildError> {
        let provisioned = self.plan.datasources();
        let ds = Datasources {
            provisioned: &provisioned,
        };
        let list = shipped_dashboards(self.manifest, self.lock, self.plan, module);
        let (dir, cache) = (self.dir, self.cache);
        let existing = self.large.existing().map(Path::to_path_buf);
        // Once one fails, the rest are only read (a read error is reported before it).
        let failed = std::sync::atomic::AtomicBool::new(false);
        let one = |dash: &ToShip| -> Outcome {
            let bytes = dash.read(dir)?;
            if failed.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(None);
            }
            let input = dash.input_blake3(&bytes);
            let mut rendered = super::render_cache::render(cache, dash, &bytes, &input, &ds);
            // Hashing out/'s copy here, on every core, spares reading the cached text when it is same.
            if let (Ok(Render::Cached(hit)), Some(dir)) = (&mut rendered, &existing) {
                let file = dir.join(dashboard_path(&module.name, &dash.name));
                hit.in_out = crate::emit::staging::hashes_to(&file, hit.len, &hit.blake3);
            }
            Ok(Some(rendered))
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(list.len() / 4)
            .max(1);
        let mut generators = Vec::with_capacity(list.len());
        let mut first_error = None;
        crate::parallel::ordered(
            &list,
            workers,
            workers * WINDOW_PER_WORKER,
            one,
            |i, outcome| {
                let Some(rendered) = outcome? else {
                    return Ok(());
                };
                if first_error.is_some() {
                    return Ok(());
                }
                match rendered
                    .map_err(|e| own_dashboard_error(&list[i], e))
                    .and_then(|r| self.ship(module, &list[i], r))
                {
                    Ok(generator) => generators.push(generator),
                    Err(BuildError::Write { path, source }) => {
                        return Err(BuildError::Write { path, source })
                    }
                    Err(e) => {
                        failed.store(true, std::sync::atomic::Ordering::Relaxed);
                        first_error.get_or_insert(e);
                    }
                }
                Ok(())
            },
        )?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(generators),
        }
    }

    /// One rendered dashboard: checked, counted, handed to the sink; returns its ConfigMap generator.
    fn ship(
        &mut self,
        module: &crate::module::Module,
        dash: &ToShip,
        render: Render,
    ) -> Result<Value, BuildError> {
        let name = module.name.as_str();
        let file = format!("dashboards/{}.json", dash.name);
        let path = dashboard_path(name, &dash.name);
        let write = |source| BuildError::Write {
            path: path.clone(),
            source,
        };
        // A cached render whose bytes out/ already holds is not read (its render thread hashed out/'s).
        let (rendered, blake3, held) = match render {
            Render::Cached(hit) if hit.in_out => {
                self.large.held(&path, hit.len, hit.blake3);
                let len = hit.len as usize;
                let info = dashboard::Rendered {
                    text: String::new(),
                    uid: hit.uid,
                    title: hit.title,
                };
                (info, hit.blake3, Some(len))
            }
            Render::Cached(hit) => {
                let (rendered, blake3) = self.cached_text(dash, hit)?;
                (rendered, blake3, None)
            }
            Render::Text(rendered, blake3) => (rendered, blake3, None),
        };
        self.shipped
            .add(&dash.name, &dash.input, dash.folder, &rendered)?;
        if dash.own {
            check_recording_rules(dash, &self.recorded)?;
        }
        let len = held.unwrap_or(rendered.text.len());
        if len > dashboard::CLIENT_SIDE_APPLY_LIMIT {
            self.warnings.push(format!(
                "dashboard `{}` is {} bytes: fine for Flux (server-side apply), but a client-side `kubectl apply` of it fails (annotation limit {} bytes); use `kubectl apply --server-side` by hand",
                dash.name,
                len,
                dashboard::CLIENT_SIDE_APPLY_LIMIT
            ));
        }
        self.emitted.add(
            name,
            "ConfigMap",
            &module.namespace,
            &format!("dashboard-{}", dash.name),
        )?;
        if held.is_none() {
            self.large
                .put_hashed(path.clone(), rendered.text.into_bytes(), blake3)
                .map_err(write)?;
        }
        self.dashboard_count += 1;
        Ok(flux::dashboard_generator(
            self.manifest.stack.name.as_str(),
            &dash.name,
            &module.namespace,
            &file,
            dash.folder,
        ))
    }

    /// The text of a cached render that out/ does not hold: read from the cache (verified), or, when
    /// the entry is torn or gone since its header was read, rendered again from the input; with the
    /// text's blake3.
    fn cached_text(
        &self,
        dash: &ToShip,
        hit: Hit,
    ) -> Result<(dashboard::Rendered, blake3::Hash), BuildError> {
        if let Some(text) = self.cache.and_then(|c| c.text(&hit)) {
            let rendered = dashboard::Rendered {
                text,
                uid: hit.uid,
                title: hit.title,
            };
            return Ok((rendered, hit.blake3));
        }
        let bytes = dash.read(self.dir)?;
        let ds = self.plan.datasources();
        let ds = Datasources { provisioned: &ds };
        Ok(super::render_cache::render_hashed(dash, &bytes, &ds)?)
    }
}

/// Where dashboard `name` of `module` goes in the output.
fn dashboard_path(module: &str, name: &str) -> String {
    format!("{module}/app/dashboards/{name}.json")
}

/// No constants and no per-input datasources: a module's own dashboards resolve by what is provisioned.
pub(super) static NO_OVERRIDES: BTreeMap<String, String> = BTreeMap::new();

/// The dashboards `module` ships with these settings, in a fixed order: vendored ones by name (their
/// bytes read and checked against the lock when rendered), then the module's own in module.toml order.
pub(super) fn shipped_dashboards<'a>(
    manifest: &'a Manifest,
    lock: &'a Lock,
    plan: &Plan,
    module: &'a crate::module::Module,
) -> Vec<ToShip<'a>> {
    let mut out = Vec::new();
    if module.dashboards {
        for (name, spec) in manifest.dashboards.iter().filter(|(_, d)| ships(d, plan)) {
            let locked = &lock.dashboards()[name];
            out.push(ToShip {
                name: name.to_string(),
                input: format!("[dashboards.{name}] of {MANIFEST_FILE}"),
                path: locked.path.clone(),
                bytes: Bytes::Vendored(locked),
                provision: dashboard::Provision::from(spec),
                folder: &spec.folder,
                own: false,
            });
        }
    }
    for own in module
        .own_dashboards
        .iter()
        .filter(|d| d.when.holds(&plan.settings))
    {
        out.push(ToShip {
            name: own.name.clone(),
            input: own.path.clone(),
            path: own.path.clone(),
            bytes: Bytes::Own(&own.bytes),
            provision: dashboard::Provision {
                datasource: None,
                datasources: &NO_OVERRIDES,
                inputs: &NO_OVERRIDES,
            },
            folder: &own.folder,
            own: true,
        });
    }
    out
}

/// Whether a dashboard of stack.toml ships under the stack's settings (its `when` holds): the one
/// rule behind what a build renders, what `stack lock` may leave unvendored, and the no-module warning.
fn ships(spec: &crate::manifest::DashboardSpec, plan: &Plan) -> bool {
    spec.when.holds(&plan.settings)
}

/// The locked dashboards of stack.toml that this build does not ship: their `when` does not hold for
/// the stack's settings. They stay pinned in stack.lock; their vendored bytes are not needed.
pub fn unshipped_dashboards(
    manifest: &Manifest,
    plan: &Plan,
) -> std::collections::BTreeSet<crate::manifest::Name> {
    manifest
        .dashboards
        .iter()
        .filter(|(_, d)| !ships(d, plan))
        .map(|(name, _)| name.clone())
        .collect()
}

/// A warning when stack.toml's dashboards (those whose `when` holds) would ship, but no enabled module
/// ships stack.toml's dashboards (`dashboards = true` in its module.toml, see docs/modules.md): without it
/// they would be left out of the output without a word.
pub(super) fn dashboards_no_module_ships(manifest: &Manifest, plan: &Plan) -> Option<String> {
    let wanted: Vec<String> = manifest
        .dashboards
        .iter()
        .filter(|(_, d)| ships(d, plan))
        .map(|(name, _)| format!("[dashboards.{name}]"))
        .collect();
    let shipped = plan.components.iter().any(|c| c.module.dashboards);
    (!wanted.is_empty() && !shipped).then(|| {
        format!(
            "{MANIFEST_FILE} declares {} that no enabled module ships ({}): no module of \
             [modules] enabled has `dashboards = true` in its module.toml\nhelp: enable a module that \
             ships dashboards, or set `dashboards = true` in one module's module.toml",
            if wanted.len() == 1 { "a dashboard".to_string() } else { format!("{} dashboards", wanted.len()) },
            wanted.join(", ")
        )
    })
}

/// Every series the active modules' PrometheusRules record (with these settings).
pub(super) fn recorded_series(plan: &Plan) -> std::collections::BTreeSet<String> {
    plan.components
        .iter()
        .flat_map(|c| &c.module.manifests)
        .filter(|m| m.when.holds(&plan.settings))
        .flat_map(|m| &m.file.documents)
        .flat_map(promql::recorded_series)
        .collect()
}

/// A module's own dashboard may query only recording rules some active module records: a missing
/// one is a panel that shows "No data" forever.
pub(super) fn check_recording_rules(
    dash: &ToShip,
    recorded: &std::collections::BTreeSet<String>,
) -> Result<(), BuildError> {
    let Bytes::Own(bytes) = dash.bytes else {
        return Ok(());
    };
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| BuildError::Values {
        path: dash.path.clone(),
        message: e.to_string(),
    })?;
    for query in promql::panel_queries(&doc) {
        if let Some(rule) = promql::recording_rules(&query.expr)
            .into_iter()
            .find(|r| !recorded.contains(r))
        {
            return Err(BuildError::MissingRecordingRule {
                dashboard: dash.name.clone(),
                path: dash.path.clone(),
                panel: query.panel,
                rule,
            });
        }
    }
    Ok(())
}

/// The vendored bytes of a locked dashboard, which must hash to the lock.
pub(super) fn vendored_bytes(
    dir: &crate::contain::Canonical,
    name: &str,
    locked: &crate::lock::LockedDashboard,
) -> Result<Vec<u8>, BuildError> {
    let bytes = match dir.read(&locked.path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BuildError::VendorMissing {
                name: name.to_string(),
                path: locked.path.clone(),
            })
        }
        Err(source) => {
            return Err(BuildError::Read {
                path: locked.path.clone(),
                source,
            })
        }
    };
    let actual = crate::digest::blake3(&bytes);
    if actual != locked.blake3 {
        return Err(BuildError::VendorMismatch {
            name: name.to_string(),
            path: locked.path.clone(),
            expected: locked.blake3.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

/// A render error as the user can act on it: stack.toml's dashboards are configured under
/// `[dashboards.NAME]`, so their errors advise that table; a module's own dashboard has no such table, so
/// such an error names the module's file and says to fix the reference there instead.
fn own_dashboard_error(dash: &ToShip, e: dashboard::DashboardError) -> BuildError {
    let text = e.to_string();
    let Some((message, help)) = text.split_once("\nhelp: ") else {
        return e.into();
    };
    if !dash.own || !help.contains("[dashboards.") {
        return e.into();
    }
    let message = message.to_string();
    BuildError::OwnDashboard {
        path: dash.path.clone(),
        message,
    }
}
