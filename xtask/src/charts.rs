//! `cargo xtask charts`: copies the templates shared by both charts from `charts/kube-ovn-v2`
//! (where they are edited) into `charts/kube-ovn`. The two charts differ only in their value
//! names: each has its own `values.yaml`, `Chart.yaml` and `templates/_config.tpl`, which maps
//! its values onto the settings the shared templates render. A test fails when a copy drifts.

use std::path::Path;

use anyhow::Context;

/// The chart whose shared templates are the source.
pub const SOURCE: &str = "charts/kube-ovn-v2";

/// Charts that get copies.
pub const COPIES: &[&str] = &["charts/kube-ovn"];

/// The shared files, relative to a chart's root.
pub const SHARED: &[&str] = &[
    "templates/_kube-ovn.tpl",
    "templates/kube-ovn.yaml",
    "templates/NOTES.txt",
];

/// Writes every copy.
pub fn run(root: &Path) -> anyhow::Result<()> {
    for file in SHARED {
        let from = root.join(SOURCE).join(file);
        let content =
            std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        for chart in COPIES {
            let to = root.join(chart).join(file);
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&to, &content).with_context(|| format!("writing {}", to.display()))?;
        }
    }
    println!(
        "copied {} shared templates from {SOURCE} to {}",
        SHARED.len(),
        COPIES.join(", ")
    );
    Ok(())
}

/// Fails when a copy is stale.
pub fn check(root: &Path) -> anyhow::Result<()> {
    let stale = drift(root);
    if stale.is_empty() {
        println!("shared chart templates are in sync");
        Ok(())
    } else {
        anyhow::bail!(
            "{} differ from {SOURCE}: edit the templates in {SOURCE}, then run `cargo xtask charts`",
            stale.join(", ")
        )
    }
}

/// The copies that differ from their source (or are missing), as `chart/file` paths.
pub fn drift(root: &Path) -> Vec<String> {
    let mut stale = Vec::new();
    for file in SHARED {
        let source = std::fs::read(root.join(SOURCE).join(file)).ok();
        for chart in COPIES {
            let copy = std::fs::read(root.join(chart).join(file)).ok();
            if source.is_none() || copy != source {
                stale.push(format!("{chart}/{file}"));
            }
        }
    }
    stale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_chart_templates_are_in_sync() {
        let root = crate::workspace_root().unwrap_or_else(|e| panic!("{e}"));
        check(&root).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn drift_reports_a_changed_copy() {
        let dir = std::env::temp_dir().join(format!("xtask-charts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for chart in std::iter::once(&SOURCE).chain(COPIES) {
            for file in SHARED {
                let path = dir.join(chart).join(file);
                std::fs::create_dir_all(path.parent().unwrap_or(&dir))
                    .unwrap_or_else(|e| panic!("{e}"));
                std::fs::write(&path, "same").unwrap_or_else(|e| panic!("{e}"));
            }
        }
        assert!(drift(&dir).is_empty());
        let changed = dir.join(COPIES[0]).join(SHARED[0]);
        std::fs::write(&changed, "edited by hand").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(drift(&dir), [format!("{}/{}", COPIES[0], SHARED[0])]);
        run(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(drift(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
