//! OCI image layouts, written without a Docker engine: gzip'd tar layers, the image config,
//! the manifest, `index.json` and `oci-layout`, every blob named by its sha256, the whole layout
//! packed as one tar archive that `ctr images import`, `kind load image-archive`, `skopeo` and
//! `podman load` read (image-spec v1.1, `image-layout.md`).
//!
//! Layers are reproducible: entries sorted, owner root, a fixed mtime, so the same inputs give
//! the same digests.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The mtime of every file we put in a layer (reproducible digests).
const MTIME: u64 = 0;

/// One file system entry of a layer.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
}

/// A layer built from entries (parent directories are added).
#[derive(Debug, Default)]
pub struct Layer {
    entries: BTreeMap<String, Entry>,
}

impl Layer {
    /// Adds a file at `path` (absolute in the image) with `mode`.
    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> &mut Self {
        self.add(path, Entry::File { data, mode })
    }

    /// Adds the host file `from` at `path`.
    pub fn copy(&mut self, path: &str, from: &Path, mode: u32) -> anyhow::Result<&mut Self> {
        let data = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        Ok(self.file(path, data, mode))
    }

    /// Adds a symlink.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add(
            path,
            Entry::Symlink {
                target: target.to_owned(),
            },
        )
    }

    /// Adds an empty directory.
    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.add(path, Entry::Dir)
    }

    fn add(&mut self, path: &str, entry: Entry) -> &mut Self {
        let rel = path.trim_start_matches('/').trim_end_matches('/');
        let mut parent = Path::new(rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            self.entries
                .entry(p.to_string_lossy().into_owned())
                .or_insert(Entry::Dir);
            parent = p.parent();
        }
        self.entries.insert(rel.to_owned(), entry);
        self
    }

    /// Writes the layer as tar into `out`.
    fn write_tar<W: Write>(&self, out: W) -> anyhow::Result<W> {
        let mut tar = tar::Builder::new(out);
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(MTIME);
            match entry {
                Entry::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Entry::File { data, mode } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, path, data.as_slice())?;
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    tar.append_link(&mut header, path, target)?;
                }
            }
        }
        Ok(tar.into_inner()?)
    }
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hash.finalize()), self.size)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// A blob written into a layout.
#[derive(Debug, Clone)]
pub struct Descriptor {
    pub media_type: &'static str,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// A layer blob and the digest of its uncompressed tar (the config's `diff_id`).
#[derive(Debug, Clone)]
pub struct LayerBlob {
    pub descriptor: Descriptor,
    pub diff_id: String,
    pub comment: String,
}

/// An OCI image layout directory being written.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Creates (or empties) `dir` as a layout.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir.join("blobs/sha256"))
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(
            dir.join("oci-layout"),
            json!({"imageLayoutVersion": "1.0.0"}).to_string(),
        )?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn blobs(&self) -> PathBuf {
        self.dir.join("blobs/sha256")
    }

    /// Writes a blob given in full.
    pub fn blob(&self, media_type: &'static str, data: &[u8]) -> anyhow::Result<Descriptor> {
        let digest = sha256_hex(data);
        let path = self.blobs().join(&digest);
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        Ok(Descriptor {
            media_type,
            digest: format!("sha256:{digest}"),
            size: data.len() as u64,
        })
    }

    /// Writes a gzip'd layer from a tar stream produced by `write_tar`.
    fn layer_with(
        &self,
        comment: &str,
        write_tar: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
    ) -> anyhow::Result<LayerBlob> {
        let tmp = self.blobs().join(format!(".layer-{}", std::process::id()));
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let compressed = Hashing::new(std::io::BufWriter::new(file));
        let gz = GzEncoder::new(compressed, Compression::default());
        let mut uncompressed = Hashing::new(gz);
        write_tar(&mut uncompressed)?;
        let (gz, diff_id, _) = uncompressed.finish();
        let compressed = gz.finish().context("finishing gzip")?;
        let (mut file, digest, size) = compressed.finish();
        file.flush()?;
        drop(file);
        std::fs::rename(&tmp, self.blobs().join(&digest))?;
        Ok(LayerBlob {
            descriptor: Descriptor {
                media_type: MEDIA_LAYER,
                digest: format!("sha256:{digest}"),
                size,
            },
            diff_id: format!("sha256:{diff_id}"),
            comment: comment.to_owned(),
        })
    }

    /// Writes `layer` as a blob.
    pub fn layer(&self, comment: &str, layer: &Layer) -> anyhow::Result<LayerBlob> {
        self.layer_with(comment, |out| {
            layer.write_tar(out)?;
            Ok(())
        })
    }

    /// Writes a layer from an existing tar (a root file system), leaving out device nodes
    /// (runtimes provide /dev; creating nodes fails in user namespaces).
    pub fn layer_from_tar(&self, comment: &str, tar_file: &Path) -> anyhow::Result<LayerBlob> {
        let input = std::fs::File::open(tar_file)
            .with_context(|| format!("opening {}", tar_file.display()))?;
        self.layer_with(comment, |out| {
            copy_tar(std::io::BufReader::new(input), out)
                .with_context(|| format!("re-packing {}", tar_file.display()))
        })
    }

    /// Writes the config and manifest of one image and `index.json` naming it `name:tag`
    /// (`name` fully qualified, e.g. `docker.io/kube-ovn-rs/kube-ovn-cni`).
    pub fn finish(
        &self,
        name: &str,
        tag: &str,
        layers: &[LayerBlob],
        config: Value,
    ) -> anyhow::Result<Descriptor> {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let history: Vec<Value> = layers
            .iter()
            .map(|l| json!({"created": "1970-01-01T00:00:00Z", "created_by": l.comment}))
            .collect();
        let config = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        let config = self.blob(MEDIA_CONFIG, config.to_string().as_bytes())?;
        let reference = format!("{name}:{tag}");
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config.json(),
            "layers": layers.iter().map(|l| l.descriptor.json()).collect::<Vec<_>>(),
            "annotations": {"org.opencontainers.image.ref.name": reference},
        });
        let manifest = self.blob(MEDIA_MANIFEST, manifest.to_string().as_bytes())?;
        let mut entry = manifest.json();
        // containerd's importer names the image from io.containerd.image.name; the OCI
        // ref.name annotation carries the tag, as `docker save` writes it.
        entry["annotations"] = json!({
            "io.containerd.image.name": reference,
            "org.opencontainers.image.ref.name": tag,
        });
        let index = json!({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [entry]});
        std::fs::write(self.dir.join("index.json"), index.to_string())?;
        Ok(manifest)
    }

    /// Packs the layout into one tar archive at `archive`.
    pub fn pack(&self, archive: &Path) -> anyhow::Result<()> {
        let tmp = archive.with_extension("tmp");
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        let mut names = vec![PathBuf::from("oci-layout"), PathBuf::from("index.json")];
        let mut blobs: Vec<PathBuf> = std::fs::read_dir(self.blobs())?
            .map(|e| e.map(|e| Path::new("blobs/sha256").join(e.file_name())))
            .collect::<Result<_, _>>()?;
        blobs.sort();
        for dir in ["blobs", "blobs/sha256"] {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_mtime(MTIME);
            header.set_size(0);
            tar.append_data(&mut header, format!("{dir}/"), std::io::empty())?;
        }
        names.extend(blobs);
        for name in names {
            let path = self.dir.join(&name);
            let mut file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_mtime(MTIME);
            header.set_size(file.metadata()?.len());
            tar.append_data(&mut header, &name, &mut file)?;
        }
        let mut out = tar.into_inner()?;
        out.flush()?;
        drop(out);
        std::fs::rename(&tmp, archive)
            .with_context(|| format!("renaming {} to {}", tmp.display(), archive.display()))?;
        Ok(())
    }
}

/// Copies a tar stream entry by entry, leaving out device nodes, fifos and the `./` prefix.
fn copy_tar(input: impl Read, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(input);
    let mut tar = tar::Builder::new(out);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
        ) {
            continue;
        }
        let path = entry.path()?.into_owned();
        let path = path.strip_prefix("./").unwrap_or(&path).to_owned();
        if path.as_os_str().is_empty() {
            continue;
        }
        let mut header = entry.header().clone();
        match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .map(|t| t.into_owned())
                    .with_context(|| format!("link {} without a target", path.display()))?;
                let target = if kind == tar::EntryType::Link {
                    target.strip_prefix("./").unwrap_or(&target).to_owned()
                } else {
                    target
                };
                tar.append_link(&mut header, &path, &target)?;
            }
            tar::EntryType::Regular | tar::EntryType::Directory | tar::EntryType::Continuous => {
                tar.append_data(&mut header, &path, &mut entry)?;
            }
            other => bail!("unexpected tar entry type {other:?} at {}", path.display()),
        }
    }
    tar.finish()?;
    Ok(())
}

/// What [`verify`] found in an archive.
#[derive(Debug)]
pub struct Verified {
    /// `io.containerd.image.name` of the one image.
    pub name: String,
    /// The image config (`config` object of the config blob).
    pub config: Value,
    /// Every path in every layer, in order (without a leading `/`).
    pub paths: Vec<String>,
}

/// Reads an archive back and checks it the way a runtime would: `oci-layout`, `index.json` ->
/// manifest -> config and layers, every blob's sha256 and size equal to its descriptor, every
/// layer's uncompressed sha256 equal to the config's `diff_id`.
pub fn verify(archive: &Path) -> anyhow::Result<Verified> {
    let file =
        std::fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in tar::Archive::new(std::io::BufReader::new(file)).entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        files.insert(name, data);
    }
    let layout: Value = serde_json::from_slice(files.get("oci-layout").context("no oci-layout")?)?;
    if layout["imageLayoutVersion"] != "1.0.0" {
        bail!("oci-layout: {layout}");
    }
    let blob = |desc: &Value, want_type: &str| -> anyhow::Result<Vec<u8>> {
        if desc["mediaType"] != want_type {
            bail!("descriptor {desc} is not a {want_type}");
        }
        let digest = desc["digest"]
            .as_str()
            .context("descriptor without digest")?;
        let hex = digest
            .strip_prefix("sha256:")
            .with_context(|| format!("{digest} is not sha256"))?;
        let data = files
            .get(&format!("blobs/sha256/{hex}"))
            .with_context(|| format!("blob {digest} missing"))?;
        if sha256_hex(data) != hex {
            bail!("blob {digest} has sha256 {}", sha256_hex(data));
        }
        if desc["size"].as_u64() != Some(data.len() as u64) {
            bail!(
                "blob {digest}: size {} in the descriptor, {} in the blob",
                desc["size"],
                data.len()
            );
        }
        Ok(data.clone())
    };
    let index: Value = serde_json::from_slice(files.get("index.json").context("no index.json")?)?;
    if index["schemaVersion"] != 2 {
        bail!("index.json: schemaVersion {}", index["schemaVersion"]);
    }
    let manifests = index["manifests"]
        .as_array()
        .context("index without manifests")?;
    let [entry] = manifests.as_slice() else {
        bail!("index.json lists {} images, expected 1", manifests.len());
    };
    let name = entry["annotations"]["io.containerd.image.name"]
        .as_str()
        .context("index entry without io.containerd.image.name")?
        .to_owned();
    let manifest: Value = serde_json::from_slice(&blob(entry, MEDIA_MANIFEST)?)?;
    let config: Value = serde_json::from_slice(&blob(&manifest["config"], MEDIA_CONFIG)?)?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .context("config without rootfs.diff_ids")?;
    let layers = manifest["layers"]
        .as_array()
        .context("manifest without layers")?;
    if layers.len() != diff_ids.len() {
        bail!("{} layers but {} diff_ids", layers.len(), diff_ids.len());
    }
    let mut paths = Vec::new();
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let gz = blob(layer, MEDIA_LAYER)?;
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut tar)
            .context("layer is not gzip")?;
        let got = format!("sha256:{}", sha256_hex(&tar));
        if diff_id.as_str() != Some(got.as_str()) {
            bail!(
                "layer {}: diff_id {diff_id} but content {got}",
                layer["digest"]
            );
        }
        for e in tar::Archive::new(tar.as_slice()).entries()? {
            paths.push(
                e?.path()?
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_owned(),
            );
        }
    }
    Ok(Verified {
        name,
        config: config["config"].clone(),
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-oci-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn image(dir: &Path) -> PathBuf {
        let layout = Layout::create(&dir.join("layout")).unwrap();
        let mut base = Layer::default();
        base.file("/bin/busybox", b"\x7fELF fake".to_vec(), 0o755)
            .symlink("/bin/sh", "busybox")
            .dir("/tmp");
        let mut app = Layer::default();
        app.file("/kube-ovn/app", b"app".to_vec(), 0o755);
        let layers = [
            layout.layer("base", &base).unwrap(),
            layout.layer("app", &app).unwrap(),
        ];
        layout
            .finish(
                "docker.io/kube-ovn-rs/test",
                "v1",
                &layers,
                json!({"Cmd": ["/kube-ovn/app"]}),
            )
            .unwrap();
        let archive = dir.join("test.oci.tar");
        layout.pack(&archive).unwrap();
        archive
    }

    #[test]
    fn a_written_archive_reads_back_with_matching_digests() {
        let dir = temp("roundtrip");
        let v = verify(&image(&dir)).unwrap();
        assert_eq!(v.name, "docker.io/kube-ovn-rs/test:v1");
        assert_eq!(v.config["Cmd"][0], "/kube-ovn/app");
        assert_eq!(
            v.paths,
            [
                "bin",
                "bin/busybox",
                "bin/sh",
                "tmp",
                "kube-ovn",
                "kube-ovn/app"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn layers_are_reproducible() {
        let (a, b) = (temp("repro-a"), temp("repro-b"));
        let (x, y) = (image(&a), image(&b));
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }

    #[test]
    fn a_corrupted_blob_is_refused() {
        let dir = temp("corrupt");
        image(&dir);
        let layout = dir.join("layout");
        // Flip a byte of the largest blob (a layer) and repack: the digest check must fail.
        let blobs = layout.join("blobs/sha256");
        let mut biggest = std::fs::read_dir(&blobs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect::<Vec<_>>();
        biggest.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
        let victim = biggest.last().unwrap();
        let mut data = std::fs::read(victim).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        std::fs::write(victim, data).unwrap();
        let archive = dir.join("corrupt.oci.tar");
        Layout { dir: layout }.pack(&archive).unwrap();
        let err = verify(&archive).unwrap_err().to_string();
        assert!(err.contains("has sha256"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// containerd started by hand in a temp dir (no systemd, no CRI), stopped on drop.
    struct Containerd {
        dir: PathBuf,
        child: std::process::Child,
    }

    impl Containerd {
        fn start(dir: &Path) -> Self {
            std::fs::create_dir_all(dir).unwrap();
            let config = dir.join("config.toml");
            std::fs::write(
                &config,
                format!(
                    "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
                     disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                     [grpc]\n  address = \"{0}/containerd.sock\"\n",
                    dir.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
            let child = std::process::Command::new("containerd")
                .arg("--config")
                .arg(&config)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start containerd ({e}): run `cargo xtask setup` (apt containerd)"
                    )
                });
            let this = Self {
                dir: dir.to_owned(),
                child,
            };
            // The socket appears once containerd serves; bounded wait, no event to watch.
            let sock = dir.join("containerd.sock");
            for _ in 0..200 {
                if sock.exists() && this.ctr(&["version"]).status.success() {
                    return this;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            panic!(
                "containerd did not serve: {}",
                std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            );
        }

        fn ctr(&self, args: &[&str]) -> std::process::Output {
            std::process::Command::new("ctr")
                .arg("--address")
                .arg(self.dir.join("containerd.sock"))
                .args(["--namespace", "k8s.io"])
                .args(args)
                .output()
                .unwrap()
        }
    }

    impl Drop for Containerd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            // Snapshots are overlay mounts only while a container runs; none is left running.
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn containerd_imports_our_archive_and_runs_a_program_from_it() {
        let dir = temp("containerd");
        let layout = Layout::create(&dir.join("layout")).unwrap();
        let mut base = Layer::default();
        let busybox = crate::images::static_busybox()
            .unwrap_or_else(|e| panic!("{e:#} (cargo xtask setup fetches it)"));
        base.copy("/bin/busybox", &busybox, 0o755)
            .unwrap()
            .symlink("/bin/sh", "busybox");
        let mut app = Layer::default();
        app.file(
            "/kube-ovn/hello",
            b"#!/bin/sh\necho hello from $1\n".to_vec(),
            0o755,
        );
        let layers = [
            layout.layer("busybox", &base).unwrap(),
            layout.layer("hello", &app).unwrap(),
        ];
        layout
            .finish(
                "docker.io/kube-ovn-rs/oci-test",
                "v1",
                &layers,
                json!({"Entrypoint": ["/kube-ovn/hello"], "Env": ["PATH=/bin"]}),
            )
            .unwrap();
        let archive = dir.join("oci-test.oci.tar");
        layout.pack(&archive).unwrap();

        let containerd = Containerd::start(&dir.join("containerd"));
        let out = containerd.ctr(&["images", "import", archive.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = containerd.ctr(&["images", "ls", "-q"]);
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            listed
                .lines()
                .any(|l| l == "docker.io/kube-ovn-rs/oci-test:v1"),
            "images ls: {listed}"
        );
        let id = format!("oci-test-{}", std::process::id());
        // FIFOs and runc's state in the temp dir too, not under /run/containerd.
        let (fifo, runc) = (dir.join("fifo"), dir.join("runc"));
        let out = containerd.ctr(&[
            "run",
            "--rm",
            "--fifo-dir",
            fifo.to_str().unwrap(),
            "--runc-root",
            runc.to_str().unwrap(),
            "docker.io/kube-ovn-rs/oci-test:v1",
            &id,
            "/kube-ovn/hello",
            "containerd",
        ]);
        assert!(
            out.status.success(),
            "run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "hello from containerd"
        );
        drop(containerd);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn device_nodes_are_left_out_of_a_rootfs_layer() {
        let mut input = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        input
            .append_data(&mut h, "./dev/", std::io::empty())
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Char);
        h.set_size(0);
        h.set_mode(0o666);
        input
            .append_data(&mut h, "./dev/null", std::io::empty())
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(2);
        h.set_mode(0o644);
        input
            .append_data(&mut h, "./etc/hostname", &b"x\n"[..])
            .unwrap();
        let input = input.into_inner().unwrap();
        let mut out = Vec::new();
        copy_tar(input.as_slice(), &mut out).unwrap();
        let paths: Vec<String> = tar::Archive::new(out.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(paths, ["dev/", "etc/hostname"]);
    }
}
