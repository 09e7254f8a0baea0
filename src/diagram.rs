//! The component graph as something to look at: each active component with its namespace, its chart and
//! locked version, and the condition that made it active, and the edges Flux's `dependsOn` follows.
//! Rendered as text, Graphviz DOT, a Mermaid flowchart, SVG (laid out in-process by `layout-rs`, so no
//! Graphviz is needed) or JSON. Everything is sorted, so the same stack always draws the same picture.

use serde::Serialize;

use crate::lock::Lock;
use crate::manifest::Manifest;
use crate::plan::Plan;

/// One component of the graph.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    pub name: String,
    pub namespace: String,
    /// The chart input of the component's release, if it has one.
    pub chart: Option<String>,
    /// The requirement written in stack.toml.
    pub requirement: Option<String>,
    /// The version stack.lock pins (`None` before the first `stack lock`).
    pub version: Option<String>,
    /// The module's `when`, as written (`None` when always active once enabled).
    pub condition: Option<String>,
    /// The components this one depends on (Flux `dependsOn`), sorted.
    pub depends_on: Vec<String>,
}

/// The graph, components in dependency order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Diagram {
    pub nodes: Vec<Node>,
}

impl Diagram {
    pub fn new(manifest: &Manifest, plan: &Plan, lock: Option<&Lock>) -> Diagram {
        let nodes = plan
            .components
            .iter()
            .map(|c| {
                let chart = c.module.release.as_ref().map(|r| r.chart.clone());
                Node {
                    name: c.module.name.clone(),
                    namespace: c.module.namespace.clone(),
                    chart: chart.as_ref().map(|n| n.to_string()),
                    requirement: chart
                        .as_ref()
                        .and_then(|n| manifest.charts.get(n))
                        .map(|s| s.version.as_str().to_string()),
                    version: chart
                        .as_ref()
                        .and_then(|n| lock?.charts().get(n))
                        .map(|l| l.version.clone()),
                    condition: (!c.module.when.0.is_empty()).then(|| c.module.when.to_string()),
                    depends_on: c.depends_on.iter().cloned().collect(),
                }
            })
            .collect();
        Diagram { nodes }
    }

    /// The lines under a node's name: chart and version, condition.
    fn details(node: &Node) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(chart) = &node.chart {
            let version = match (&node.version, &node.requirement) {
                (Some(v), _) => v.clone(),
                (None, Some(r)) => format!("{r} (not locked)"),
                (None, None) => "(not locked)".into(),
            };
            out.push(format!("{chart} {version}"));
        }
        if let Some(condition) = &node.condition {
            out.push(format!("when {condition}"));
        }
        out
    }

    /// An indented list: each component, its details and what it depends on.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!("{} ({})\n", node.name, node.namespace));
            for line in Self::details(node) {
                out.push_str(&format!("    {line}\n"));
            }
            if !node.depends_on.is_empty() {
                out.push_str(&format!("    depends on {}\n", node.depends_on.join(", ")));
            }
        }
        if self.nodes.is_empty() {
            out.push_str("no active components\n");
        }
        out
    }

    /// Graphviz DOT; an edge points from a dependency to what needs it (the order Flux applies them).
    pub fn dot(&self) -> String {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::from("digraph stack {\n    rankdir=LR;\n    node [shape=box];\n");
        for node in &self.nodes {
            let mut label = vec![node.name.clone()];
            label.extend(Self::details(node));
            let label: Vec<String> = label.iter().map(|l| quote(l)).collect();
            out.push_str(&format!(
                "    \"{}\" [label=\"{}\"];\n",
                quote(&node.name),
                label.join("\\n")
            ));
        }
        for node in &self.nodes {
            for dep in &node.depends_on {
                out.push_str(&format!(
                    "    \"{}\" -> \"{}\";\n",
                    quote(dep),
                    quote(&node.name)
                ));
            }
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart (GitHub renders it in a ```mermaid block).
    pub fn mermaid(&self) -> String {
        let id = |s: &str| s.replace('-', "_");
        let mut out = String::from("flowchart LR\n");
        for node in &self.nodes {
            let mut label = vec![format!("<b>{}</b>", node.name)];
            label.extend(Self::details(node));
            let label = label.join("<br/>").replace('"', "#quot;");
            out.push_str(&format!("    {}[\"{label}\"]\n", id(&node.name)));
        }
        for node in &self.nodes {
            for dep in &node.depends_on {
                out.push_str(&format!("    {} --> {}\n", id(dep), id(&node.name)));
            }
        }
        out
    }

    /// SVG, laid out in-process from the DOT text (no Graphviz binary involved).
    pub fn svg(&self) -> Result<String, String> {
        use layout::backends::svg::SVGWriter;
        use layout::gv;
        let dot = self.dot();
        let mut parser = gv::DotParser::new(&dot);
        let graph = parser
            .process()
            .map_err(|e| format!("laying out the graph: {e}"))?;
        let mut builder = gv::GraphBuilder::new();
        builder.visit_graph(&graph);
        let mut visual = builder.get();
        if self.nodes.is_empty() {
            return Ok(String::from(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"0\" height=\"0\"/>\n",
            ));
        }
        let mut svg = SVGWriter::new();
        visual.do_it(false, false, false, &mut svg);
        Ok(fit_height(&svg.finalize()))
    }
}

/// layout-rs sizes the canvas generously (about twice the drawing's height); shrink the `<svg>` height
/// and viewBox to the lowest box or edge plus a margin, so the picture has no blank half in the README.
fn fit_height(svg: &str) -> String {
    let number = |text: &str, key: &str| -> Option<f64> {
        let start = text.find(key)? + key.len();
        let end = start + text[start..].find('"')?;
        text[start..end].trim().parse().ok()
    };
    let mut bottom: f64 = 0.0;
    for rect in svg.split("<rect ").skip(1) {
        if let (Some(y), Some(h)) = (number(rect, "y=\""), number(rect, "height=\"")) {
            bottom = bottom.max(y + h);
        }
    }
    for path in svg.split(" d=\"").skip(1) {
        let d = &path[..path.find('"').unwrap_or(0)];
        let coords: Vec<f64> = d
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter_map(|n| n.parse().ok())
            .collect();
        for pair in coords.chunks(2) {
            if let [_, y] = pair {
                bottom = bottom.max(*y);
            }
        }
    }
    let Some(head_end) = svg.find("xmlns=") else {
        return svg.to_string();
    };
    let head = &svg[..head_end];
    let (Some(old), Some(width)) = (number(head, "height=\""), number(head, "width=\"")) else {
        return svg.to_string();
    };
    let height = (bottom + 30.0).min(old);
    if bottom <= 0.0 || height >= old {
        return svg.to_string();
    }
    let new_head = head
        .replace(
            &format!("height=\"{old}\""),
            &format!("height=\"{height}\""),
        )
        .replace(
            &format!("viewBox=\"0 0 {width} {old}\""),
            &format!("viewBox=\"0 0 {width} {height}\""),
        );
    format!("{new_head}{}", &svg[head_end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Diagram {
        Diagram {
            nodes: vec![
                Node {
                    name: "victoria-metrics".into(),
                    namespace: "monitoring".into(),
                    chart: Some("victoria-metrics-k8s-stack".into()),
                    requirement: Some("0.45.0".into()),
                    version: Some("0.45.0".into()),
                    condition: Some("monitoring_stack = \"victoriametrics\"".into()),
                    depends_on: vec![],
                },
                Node {
                    name: "loki".into(),
                    namespace: "logging".into(),
                    chart: Some("loki".into()),
                    requirement: Some("~6.49".into()),
                    version: None,
                    condition: None,
                    depends_on: vec!["victoria-metrics".into()],
                },
            ],
        }
    }

    #[test]
    fn dot_quotes_labels_and_points_from_dependency_to_dependent() {
        let dot = sample().dot();
        assert!(dot.contains("\"victoria-metrics\" -> \"loki\";"), "{dot}");
        assert!(
            dot.contains("when monitoring_stack = \\\"victoriametrics\\\""),
            "{dot}"
        );
        assert!(dot.contains("loki ~6.49 (not locked)"), "{dot}");
    }

    #[test]
    fn svg_is_laid_out_in_process_and_the_same_every_time() {
        let a = sample().svg().unwrap();
        assert!(a.contains("<svg"), "{a}");
        assert!(a.contains("victoria-metrics-k8s-stack 0.45.0"), "{a}");
        assert_eq!(a, sample().svg().unwrap());
    }

    #[test]
    fn the_canvas_is_cut_to_the_drawing() {
        let svg = "<svg width=\"300\" height=\"900\" viewBox=\"0 0 300 900\" xmlns=\"x\">\n<rect x=\"1\" y=\"10\" width=\"5\" height=\"40\" />\n<path d=\"M 1 20 C 2 80, 3 90, 4 100 \" /></svg>";
        let fitted = fit_height(svg);
        assert!(
            fitted.starts_with("<svg width=\"300\" height=\"130\" viewBox=\"0 0 300 130\" xmlns"),
            "{fitted}"
        );
    }
}
