//! gRPC transport (`summit.config.v1`): thin handlers over the same `ConfigService` the REST
//! API holds, the standard health service, and server reflection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::core::access::{AccessService, Caller};
use crate::core::deployments::{DeploymentService, StrategyService};
use crate::core::flags::FlagService;
use crate::core::registry::RegistryService;
use crate::core::secrets::SecretService;
use crate::core::service::ConfigService;
use crate::tls::TlsFiles;

pub mod access;
pub mod change_requests;
pub mod codec;
pub mod config;
pub mod convert;
pub mod deadline;
pub mod deployments;
pub mod error;
pub mod flags;
pub mod layer;
pub mod observe;
pub mod registry;
pub mod secrets;
pub mod watch;

/// Generated from `proto/summit/config/v1/config.proto`.
pub mod pb {
    tonic::include_proto!("summit.config.v1");

    /// For server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("summit_config_v1_descriptor");
}

/// The caller the access layer authenticated (the unrestricted identity when access control
/// is off); a handler reached without one fails closed.
pub fn caller_of<T>(request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            tonic::Status::from(crate::core::error::Error::internal(
                "an RPC ran without an authenticated caller",
            ))
        })
}

/// The caller the authentication layer attached to `request`, and its message.
pub fn caller_and_message<T>(request: tonic::Request<T>) -> Result<(Caller, T), tonic::Status> {
    let caller = caller_of(&request)?;
    Ok((caller, request.into_inner()))
}

/// Streams this server may reset for a client's protocol errors per connection (h2's default,
/// which tonic would otherwise turn off).
const MAX_LOCAL_RESETS: usize = 1024;
/// Streams a client may reset before the server accepts them (h2's default).
const MAX_PENDING_RESETS: usize = 20;

/// What the gRPC server serves, and how.
pub struct GrpcServer {
    pub service: Arc<ConfigService>,
    pub flags: Arc<FlagService>,
    pub secrets: Arc<SecretService>,
    pub registry: Arc<RegistryService>,
    pub strategies: Arc<StrategyService>,
    pub deployments: Arc<DeploymentService>,
    pub access: Arc<AccessService>,
    pub tls: Option<TlsFiles>,
    pub request_timeout: std::time::Duration,
    pub watch_buffer: usize,
    pub max_message_bytes: usize,
    /// Connection bound, deadlines and HTTP/2 limits (shared with REST).
    pub connections: crate::connections::Limits,
    pub shutdown: CancellationToken,
}

/// Serves gRPC on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, server: GrpcServer) -> anyhow::Result<()> {
    let GrpcServer {
        service,
        flags,
        secrets,
        registry,
        strategies,
        deployments,
        access,
        tls,
        request_timeout,
        watch_buffer,
        max_message_bytes,
        connections,
        shutdown,
    } = server;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    // The first answer is set before serving, so a probe never finds a service unknown.
    let initial = readiness(&service, &shutdown).await;
    set_health(&health_reporter, initial).await;
    tokio::spawn(follow_readiness(
        health_reporter,
        service.clone(),
        shutdown.clone(),
        initial,
    ));
    // Both reflection protocols: v1, and v1alpha for the clients that only ask it (Python's
    // grpcio-reflection, Postman, Evans, older grpcurl).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let reflection = reflection().build_v1()?;
    let change_requests = pb::change_request_service_server::ChangeRequestServiceServer::new(
        change_requests::GrpcChangeRequestService::new(
            service.clone(),
            flags.clone(),
            deployments.clone(),
        ),
    )
    .max_decoding_message_size(max_message_bytes);
    let config = pb::config_service_server::ConfigServiceServer::new(
        config::GrpcConfigService::new(service, access.clone(), watch_buffer, shutdown.clone()),
    )
    // The same limit as REST bodies (SUMMIT_MAX_BODY_BYTES); a larger message is
    // RESOURCE_EXHAUSTED `payload_too_large` (tonic's OUT_OF_RANGE, rewritten in `observe`).
    .max_decoding_message_size(max_message_bytes);
    let flags = pb::flag_service_server::FlagServiceServer::new(flags::GrpcFlagService::new(flags))
        .max_decoding_message_size(max_message_bytes);
    let secrets = pb::secret_service_server::SecretServiceServer::new(
        secrets::GrpcSecretService::new(secrets),
    )
    .max_decoding_message_size(max_message_bytes);
    let registry = pb::registry_service_server::RegistryServiceServer::new(
        registry::GrpcRegistryService::new(registry),
    )
    .max_decoding_message_size(max_message_bytes);
    let deployments = pb::deployment_service_server::DeploymentServiceServer::new(
        deployments::GrpcDeploymentService::new(strategies, deployments),
    )
    .max_decoding_message_size(max_message_bytes);
    let limits = &connections.settings;
    // TLS is completed by the incoming stream (within the header read timeout).
    let tls = match &tls {
        Some(files) => Some(crate::tls::server_config(files, &[b"h2".to_vec()])?),
        None => None,
    };
    let incoming = crate::connections::grpc_incoming(listener, tls, &connections);
    tonic::transport::Server::builder()
        // A quiet connection is pinged; a peer that does not answer is gone.
        .http2_keepalive_interval(Some(limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout))
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        // Streams the server resets (a client's protocol errors) and streams a client resets
        // before they are accepted are bounded: past them the connection gets a GOAWAY (tonic
        // would lift hyper's bound on the first; rapid-reset floods).
        .http2_max_local_error_reset_streams(Some(MAX_LOCAL_RESETS))
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_RESETS))
        // Outermost, so refused calls are counted and traced too.
        .layer(observe::layer())
        // Unary calls (and the start of a stream) that take longer end with DEADLINE_EXCEEDED.
        .layer(deadline::layer(request_timeout))
        .layer(access::layer(access))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(config)
        .add_service(flags)
        .add_service(change_requests)
        .add_service(secrets)
        .add_service(registry)
        .add_service(deployments)
        // Nagle is off on accepted connections: it would hold back a response's trailers
        // until the client's delayed ACK (~40 ms).
        .serve_with_incoming_shutdown(incoming, async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// The services whose health is reported (besides the overall service, "").
const HEALTH_NAMES: [&str; 6] = [
    <pb::config_service_server::ConfigServiceServer<config::GrpcConfigService> as tonic::server::NamedService>::NAME,
    <pb::flag_service_server::FlagServiceServer<flags::GrpcFlagService> as tonic::server::NamedService>::NAME,
    <pb::change_request_service_server::ChangeRequestServiceServer<change_requests::GrpcChangeRequestService> as tonic::server::NamedService>::NAME,
    <pb::secret_service_server::SecretServiceServer<secrets::GrpcSecretService> as tonic::server::NamedService>::NAME,
    <pb::deployment_service_server::DeploymentServiceServer<deployments::GrpcDeploymentService> as tonic::server::NamedService>::NAME,
    <pb::registry_service_server::RegistryServiceServer<registry::GrpcRegistryService> as tonic::server::NamedService>::NAME,
];

/// How often health asks whether the database answers (as `/ready` does).
const HEALTH_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// gRPC health follows readiness: SERVING while the database answers, NOT_SERVING while it
/// does not and from the start of a shutdown; for the overall service and each named one.
async fn follow_readiness(
    reporter: tonic_health::server::HealthReporter,
    service: std::sync::Arc<crate::core::service::ConfigService>,
    shutdown: tokio_util::sync::CancellationToken,
    mut last: tonic_health::ServingStatus,
) {
    use tonic_health::ServingStatus;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(HEALTH_CHECK_EVERY) => {}
        }
        let status = readiness(&service, &shutdown).await;
        if status != last {
            if status == ServingStatus::NotServing {
                tracing::warn!(
                    "gRPC health: NOT_SERVING (the database does not answer, or shutting down)"
                );
            } else {
                tracing::info!("gRPC health: SERVING again");
            }
            set_health(&reporter, status).await;
            last = status;
        }
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// What `/ready` says, as a gRPC serving status.
async fn readiness(
    service: &crate::core::service::ConfigService,
    shutdown: &tokio_util::sync::CancellationToken,
) -> tonic_health::ServingStatus {
    if !shutdown.is_cancelled() && service.ready().await.is_ok() {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    }
}

/// Sets the overall service ("") and every named one.
async fn set_health(
    reporter: &tonic_health::server::HealthReporter,
    status: tonic_health::ServingStatus,
) {
    for name in std::iter::once("").chain(HEALTH_NAMES) {
        reporter.set_service_status(name, status).await;
    }
}

pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the gRPC listener on {addr}"))
}
