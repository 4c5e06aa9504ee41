//! `cargo xtask crds`: writes the generated CRD YAML into every chart's `crds/` folder, one file
//! per CRD, and removes stale YAML files there (and the optional CRDs into `files/`). The `crds` crate's drift test checks the result.

use std::path::Path;

use anyhow::Context;

pub fn run(root: &Path) -> anyhow::Result<()> {
    write(
        root,
        &::crds::generate::crd_files()?,
        &::crds::generate::CHART_CRD_DIRS,
    )?;
    write(
        root,
        &::crds::generate::optional_crd_files()?,
        &::crds::generate::CHART_OPTIONAL_CRD_DIRS,
    )
}

fn write(root: &Path, files: &[::crds::generate::CrdFile], dirs: &[&str]) -> anyhow::Result<()> {
    for dir in dirs {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            let stale = path.extension().is_some_and(|e| e == "yaml")
                && !files
                    .iter()
                    .any(|f| path.file_name().is_some_and(|n| *n == *f.file_name));
            if stale {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing stale {}", path.display()))?;
            }
        }
        for f in files {
            let path = dir.join(&f.file_name);
            std::fs::write(&path, &f.content)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        println!("wrote {} CRDs to {}", files.len(), dir.display());
    }
    Ok(())
}
