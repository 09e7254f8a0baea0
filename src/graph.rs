//! The dependency graph of active components: a topological order that is the same on every machine
//! (ties broken by name) and, when there is none, the cycle that prevents it.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graphmap::DiGraphMap;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("dependency cycle: {}\nhelp: remove one `depends_on` entry along it, in {}", .0.join(" -> "), module_files(.0))]
pub struct CycleError(pub Vec<String>);

/// `modules/a/module.toml or modules/b/module.toml`: where the cycle's dependencies are written (the
/// components are modules).
fn module_files(cycle: &[String]) -> String {
    let names: BTreeSet<&String> = cycle.iter().collect();
    names
        .iter()
        .map(|n| format!("modules/{n}/module.toml"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Orders `deps` (node -> the nodes it depends on) so every node comes after its dependencies.
/// Kahn's algorithm over a sorted ready-set gives one answer regardless of insertion order.
pub fn order(deps: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>, CycleError> {
    let mut graph: DiGraphMap<&str, ()> = DiGraphMap::new();
    for (node, needs) in deps {
        graph.add_node(node);
        for need in needs {
            graph.add_edge(need.as_str(), node.as_str(), ());
        }
    }
    let mut indegree: BTreeMap<&str, usize> = graph
        .nodes()
        .map(|n| (n, graph.neighbors_directed(n, petgraph::Incoming).count()))
        .collect();
    let mut ready: BTreeSet<&str> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut out = Vec::with_capacity(indegree.len());
    while let Some(node) = ready.pop_first() {
        out.push(node.to_string());
        for next in graph.neighbors_directed(node, petgraph::Outgoing) {
            let d = indegree.get_mut(next).expect("every node has an indegree");
            *d -= 1;
            if *d == 0 {
                ready.insert(next);
            }
        }
    }
    if out.len() == indegree.len() {
        return Ok(out);
    }
    Err(CycleError(find_cycle(deps)))
}

/// One cycle, starting from its smallest node, closed (`a -> b -> a`), so the message is stable.
fn find_cycle(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut graph: DiGraphMap<&str, ()> = DiGraphMap::new();
    for (node, needs) in deps {
        graph.add_node(node);
        for need in needs {
            graph.add_edge(node.as_str(), need.as_str(), ());
        }
    }
    let mut sccs: Vec<Vec<&str>> = petgraph::algo::tarjan_scc(&graph)
        .into_iter()
        .filter(|c| c.len() > 1 || graph.contains_edge(c[0], c[0]))
        .collect();
    for c in &mut sccs {
        c.sort();
    }
    sccs.sort();
    let Some(scc) = sccs.first() else {
        return Vec::new();
    };
    let members: BTreeSet<&str> = scc.iter().copied().collect();
    // Walk from the smallest member, always to the smallest successor inside the component, until a node
    // repeats; a strongly connected component guarantees the walk closes.
    let start = scc[0];
    let mut path = vec![start];
    let mut seen = BTreeSet::from([start]);
    let mut at = start;
    loop {
        let mut next: Vec<&str> = graph
            .neighbors(at)
            .filter(|n| members.contains(n))
            .collect();
        next.sort();
        let n = next[0];
        if seen.contains(n) {
            let from = path.iter().position(|p| *p == n).unwrap_or(0);
            let mut cycle: Vec<String> = path[from..].iter().map(|s| s.to_string()).collect();
            cycle.push(n.to_string());
            return cycle;
        }
        seen.insert(n);
        path.push(n);
        at = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(edges: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        edges
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn dependencies_come_first_and_ties_break_by_name() {
        let d = deps(&[
            ("alloy", &["loki", "tempo"]),
            ("tempo", &["vm"]),
            ("loki", &["vm"]),
            ("vm", &[]),
            ("alerts", &["vm"]),
        ]);
        assert_eq!(
            order(&d).unwrap(),
            ["vm", "alerts", "loki", "tempo", "alloy"]
        );
    }

    #[test]
    fn a_cycle_is_reported_closed_from_its_smallest_node() {
        let d = deps(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("z", &[])]);
        assert_eq!(order(&d).unwrap_err().0, ["a", "c", "b", "a"]);
        assert_eq!(
            order(&d).unwrap_err().to_string(),
            "dependency cycle: a -> c -> b -> a\nhelp: remove one `depends_on` entry along it, in modules/a/module.toml or modules/b/module.toml or modules/c/module.toml"
        );
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let d = deps(&[("a", &["a"])]);
        assert_eq!(order(&d).unwrap_err().0, ["a", "a"]);
    }
}
