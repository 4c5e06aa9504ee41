//! OCI image layouts, written without a Docker engine: gzip'd tar layers, the image config,
//! the manifest, `index.json` and `oci-layout`, every blob named by its sha256, the whole layout
//! packed as one tar archive that `ctr images import`, `kind load image-archive`, `skopeo` and
//! `podman load` read (image-spec v1.1, `image-layout.md`).
//!
//! The documents are `oci-spec`'s image types (youki's), so field names, media types and digest
//! syntax come from the spec's types rather than from hand-written JSON; [`verify`] reads them
//! back through the same types.
//!
//! Layers are reproducible: entries sorted, owner root, a fixed mtime, so the same inputs give
//! the same digests; documents are written with sorted keys for the same reason.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, Config, Descriptor, Digest, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder,
    MediaType, OciLayout, OciLayoutBuilder, Os, RootFsBuilder, SCHEMA_VERSION, Sha256Digest,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The index annotation containerd's importer names the image from (`ctr images import`);
/// the OCI ref.name annotation beside it carries the tag, as `docker save` writes it.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// `imageLayoutVersion` of the `oci-layout` file (image-spec v1.x).
const LAYOUT_VERSION: &str = "1.0.0";

/// The creation time of the image and of every layer's history entry (reproducible digests).
const CREATED: &str = "1970-01-01T00:00:00Z";

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

/// The `sha256:<hex>` digest of a lowercase hex sha256.
fn sha256_digest(hex: &str) -> anyhow::Result<Digest> {
    Ok(Sha256Digest::from_str(hex)
        .with_context(|| format!("{hex} is not a sha256"))?
        .into())
}

/// Owned strings for the list fields of a [`Config`] (entrypoint, cmd, env).
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|&s| s.to_owned()).collect()
}

/// The descriptor of a blob given in full.
fn descriptor_of(media_type: MediaType, data: &[u8]) -> anyhow::Result<Descriptor> {
    Ok(Descriptor::new(
        media_type,
        data.len() as u64,
        sha256_digest(&sha256_hex(data))?,
    ))
}

/// A document as written into a layout: compact JSON with every object's keys sorted.
/// oci-spec keeps annotations and labels in `HashMap`s, whose order changes from run to run;
/// sorting keeps the digests of the same image equal (and equal to what the hand-written
/// `serde_json::json!` documents gave before these types).
fn document_bytes(document: &impl Serialize) -> anyhow::Result<Vec<u8>> {
    let mut value = serde_json::to_value(document)?;
    value.sort_all_objects();
    Ok(serde_json::to_vec(&value)?)
}

/// A layer blob and the digest of its uncompressed tar (the config's `diff_id`).
#[derive(Debug, Clone)]
pub struct LayerBlob {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    pub comment: String,
}

/// The three documents of one image, as the bytes that go into the layout.
#[derive(Debug)]
pub struct ImageDocuments {
    /// The image configuration blob.
    pub config: Vec<u8>,
    /// The manifest blob.
    pub manifest: Vec<u8>,
    /// Its descriptor (what `index.json` lists, without the index annotations).
    pub manifest_descriptor: Descriptor,
    /// `index.json`.
    pub index: Vec<u8>,
}

/// Builds the config, manifest and index of one image named `name:tag` from its layers and
/// run-time config. Pure: the layers are already written, only their descriptors are used.
pub fn image_documents(
    name: &str,
    tag: &str,
    layers: &[LayerBlob],
    config: Config,
) -> anyhow::Result<ImageDocuments> {
    let history = layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(CREATED)
                .created_by(l.comment.as_str())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|l| l.diff_id.to_string())
                .collect::<Vec<_>>(),
        )
        .build()?;
    let image_config = ImageConfigurationBuilder::default()
        .created(CREATED)
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(config)
        .rootfs(rootfs)
        .history(history)
        .build()?;
    let config = document_bytes(&image_config)?;
    let reference = format!("{name}:{tag}");
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(descriptor_of(MediaType::ImageConfig, &config)?)
        .layers(
            layers
                .iter()
                .map(|l| l.descriptor.clone())
                .collect::<Vec<_>>(),
        )
        .annotations(HashMap::from([(
            ANNOTATION_REF_NAME.to_owned(),
            reference.clone(),
        )]))
        .build()?;
    let manifest = document_bytes(&manifest)?;
    let manifest_descriptor = descriptor_of(MediaType::ImageManifest, &manifest)?;
    let mut entry = manifest_descriptor.clone();
    entry.set_annotations(Some(HashMap::from([
        (ANNOTATION_CONTAINERD_NAME.to_owned(), reference),
        (ANNOTATION_REF_NAME.to_owned(), tag.to_owned()),
    ])));
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![entry])
        .build()?;
    Ok(ImageDocuments {
        config,
        manifest,
        manifest_descriptor,
        index: document_bytes(&index)?,
    })
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
        let layout = OciLayoutBuilder::default()
            .image_layout_version(LAYOUT_VERSION)
            .build()?;
        std::fs::write(dir.join("oci-layout"), document_bytes(&layout)?)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn blobs(&self) -> PathBuf {
        self.dir.join("blobs/sha256")
    }

    /// Writes a blob given in full.
    pub fn blob(&self, media_type: MediaType, data: &[u8]) -> anyhow::Result<Descriptor> {
        let descriptor = descriptor_of(media_type, data)?;
        let path = self.blobs().join(descriptor.digest().digest());
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        Ok(descriptor)
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
            descriptor: Descriptor::new(MediaType::ImageLayerGzip, size, sha256_digest(&digest)?),
            diff_id: sha256_digest(&diff_id)?,
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
    /// (`name` fully qualified, e.g. `docker.io/kube-ovn-rs/kube-ovn-cni`); returns the
    /// manifest's descriptor.
    pub fn finish(
        &self,
        name: &str,
        tag: &str,
        layers: &[LayerBlob],
        config: Config,
    ) -> anyhow::Result<Descriptor> {
        let documents = image_documents(name, tag, layers, config)?;
        self.blob(MediaType::ImageConfig, &documents.config)?;
        self.blob(MediaType::ImageManifest, &documents.manifest)?;
        std::fs::write(self.dir.join("index.json"), &documents.index)?;
        Ok(documents.manifest_descriptor)
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
    /// The image's run-time config (`config` of the config blob).
    pub config: Config,
    /// Every path in every layer, in order (without a leading `/`).
    pub paths: Vec<String>,
}

/// Reads an archive back and checks it the way a runtime would: `oci-layout`, `index.json` ->
/// manifest -> config and layers, each parsed as its oci-spec type, every blob's media type,
/// sha256 and size equal to its descriptor, every layer's uncompressed sha256 equal to the
/// config's `diff_id`.
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
    let file = |name: &str| -> anyhow::Result<&[u8]> {
        files
            .get(name)
            .map(Vec::as_slice)
            .with_context(|| format!("no {name}"))
    };
    let layout = OciLayout::from_reader(file("oci-layout")?).context("oci-layout")?;
    if layout.image_layout_version() != LAYOUT_VERSION {
        bail!(
            "oci-layout: imageLayoutVersion {}",
            layout.image_layout_version()
        );
    }
    let blob = |desc: &Descriptor, want: MediaType| -> anyhow::Result<&[u8]> {
        let digest = desc.digest();
        if *desc.media_type() != want {
            bail!(
                "descriptor {digest} is a {}, not a {want}",
                desc.media_type()
            );
        }
        let hex = desc
            .as_digest_sha256()
            .with_context(|| format!("{digest} is not sha256"))?;
        let data = file(&format!("blobs/sha256/{hex}"))
            .with_context(|| format!("blob {digest} missing"))?;
        if sha256_hex(data) != hex {
            bail!("blob {digest} has sha256 {}", sha256_hex(data));
        }
        if desc.size() != data.len() as u64 {
            bail!(
                "blob {digest}: size {} in the descriptor, {} in the blob",
                desc.size(),
                data.len()
            );
        }
        Ok(data)
    };
    let index = ImageIndex::from_reader(file("index.json")?).context("index.json")?;
    if index.schema_version() != SCHEMA_VERSION {
        bail!("index.json: schemaVersion {}", index.schema_version());
    }
    let [entry] = index.manifests().as_slice() else {
        bail!(
            "index.json lists {} images, expected 1",
            index.manifests().len()
        );
    };
    let name = entry
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_CONTAINERD_NAME))
        .with_context(|| format!("index entry without {ANNOTATION_CONTAINERD_NAME}"))?
        .clone();
    let manifest = ImageManifest::from_reader(blob(entry, MediaType::ImageManifest)?)
        .context("the manifest")?;
    let config = ImageConfiguration::from_reader(blob(manifest.config(), MediaType::ImageConfig)?)
        .context("the image config")?;
    let diff_ids = config.rootfs().diff_ids();
    let layers = manifest.layers();
    if layers.len() != diff_ids.len() {
        bail!("{} layers but {} diff_ids", layers.len(), diff_ids.len());
    }
    let mut paths = Vec::new();
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let gz = blob(layer, MediaType::ImageLayerGzip)?;
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut tar)
            .context("layer is not gzip")?;
        let got = format!("sha256:{}", sha256_hex(&tar));
        if *diff_id != got {
            bail!(
                "layer {}: diff_id {diff_id} but content {got}",
                layer.digest()
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
        config: config.config().clone().unwrap_or_default(),
        paths,
    })
}

#[cfg(test)]
mod tests {
    use oci_spec::image::ConfigBuilder;

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
                ConfigBuilder::default()
                    .cmd(strings(&["/kube-ovn/app"]))
                    .build()
                    .unwrap(),
            )
            .unwrap();
        let archive = dir.join("test.oci.tar");
        layout.pack(&archive).unwrap();
        archive
    }

    fn controller_config() -> Config {
        ConfigBuilder::default()
            .entrypoint(strings(&["/kube-ovn/kube-ovn-controller"]))
            .user("65534:65534")
            .env(strings(&["PATH=/kube-ovn"]))
            .build()
            .unwrap()
    }

    /// Two layers as `Layout::layer` described them for a fixture image (real digests).
    fn fixture_layers() -> [LayerBlob; 2] {
        let layer = |digest: &str, size, diff_id: &str, comment: &str| LayerBlob {
            descriptor: Descriptor::new(
                MediaType::ImageLayerGzip,
                size,
                sha256_digest(digest).unwrap(),
            ),
            diff_id: sha256_digest(diff_id).unwrap(),
            comment: comment.to_owned(),
        };
        [
            layer(
                "7643ea6eca21f186eb63bb8c79066d13cbce8005c46198eeb8ac155cac46205f",
                130,
                "86ca54fce52d95dbf95ae637ed38f5aba5c334cabc27306d25bf3da79bcbc217",
                "base",
            ),
            layer(
                "5d357f60c873b8ad1a36a172e211c6e5750074988c269e9e8be47c04f304313f",
                107,
                "3b2078c9eb95fb8f3c624ddf680769e59a8ed1ec23ac24e8a0f0d417b12bd707",
                "app layer",
            ),
        ]
    }

    /// The documents are byte for byte those the hand-written `json!` documents gave before
    /// the oci-spec types (captured from that code for the same inputs), so every archive
    /// keeps its digests and what containerd imported before it imports now.
    #[test]
    fn documents_are_those_the_hand_written_json_gave() {
        let docs = image_documents(
            "docker.io/kube-ovn-rs/test",
            "v1",
            &fixture_layers(),
            controller_config(),
        )
        .unwrap();
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        assert_eq!(
            text(&docs.config),
            concat!(
                r#"{"architecture":"amd64","config":{"Entrypoint":["/kube-ovn/kube-ovn-controller"],"#,
                r#""Env":["PATH=/kube-ovn"],"User":"65534:65534"},"created":"1970-01-01T00:00:00Z","#,
                r#""history":[{"created":"1970-01-01T00:00:00Z","created_by":"base"},"#,
                r#"{"created":"1970-01-01T00:00:00Z","created_by":"app layer"}],"os":"linux","#,
                r#""rootfs":{"diff_ids":["#,
                r#""sha256:86ca54fce52d95dbf95ae637ed38f5aba5c334cabc27306d25bf3da79bcbc217","#,
                r#""sha256:3b2078c9eb95fb8f3c624ddf680769e59a8ed1ec23ac24e8a0f0d417b12bd707"],"#,
                r#""type":"layers"}}"#,
            )
        );
        assert_eq!(
            text(&docs.manifest),
            concat!(
                r#"{"annotations":{"org.opencontainers.image.ref.name":"docker.io/kube-ovn-rs/test:v1"},"#,
                r#""config":{"digest":"sha256:83a99bb2f64473e14bc55a1f64137b2e21a320d6fb32717df02647d0af22c90f","#,
                r#""mediaType":"application/vnd.oci.image.config.v1+json","size":489},"#,
                r#""layers":[{"digest":"sha256:7643ea6eca21f186eb63bb8c79066d13cbce8005c46198eeb8ac155cac46205f","#,
                r#""mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":130},"#,
                r#"{"digest":"sha256:5d357f60c873b8ad1a36a172e211c6e5750074988c269e9e8be47c04f304313f","#,
                r#""mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":107}],"#,
                r#""mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"#,
            )
        );
        assert_eq!(
            text(&docs.index),
            concat!(
                r#"{"manifests":[{"annotations":{"io.containerd.image.name":"docker.io/kube-ovn-rs/test:v1","#,
                r#""org.opencontainers.image.ref.name":"v1"},"#,
                r#""digest":"sha256:5d46a5620ecd25ef38c4448c43273b6c33ae0c5e205b73ebd5e8bc2b83fa7b9f","#,
                r#""mediaType":"application/vnd.oci.image.manifest.v1+json","size":639}],"#,
                r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#,
            )
        );
    }

    /// Read back through the oci-spec types: each descriptor names its document by media type,
    /// sha256 and size, and the config carries what the image runs.
    #[test]
    fn descriptors_name_their_documents() {
        let layers = fixture_layers();
        let docs = image_documents(
            "docker.io/kube-ovn-rs/kube-ovn-controller",
            "v0.1.0",
            &layers,
            controller_config(),
        )
        .unwrap();
        let named = |d: &Descriptor, media: MediaType, bytes: &[u8]| {
            assert_eq!(*d.media_type(), media);
            assert_eq!(d.as_digest_sha256(), Some(sha256_hex(bytes).as_str()));
            assert_eq!(d.size(), bytes.len() as u64);
        };
        let index = ImageIndex::from_reader(docs.index.as_slice()).unwrap();
        assert_eq!(index.schema_version(), 2);
        assert_eq!(index.media_type(), &Some(MediaType::ImageIndex));
        let [entry] = index.manifests().as_slice() else {
            panic!("one manifest expected: {index:?}");
        };
        named(entry, MediaType::ImageManifest, &docs.manifest);
        let annotations = entry.annotations().clone().unwrap();
        assert_eq!(
            annotations[ANNOTATION_CONTAINERD_NAME],
            "docker.io/kube-ovn-rs/kube-ovn-controller:v0.1.0"
        );
        assert_eq!(annotations[ANNOTATION_REF_NAME], "v0.1.0");
        assert_eq!(docs.manifest_descriptor.annotations(), &None);

        let manifest = ImageManifest::from_reader(docs.manifest.as_slice()).unwrap();
        assert_eq!(manifest.media_type(), &Some(MediaType::ImageManifest));
        named(manifest.config(), MediaType::ImageConfig, &docs.config);
        assert_eq!(
            manifest.layers(),
            &layers
                .iter()
                .map(|l| l.descriptor.clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            manifest.annotations().clone().unwrap()[ANNOTATION_REF_NAME],
            "docker.io/kube-ovn-rs/kube-ovn-controller:v0.1.0"
        );

        let config = ImageConfiguration::from_reader(docs.config.as_slice()).unwrap();
        assert_eq!(config.architecture(), &Arch::Amd64);
        assert_eq!(config.os(), &Os::Linux);
        assert_eq!(config.created().as_deref(), Some(CREATED));
        assert_eq!(config.config(), &Some(controller_config()));
        let run = config.config().clone().unwrap();
        assert_eq!(
            run.entrypoint().as_deref(),
            Some(&strings(&["/kube-ovn/kube-ovn-controller"])[..])
        );
        assert_eq!(run.user().as_deref(), Some("65534:65534"));
        assert_eq!(
            run.env().as_deref(),
            Some(&strings(&["PATH=/kube-ovn"])[..])
        );
        assert_eq!(run.labels(), &None);
        assert_eq!(config.rootfs().typ(), "layers");
        assert_eq!(
            config.rootfs().diff_ids(),
            &layers
                .iter()
                .map(|l| l.diff_id.to_string())
                .collect::<Vec<_>>()
        );
        let history = config.history().clone().unwrap();
        assert_eq!(
            history
                .iter()
                .map(|h| h.created_by().clone().unwrap())
                .collect::<Vec<_>>(),
            ["base", "app layer"]
        );
    }

    #[test]
    fn documents_do_not_depend_on_hash_map_order() {
        // Two annotations in a HashMap: the index bytes must not change from one build to the
        // next (std's HashMap seeds its order per map).
        let build = || {
            image_documents("r/x", "t", &fixture_layers(), controller_config())
                .unwrap()
                .index
        };
        let first = build();
        for _ in 0..32 {
            assert_eq!(build(), first);
        }
    }

    #[test]
    fn a_written_archive_reads_back_with_matching_digests() {
        let dir = temp("roundtrip");
        let v = verify(&image(&dir)).unwrap();
        assert_eq!(v.name, "docker.io/kube-ovn-rs/test:v1");
        assert_eq!(
            v.config.cmd().as_deref(),
            Some(&strings(&["/kube-ovn/app"])[..])
        );
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
                ConfigBuilder::default()
                    .entrypoint(strings(&["/kube-ovn/hello"]))
                    .env(strings(&["PATH=/bin"]))
                    .build()
                    .unwrap(),
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
