//! `kube-ovn-daemon` entry point.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("kube-ovn-daemon: the node agent is not in this build yet (see issue 6)")
}
