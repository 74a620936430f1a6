//! Compiles `proto/` with protox (no system protoc) and exports the descriptor set that
//! server reflection serves.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "agentic/user/v1/user.proto",
    "agentic/agent/v1/agent.proto",
    "agentic/conversation/v1/conversation.proto",
    "agentic/rag/v1/rag.proto",
    // For reflection only: lets clients decode the error details the services send.
    "google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let descriptors = protox::compile(&files, [&root])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("agentic_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .codec_path("crate::codec::AgenticCodec")
        // Maps encode in one order, so a retried request digests as the first did.
        .btree_map(".")
        .compile_fds(descriptors)?;
    Ok(())
}
