//! Generates the gRPC code from `proto/` with a vendored protoc (no system protoc needed), and a
//! file descriptor set for server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .codec_path("crate::api::grpc::codec::CompactCodec")
        .file_descriptor_set_path(out_dir.join("summit_config_v1_descriptor.bin"))
        .compile_protos(&["proto/summit/config/v1/config.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    // `sqlx::migrate!` embeds the migrations: a new one must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
