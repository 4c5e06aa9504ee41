//! The CRD YAML committed under `charts/*/crds/` is exactly what the types generate.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = crds::generate::crd_files().unwrap();
    assert_eq!(files.len(), 11);
    let optional = crds::generate::optional_crd_files().unwrap();
    assert_eq!(optional.len(), 1);
    let mut problems = Vec::new();
    let sets = [
        (&files, crds::generate::CHART_CRD_DIRS),
        (&optional, crds::generate::CHART_OPTIONAL_CRD_DIRS),
    ];
    for (files, dir) in sets.into_iter().flat_map(|(f, dirs)| dirs.map(|d| (f, d))) {
        for f in files {
            let path = root.join(dir).join(&f.file_name);
            match std::fs::read_to_string(&path) {
                Ok(text) if text == f.content => {}
                Ok(_) => problems.push(format!("{} differs", path.display())),
                Err(e) => problems.push(format!("{} unreadable: {e}", path.display())),
            }
        }
        let extra: Vec<_> = std::fs::read_dir(root.join(dir))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        for name in extra {
            if !files.iter().any(|f| *f.file_name == *name) {
                problems.push(format!("{dir}/{} is not generated", name.to_string_lossy()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "CRD YAML is out of date; run `cargo xtask crds` and commit the result:\n{}",
        problems.join("\n")
    );
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(
        crds::generate::crd_files().unwrap(),
        crds::generate::crd_files().unwrap()
    );
}
