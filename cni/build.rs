//! Compiles `proto/daemon.proto` with protox (pure Rust, no `protoc` binary) into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/daemon.proto");
    let descriptors = protox::compile(["proto/daemon.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
