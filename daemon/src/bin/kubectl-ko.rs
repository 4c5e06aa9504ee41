//! `kubectl-ko`: `kubectl ko` for Kube-OVN in attached-CNI mode (docs/kubectl-ko.md).

use clap::Parser;
use daemon::ko::KoError;
use daemon::ko::chain::{evaluate, first_broken, render};
use daemon::ko::cli::{Cli, Command};
use daemon::ko::gather::Gatherer;
use daemon::ko::tools::Tool;
use kube::ResourceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("kubectl-ko: {e}");
            std::process::exit(2);
        }
    }
}

/// Runs a pass-through tool with this terminal; returns its exit code.
async fn pass_through(
    cli: &Cli,
    tool: Tool,
    node: Option<&str>,
    args: &[String],
) -> Result<i32, KoError> {
    let tools = cli.tools();
    let pod = match node {
        Some(n) if !tools.ovs.contains_key(n) => Some(
            Gatherer::new(client(cli).await?, tools.clone())
                .ovs_pod_name(n)
                .await?,
        ),
        _ => None,
    };
    let target = tools.target(tool, node, |n| {
        pod.ok_or_else(|| KoError::Usage(format!("no Open vSwitch pod on {n}")))
    })?;
    Ok(tools
        .invocation(tool, &target, args)
        .status()?
        .code()
        .unwrap_or(1))
}

async fn client(cli: &Cli) -> Result<kube::Client, KoError> {
    Ok(crds::admin::kube_client(cli.kubeconfig.as_deref()).await?)
}

async fn run(cli: Cli) -> Result<i32, KoError> {
    match &cli.command {
        Command::Nbctl { args } => pass_through(&cli, Tool::Nbctl, None, args).await,
        Command::Sbctl { args } => pass_through(&cli, Tool::Sbctl, None, args).await,
        Command::Vsctl { node, args } => pass_through(&cli, Tool::Vsctl, Some(node), args).await,
        Command::Ofctl { node, args } => pass_through(&cli, Tool::Ofctl, Some(node), args).await,
        Command::Diagnose { pod } => {
            let gatherer = Gatherer::new(client(&cli).await?, cli.tools());
            let p = gatherer.pod(pod).await?;
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            println!("pod {pod} on {}", node.as_deref().unwrap_or("no node"));
            let attachments = gatherer.diagnose(&p).await?;
            if attachments.is_empty() {
                println!("  no kube-ovn attachments ({} names none)", p.name_any());
                return Ok(0);
            }
            let mut broken = false;
            for f in &attachments {
                let links = evaluate(f);
                println!(
                    "attachment {} ({}, provider {}):",
                    f.interface,
                    f.nad,
                    f.provider.as_deref().unwrap_or("?")
                );
                print!("{}", render(&links));
                broken |= first_broken(&links).is_some();
            }
            if broken {
                println!("result: BROKEN");
                Ok(1)
            } else {
                println!("result: every link is ok");
                Ok(0)
            }
        }
        Command::Trace {
            pod,
            network,
            target,
            protocol,
            port,
        } => {
            let gatherer = Gatherer::new(client(&cli).await?, cli.tools());
            let args = gatherer
                .trace_args(pod, network, *target, *protocol, *port)
                .await?;
            println!("ovn-trace {} '{}'", args[0], args[1]);
            pass_through(&cli, Tool::Trace, None, &args).await
        }
    }
}
