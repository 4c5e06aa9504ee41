//! `kube-ovn-controller` entry point.

use clap::Parser;
use controller::options::Options;

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if let Err(err) = options.validate() {
        eprintln!("kube-ovn-controller: {err}");
        std::process::exit(2);
    }
    anyhow::bail!(
        "kube-ovn-controller: the reconcilers are not in this build yet (see issue 7); \
         options parsed: {options:?}"
    )
}
