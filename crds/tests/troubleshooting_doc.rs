//! `docs/TROUBLESHOOTING.md` lists every reason the code emits: a reason added to the code and
//! not to the guide fails here, naming it.
//!
//! What is collected, by plain text scanning (a small lexer that knows comments, string, raw
//! string and char literals; no Rust parser):
//!
//! - **controller/src and daemon/src** (the NAT gateway agent included): every string literal
//!   outside comments and `#[cfg(test)]` modules whose whole content is one identifier that
//!   starts with an upper-case letter and has a lower-case one (`"AttachmentFailed"`,
//!   `"IPAMRefused"`, `"Applied"`). That is every shape a reason takes in this code, however the
//!   call is laid out: `ctx.event(.., "X", ..)`, `fail(.., tenancy::X, ..)` through
//!   `pub const X: &str = "X"`, `report(.., "X", ..)`, `refuse(..)`, `refusal("X", ..)`,
//!   `status::condition(.., "X", ..)`, `Verdict { reason: "X", .. }`, `Verdict::refused("X", ..)`,
//!   `Problem::new("X", ..)`, `("X", msg)` tuples. Such literals that are not reasons (kinds,
//!   OVSDB tables, `Debug` names...) are listed in [`NOT_REASONS`] with why; a reason left out
//!   of the guide on purpose is in [`UNDOCUMENTED_REASONS`].
//! - **crds/src**: `pub const NAME: &str = "Value";` with such a value, whose `///` doc says it
//!   is a reason or a condition type (the NAT refusals of `crds::iptables::problems`, which the
//!   controller reports; `Ready`, `Validated`, `Error`).
//!
//! Each must appear in the guide as `` `Reason` ``. The CNI error codes (`pub const NAME: u32 =
//! N;` in `cni/src/error.rs` and `daemon/src/error.rs`) must each have a table row `| N |`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Identifier-like literals in controller/src and daemon/src that are not reasons.
const NOT_REASONS: &[(&str, &str)] = &[
    ("Pod", "a Kubernetes kind (watch names, owner kinds)"),
    ("Subnet", "a Kubernetes kind"),
    ("Vpc", "a Kubernetes kind"),
    ("SecurityGroup", "a Kubernetes kind"),
    ("NetworkAttachmentDefinition", "a Kubernetes kind"),
    (
        "StatefulSet",
        "a Kubernetes kind (owner references, IP.spec.podType)",
    ),
    ("VpcNatGateway", "a Kubernetes kind"),
    ("IptablesEIP", "a Kubernetes kind"),
    ("IptablesFIPRule", "a Kubernetes kind"),
    ("IptablesSnatRule", "a Kubernetes kind"),
    ("IptablesDnatRule", "a Kubernetes kind"),
    ("QoSPolicy", "a Kubernetes kind"),
    ("IPPool", "a Kubernetes kind (the uninstall hook's list)"),
    ("Succeeded", "a pod phase the controller reads"),
    ("Failed", "a pod phase the controller reads"),
    ("True", "a condition status the controller reads"),
    (
        "False",
        "a condition status the CRD hook reads (a CRD that is not established)",
    ),
    (
        "RuntimeDefault",
        "a seccomp profile type (the NAT gateway pod's securityContext)",
    ),
    ("NotFound", "part of an API error the NAT agent matches"),
    ("QoS", "an OVN Northbound table"),
    ("Bridge", "an Open vSwitch table"),
    ("Port", "an Open vSwitch table"),
    ("Interface", "an Open vSwitch table"),
    ("IPv4", "an address family in messages and metrics labels"),
    ("IPv6", "an address family in messages and metrics labels"),
    ("Agent", "a Debug impl's struct name"),
    ("Context", "a Debug impl's struct name"),
    ("KubePods", "a Debug impl's struct name"),
    ("NatCaches", "a Debug impl's struct name"),
    ("Stores", "a Debug impl's struct name"),
    ("Gatherer", "a Debug impl's struct name (kubectl-ko)"),
    ("Running", "a pod phase kubectl-ko reads"),
];

/// Reasons the code sets that no operator ever sees, so the guide leaves them out.
const UNDOCUMENTED_REASONS: &[(&str, &str)] = &[(
    "Planned",
    "the NAT plan's verdict for an object it can apply; the agent writes `Applied` or \
     `ApplyFailed` in its place, never `Planned`",
)];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A source file as code (comments removed, string literals emptied to `""`, char literals
/// blanked to `' '`) and its string literals, each with its offset (in chars) in the code.
struct Lexed {
    code: Vec<char>,
    literals: Vec<(usize, String)>,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// At `i`, the start of a raw string literal (`r"`, `r#"`, `br"`...): its number of `#` and
/// the offset of its content.
fn raw_string(s: &[char], i: usize) -> Option<(usize, usize)> {
    let at = |k: usize| s.get(k).copied().unwrap_or('\0');
    if i > 0 && is_ident(s[i - 1]) {
        return None;
    }
    let mut j = match (at(i), at(i + 1)) {
        ('r', _) => i + 1,
        ('b', 'r') => i + 2,
        _ => return None,
    };
    let mut hashes = 0;
    while at(j) == '#' {
        hashes += 1;
        j += 1;
    }
    (at(j) == '"').then_some((hashes, j + 1))
}

fn lex(src: &str) -> Lexed {
    let s: Vec<char> = src.chars().collect();
    let n = s.len();
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let (mut code, mut literals) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < n {
        let c = s[i];
        if c == '/' && at(i + 1) == '/' {
            while i < n && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < n {
                if s[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some((hashes, start)) = raw_string(&s, i) {
            // r"..", r#".."#, br"..".
            let mut end = start;
            while end < n && !(s[end] == '"' && (1..=hashes).all(|h| at(end + h) == '#')) {
                end += 1;
            }
            literals.push((code.len(), s[start..end.min(n)].iter().collect()));
            code.extend(['"', '"']);
            i = end + 1 + hashes;
        } else if c == '"' {
            let mut j = i + 1;
            let mut content = String::new();
            while j < n && s[j] != '"' {
                if s[j] == '\\' {
                    content.push(s[j]);
                    j += 1;
                }
                content.push(at(j));
                j += 1;
            }
            literals.push((code.len(), content));
            code.extend(['"', '"']);
            i = j + 1;
        } else if c == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            // A char literal ('x', '\n', '\''); a lifetime ('a) falls through as code.
            let mut j = if at(i + 1) == '\\' { i + 3 } else { i + 2 };
            while j < n && s[j] != '\'' {
                j += 1;
            }
            code.extend(['\'', ' ', '\'']);
            i = j + 1;
        } else {
            code.push(c);
            i += 1;
        }
    }
    Lexed { code, literals }
}

/// The literals of `src` (the file `path`) outside `#[cfg(test)] mod x { .. }`, and the files of
/// `#[cfg(test)] mod x;` (test-only modules, skipped by the caller).
fn live_literals(path: &Path, src: &str) -> (Vec<String>, Vec<PathBuf>) {
    let Lexed { code, literals } = lex(src);
    let text: String = code.iter().collect();
    // Offsets in `text` are char offsets in `code`: map byte offsets of the matches back.
    let char_at = |byte: usize| text[..byte].chars().count();
    let mut skipped = Vec::new();
    let mut test_files = Vec::new();
    for (byte, _) in text.match_indices("#[cfg(test)]") {
        let rest = text[byte + "#[cfg(test)]".len()..].trim_start();
        let rest = rest.strip_prefix("pub(crate) ").unwrap_or(rest);
        let Some(decl) = rest.strip_prefix("mod ") else {
            continue;
        };
        let name: String = decl.chars().take_while(|c| is_ident(*c)).collect();
        let after = decl[name.len()..].trim_start();
        if after.starts_with(';') {
            let dir = path.parent().unwrap();
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let dir = match stem {
                "mod" | "lib" | "main" => dir.to_path_buf(),
                _ => dir.join(stem),
            };
            test_files.push(dir.join(format!("{name}.rs")));
        } else if after.starts_with('{') {
            let open = char_at(text.len() - after.len());
            let mut depth = 0;
            let mut close = code.len();
            for (k, ch) in code.iter().enumerate().skip(open) {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            close = k;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            skipped.push(char_at(byte)..=close);
        }
    }
    let live = literals
        .into_iter()
        .filter(|(at, _)| !skipped.iter().any(|r| r.contains(at)))
        .map(|(_, s)| s)
        .collect();
    (live, test_files)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `"AttachmentFailed"`, `"IPAMRefused"`, `"Applied"`: one identifier, upper-case first, with
/// a lower-case letter (not `"TCP"`, not `"Open_vSwitch"`, not a sentence).
fn looks_like_reason(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
        && s.chars().any(|c| c.is_ascii_lowercase())
}

/// Reason-like literals of controller/src and daemon/src, each with the files it is in.
fn code_literals() -> BTreeMap<String, BTreeSet<String>> {
    let root = root();
    let mut files = Vec::new();
    for dir in ["controller/src", "daemon/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut test_only = BTreeSet::new();
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut per_file = Vec::new();
    for f in &files {
        let (literals, tests) = live_literals(f, &std::fs::read_to_string(f).unwrap());
        test_only.extend(tests);
        per_file.push((f, literals));
    }
    for (f, literals) in per_file {
        if test_only.contains(f) {
            continue;
        }
        let shown = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        for s in literals.into_iter().filter(|s| looks_like_reason(s)) {
            found.entry(s).or_default().insert(shown.clone());
        }
    }
    found
}

/// crds/src: `pub const NAME: &str = "Value";` documented as a reason or a condition type.
fn crds_reason_constants() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("crds/src"), &mut files);
    let mut out = BTreeSet::new();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = src.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(value) = line
                .strip_prefix("pub const ")
                .filter(|l| l.contains(": &str = \""))
                .and_then(|l| l.split_once(": &str = \""))
                .and_then(|(_, v)| v.strip_suffix("\";"))
            else {
                continue;
            };
            let doc = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.starts_with("///"))
                .map(|l| l.to_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            if looks_like_reason(value)
                && (doc.contains("reason") || doc.contains("condition type"))
            {
                out.insert(value.to_owned());
            }
        }
    }
    out
}

/// `pub const NAME: u32 = N;` in the CNI error modules.
fn cni_codes() -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for f in ["cni/src/error.rs", "daemon/src/error.rs"] {
        let src = std::fs::read_to_string(root().join(f)).unwrap();
        for line in src.lines().map(str::trim) {
            if let Some((name, value)) = line
                .strip_prefix("pub const ")
                .and_then(|l| l.split_once(": u32 = "))
            {
                let n = value.trim_end_matches(';').parse().unwrap();
                out.insert(n, format!("{f}: {name}"));
            }
        }
    }
    out
}

fn guide() -> String {
    std::fs::read_to_string(root().join("docs/TROUBLESHOOTING.md")).unwrap()
}

/// The reasons `doc` does not show as `` `Reason` ``.
fn missing<'a>(reasons: impl IntoIterator<Item = &'a String>, doc: &str) -> Vec<String> {
    reasons
        .into_iter()
        .filter(|r| !doc.contains(&format!("`{r}`")))
        .cloned()
        .collect()
}

/// Every reason the guide must list: the code's reason-like literals less the exclusions,
/// and the crds constants.
fn reasons() -> BTreeMap<String, String> {
    let excluded: BTreeSet<&str> = NOT_REASONS
        .iter()
        .chain(UNDOCUMENTED_REASONS)
        .map(|(s, _)| *s)
        .collect();
    let mut out: BTreeMap<String, String> = code_literals()
        .into_iter()
        .filter(|(s, _)| !excluded.contains(s.as_str()))
        .map(|(s, files)| (s, files.into_iter().collect::<Vec<_>>().join(", ")))
        .collect();
    for c in crds_reason_constants() {
        out.entry(c).or_insert_with(|| "crds/src".to_owned());
    }
    out
}

#[test]
fn every_emitted_reason_is_in_the_guide() {
    let reasons = reasons();
    let doc = guide();
    let absent = missing(reasons.keys(), &doc);
    let report: Vec<String> = absent
        .iter()
        .map(|r| format!("  `{r}` (in {})", reasons[r]))
        .collect();
    assert!(
        absent.is_empty(),
        "docs/TROUBLESHOOTING.md does not list these reasons; add each to the reference (as \
         `Reason`, with its object, Warning/Normal or condition, meaning and what to do), or, if \
         a literal is not a reason, add it to NOT_REASONS in {} with why:\n{}",
        file!(),
        report.join("\n")
    );
}

#[test]
fn the_scan_finds_reasons_of_every_shape_and_no_exclusion_is_stale() {
    let found = code_literals();
    let reasons = reasons();
    // One of each shape: a tenancy constant, a subnet refusal, a struct field, a tuple, a
    // multi-line call, the agent's verdicts and outcomes, a crds constant, a condition type.
    for r in [
        "AttachmentFailed",
        "IPAMRefused",
        "Applied",
        "SubnetNotFound",
        "DeletionBlocked",
        "WaitingForAddress",
        "ApplyFailed",
        "GatewayNotReady",
        "PortConflict",
        "Ready",
        "Validated",
    ] {
        assert!(reasons.contains_key(r), "the scan missed {r}");
    }
    assert!(
        reasons.len() > 60,
        "only {} reasons found: the scan broke",
        reasons.len()
    );
    // Literals in test modules are not reasons: `"Sideways"` is only in the controller's policy
    // tests (`controller/src/nb/policy.rs`).
    assert!(!found.contains_key("Sideways"), "test modules are scanned");
    for (s, why) in NOT_REASONS.iter().chain(UNDOCUMENTED_REASONS) {
        assert!(
            found.contains_key(*s),
            "{s} ({why}) is no longer in the code: drop it from the exclusions"
        );
    }
}

#[test]
fn a_reason_missing_from_the_guide_is_named() {
    let doc = guide();
    let reasons: Vec<String> = ["NamespaceNotAdmitted", "EipInUse"]
        .map(String::from)
        .to_vec();
    assert_eq!(missing(&reasons, &doc), Vec::<String>::new());
    let without = doc.replace("`NamespaceNotAdmitted`", "NamespaceNotAdmitted");
    assert_eq!(missing(&reasons, &without), vec!["NamespaceNotAdmitted"]);
}

#[test]
fn every_cni_error_code_has_a_row() {
    let doc = guide();
    let absent: Vec<String> = cni_codes()
        .into_iter()
        .filter(|(n, _)| !doc.lines().any(|l| l.starts_with(&format!("| {n} |"))))
        .map(|(n, at)| format!("  {n} ({at})"))
        .collect();
    assert!(
        absent.is_empty(),
        "docs/TROUBLESHOOTING.md has no `| N |` row for these CNI error codes:\n{}",
        absent.join("\n")
    );
}

#[test]
fn the_lexer_skips_comments_and_knows_literals() {
    let src = r####"
        // "InComment"
        /* "InBlock" /* nested "Deeper" */ */
        let a = "Real"; let b = r#"Raw"#; let q = '"'; let e = '\''; fn f<'a>(x: &'a str) {}
        let s = "esc\"Quoted";
        #[cfg(test)]
        mod tests { const X: &str = "TestOnly"; fn g() { let _ = '{'; } }
        const AFTER: &str = "After";
    "####;
    let (literals, test_files) = live_literals(Path::new("src/nb.rs"), src);
    assert_eq!(literals, ["Real", "Raw", "esc\\\"Quoted", "After"]);
    let (_, test_files_of_mod) =
        live_literals(Path::new("src/nb.rs"), "#[cfg(test)]\nmod plan_tests;");
    assert!(test_files.is_empty());
    assert_eq!(test_files_of_mod, [Path::new("src/nb/plan_tests.rs")]);
}
