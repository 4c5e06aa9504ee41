//! The `kube-ovn` binary as a runtime runs it: environment, stdin, stdout, exit code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::io::Write;
use std::process::{Command, Stdio};

fn plugin(env: &[(&str, &str)], stdin: &str) -> (bool, serde_json::Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-ovn"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.success(), json)
}

const ADD_ENV: &[(&str, &str)] = &[
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "c1"),
    ("CNI_NETNS", "/var/run/netns/none"),
    ("CNI_IFNAME", "net1"),
    ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p"),
    ("CNI_PATH", "/opt/cni/bin"),
];

#[test]
fn version_lists_every_supported_spec_version() {
    let (ok, json) = plugin(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#);
    assert!(ok);
    assert_eq!(
        json["supportedVersions"],
        serde_json::json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn each_bad_input_class_exits_non_zero_with_its_code() {
    let good = r#"{"cniVersion":"0.3.1","name":"n","type":"kube-ovn","provider":"n.default.ovn","server_socket":"/nonexistent/kube-ovn.sock"}"#;
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, u64, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (vec![], good, 4, "CNI_COMMAND is not set"),
        (vec![("CNI_COMMAND", "ADD")], good, 4, "CNI_CONTAINERID"),
        (ADD_ENV.to_vec(), "not json", 6, "not valid JSON"),
        (
            ADD_ENV.to_vec(),
            r#"{"cniVersion":"9.9.9","type":"kube-ovn","provider":"p"}"#,
            1,
            "9.9.9",
        ),
        (
            ADD_ENV.to_vec(),
            r#"{"cniVersion":"1.0.0","type":"kube-ovn"}"#,
            7,
            "no provider",
        ),
        // A well-formed request whose daemon is not running: try again later, naming the socket.
        (ADD_ENV.to_vec(), good, 11, "/nonexistent/kube-ovn.sock"),
    ];
    for (env, stdin, code, want) in cases {
        let (ok, json) = plugin(&env, stdin);
        assert!(!ok, "{env:?} {stdin} should fail");
        assert_eq!(json["code"], code, "{env:?} {stdin}: {json}");
        assert!(
            json["msg"].as_str().unwrap().contains(want),
            "{env:?} {stdin}: {json}"
        );
    }
    // The error is in the version the configuration asked for.
    let (_, json) = plugin(ADD_ENV, good);
    assert_eq!(json["cniVersion"], "0.3.1");
}

#[test]
fn status_without_a_daemon_is_plugin_not_available() {
    let conf = r#"{"cniVersion":"1.1.0","name":"n","type":"kube-ovn","provider":"p","server_socket":"/nonexistent/d.sock"}"#;
    let (ok, json) = plugin(&[("CNI_COMMAND", "STATUS")], conf);
    assert!(!ok);
    assert_eq!(json["code"], 50, "{json}");
}
