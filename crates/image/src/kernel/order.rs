//! Module load order: dependencies before the modules that need them,
//! transitively, as `modprobe` would load them.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderError {
    /// A module in the graph's closure that the graph does not describe.
    Missing {
        module: String,
        needed_by: Option<String>,
    },
    /// The modules, in dependency order, that lead back to the first.
    Cycle(Vec<String>),
}

/// Orders `roots` and everything they depend on, dependencies first.
/// `graph` maps every module to its direct dependencies. The result is
/// deterministic: roots in the order given, each one's dependencies in the
/// order its `depends=` lists them, each module once.
pub fn load_order(
    roots: &[String],
    graph: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, OrderError> {
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    let mut order = Vec::new();
    // An explicit stack (module, index of the next dependency to visit)
    // instead of recursion, so a deep chain cannot overflow the stack.
    let mut stack: Vec<(&str, usize)> = Vec::new();
    for root in roots {
        enter(root, None, graph, &mut stack, &mut marks)?;
        while let Some(&(module, next)) = stack.last() {
            if let Some(dep) = graph[module].get(next) {
                stack.last_mut().expect("non-empty").1 += 1;
                enter(dep, Some(module), graph, &mut stack, &mut marks)?;
            } else {
                stack.pop();
                marks.insert(module, Mark::Done);
                order.push(module.to_owned());
            }
        }
    }
    Ok(order)
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    InProgress,
    Done,
}

/// Starts visiting `module` unless it is already ordered; meeting a module
/// still in progress means a cycle.
fn enter<'g>(
    module: &str,
    parent: Option<&str>,
    graph: &'g BTreeMap<String, Vec<String>>,
    stack: &mut Vec<(&'g str, usize)>,
    marks: &mut BTreeMap<&'g str, Mark>,
) -> Result<(), OrderError> {
    let Some((key, _)) = graph.get_key_value(module) else {
        return Err(OrderError::Missing {
            module: module.to_owned(),
            needed_by: parent.map(str::to_owned),
        });
    };
    match marks.get(module) {
        Some(Mark::Done) => Ok(()),
        Some(Mark::InProgress) => {
            let from = stack.iter().position(|(m, _)| *m == module).unwrap_or(0);
            let mut cycle: Vec<String> =
                stack[from..].iter().map(|(m, _)| (*m).to_owned()).collect();
            cycle.push(module.to_owned());
            Err(OrderError::Cycle(cycle))
        }
        None => {
            marks.insert(key, Mark::InProgress);
            stack.push((key, 0));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(m, d)| (m.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn roots(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    fn pos(order: &[String], m: &str) -> usize {
        order.iter().position(|x| x == m).unwrap()
    }

    #[test]
    fn dependencies_come_first_transitively_and_once() {
        // The real graph of Debian 12's cloud kernel.
        let g = graph(&[
            ("virtio", &[]),
            ("virtio_ring", &[]),
            ("virtio_mmio", &["virtio", "virtio_ring"]),
            (
                "virtio_pci",
                &[
                    "virtio_ring",
                    "virtio_pci_modern_dev",
                    "virtio_pci_legacy_dev",
                    "virtio",
                ],
            ),
            ("virtio_pci_modern_dev", &[]),
            ("virtio_pci_legacy_dev", &[]),
            ("virtio_blk", &["virtio", "virtio_ring"]),
            ("failover", &[]),
            ("net_failover", &["failover"]),
            ("virtio_net", &["virtio_ring", "virtio", "net_failover"]),
            ("vsock", &[]),
            ("vmw_vsock_virtio_transport_common", &["vsock"]),
            (
                "vmw_vsock_virtio_transport",
                &[
                    "virtio",
                    "vmw_vsock_virtio_transport_common",
                    "virtio_ring",
                    "vsock",
                ],
            ),
        ]);
        let order = load_order(
            &roots(&[
                "virtio_net",
                "vmw_vsock_virtio_transport",
                "virtio_pci",
                "virtio_mmio",
                "virtio_blk",
            ]),
            &g,
        )
        .unwrap();
        assert_eq!(order.len(), g.len());
        for (module, deps) in &g {
            for dep in deps {
                assert!(
                    pos(&order, dep) < pos(&order, module),
                    "{dep} before {module}: {order:?}"
                );
            }
        }
        assert_eq!(
            order[..4],
            ["virtio_ring", "virtio", "failover", "net_failover"]
        );
    }

    #[test]
    fn the_same_input_gives_the_same_order() {
        let g = graph(&[("a", &["b", "c"]), ("b", &["c"]), ("c", &[])]);
        let first = load_order(&roots(&["a"]), &g).unwrap();
        assert_eq!(first, ["c", "b", "a"]);
        assert_eq!(load_order(&roots(&["a"]), &g).unwrap(), first);
    }

    #[test]
    fn a_missing_dependency_names_who_needs_it() {
        let g = graph(&[("a", &["b"])]);
        assert_eq!(
            load_order(&roots(&["a"]), &g),
            Err(OrderError::Missing {
                module: "b".into(),
                needed_by: Some("a".into())
            })
        );
        assert_eq!(
            load_order(&roots(&["z"]), &g),
            Err(OrderError::Missing {
                module: "z".into(),
                needed_by: None
            })
        );
    }

    #[test]
    fn a_cycle_is_reported_with_its_members() {
        let g = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["b"])]);
        assert_eq!(
            load_order(&roots(&["a"]), &g),
            Err(OrderError::Cycle(vec!["b".into(), "c".into(), "b".into()]))
        );
        let g = graph(&[("a", &["a"])]);
        assert!(matches!(
            load_order(&roots(&["a"]), &g),
            Err(OrderError::Cycle(_))
        ));
    }
}
