//! The host's crates depend on each other one way only (ARCHITECTURE.md,
//! "Crates"): each crate has a layer, and a crate may depend only on
//! crates of lower layers. A new crate must be given a layer here, and an
//! upward (or sideways) dependency fails this test.
use std::collections::BTreeMap;
use std::process::Command;

/// Layer of every crate of the workspace that is part of the host.
const LAYERS: &[(&str, u32)] = &[
    ("agentkernel-sdk", 0),
    ("agentkernel-runtime", 0),
    ("agentkernel-storage", 0),
    // Capabilities and their backends: runtime and storage only.
    ("agentkernel-llm", 1),
    ("agentkernel-capabilities", 1),
    ("agentkernel-http", 1),
    ("agentkernel-aws", 1),
    // The host: the capability list, config, registry, chat.
    ("agentkernel-core", 2),
    ("agentkernel-evolution", 3),
    ("agentkernel-server", 4),
    ("agentkernel", 5),
    // Test support and benchmarks: above everything they exercise.
    ("sandbox-tests", 6),
    ("agentkernel-benches", 6),
];

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

/// Every workspace member and the workspace members it depends on (normal
/// and build dependencies, renamed and optional ones included: metadata
/// names the real package; tests may reach anywhere).
fn workspace_graph() -> BTreeMap<String, Vec<String>> {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .filter_map(|d| d["name"].as_str())
                .filter(|d| members.contains(d))
                .map(str::to_string)
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// The host's crates: every member named `agentkernel*`.
fn host_graph() -> BTreeMap<String, Vec<String>> {
    workspace_graph().into_iter().filter(|(name, _)| name.starts_with("agentkernel")).collect()
}

fn layer(name: &str) -> Option<u32> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

#[test]
fn every_host_crate_depends_only_on_lower_layers() {
    let graph = host_graph();
    assert!(graph.len() >= 10, "the host is split into crates: {:?}", graph.keys());
    // Any workspace member a host crate depends on must have a layer too
    // (an agent, a guest or a crate of another name would show up here).
    let mut violations = Vec::new();
    for (krate, deps) in &graph {
        let Some(own) = layer(krate) else {
            violations.push(format!("{krate} has no layer: add it to LAYERS in {}", file!()));
            continue;
        };
        for dep in deps {
            match layer(dep) {
                Some(l) if l < own => {}
                Some(l) => violations.push(format!("{krate} (layer {own}) depends on {dep} (layer {l}): dependencies point down only")),
                None => violations.push(format!("{dep} has no layer: add it to LAYERS in {}", file!())),
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_runtime_knows_no_capability_backend_or_host_crate() {
    let graph = host_graph();
    let runtime = &graph["agentkernel-runtime"];
    assert!(runtime.is_empty(), "the runtime depends on {runtime:?}");
    // EC2 is optional: only crates that offer the `aws` feature name it.
    for (krate, deps) in &graph {
        if deps.iter().any(|d| d == "agentkernel-aws") {
            assert!(["agentkernel-core", "agentkernel-server", "agentkernel"].contains(&krate.as_str()), "{krate} depends on aws");
        }
    }
}

/// The Rust SDK is publishable on its own: `cargo package` (which builds
/// the packaged crate as a user's download would) passes, and the package
/// carries the WIT files its bindings are generated from.
#[test]
fn the_sdk_packages_with_its_wit() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let target = tempfile::tempdir().unwrap();
    let listed = Command::new(&cargo).current_dir(root).args(["package", "-p", "agentkernel-sdk", "--allow-dirty", "--list"]).output().unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let files = String::from_utf8_lossy(&listed.stdout);
    for wit in ["wit/world.wit", "wit/types.wit", "wit/memory.wit", "src/lib.rs", "README.md"] {
        assert!(files.lines().any(|f| f == wit), "{wit} is not packaged: {files}");
    }
    assert!(!files.contains("python/"), "the Python helper layer is not part of the crate: {files}");
    let packaged = Command::new(&cargo)
        .current_dir(root)
        .args(["package", "-p", "agentkernel-sdk", "--allow-dirty", "--target-dir"])
        .arg(target.path())
        .output()
        .unwrap();
    assert!(packaged.status.success(), "cargo package failed:\n{}", String::from_utf8_lossy(&packaged.stderr));
}
