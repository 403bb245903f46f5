//! `summit.config.v1.RegistryService`: the REST registry operations over gRPC, under the same
//! access rules (register on the service; reading; write for checks and maintenance), and the
//! registry's changes on `ConfigService.Watch` when a watcher names the service.

use serde_json::json;
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;
use summit_config::api::grpc::pb::registry_service_client::RegistryServiceClient;
use summit_config::api::grpc::pb::watch_event::Event;
use tonic::Code;

use crate::grpc_access::{secured, token, with_token};

fn register(service: &str, id: &str, weight: u32) -> pb::RegisterRequest {
    pb::RegisterRequest {
        service_name: service.into(),
        service_url: format!("http://127.0.0.1:{}", 9000 + weight),
        instance_id: id.into(),
        weight: Some(weight),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_registry_service_mirrors_rest_under_the_same_access_rules() {
    let (server, channel) = secured(|_| {}).await;
    let mut registry = RegistryServiceClient::new(channel.clone());
    let mut config = ConfigServiceClient::new(channel);
    let payments = token(
        &server,
        "payments",
        &["service-instance"],
        json!({"services": ["payments"]}),
    )
    .await;
    let reader = token(&server, "reader", &["config-reader"], json!({})).await;
    let ops = token(&server, "ops", &["config-admin"], json!({})).await;

    let mut events = config
        .watch(with_token(
            pb::WatchRequest {
                services: vec!["payments".into()],
                ..Default::default()
            },
            Some(&reader),
        ))
        .await
        .expect("watch opens")
        .into_inner();

    let created = registry
        .register(with_token(
            register("payments", "p-1", 300),
            Some(&payments),
        ))
        .await
        .expect("registers its own service")
        .into_inner();
    assert_eq!(created.status, "passing");
    assert!(created.healthy);
    assert_eq!(created.ttl_secs, 30);
    registry
        .register(with_token(
            register("payments", "p-2", 100),
            Some(&payments),
        ))
        .await
        .unwrap();
    let refused = registry
        .register(with_token(register("orders", "o-1", 100), Some(&payments)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let bad = registry
        .register(with_token(register("payments", "p-3", 0), Some(&payments)))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");

    let beat = registry
        .heartbeat(with_token(
            pb::HeartbeatRequest {
                service_name: "payments".into(),
                instance_id: "p-2".into(),
                status: "critical".into(),
                output: "db down".into(),
                error_rate: Some(0.25),
                ..Default::default()
            },
            Some(&payments),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!beat.healthy);
    let unknown = registry
        .heartbeat(with_token(
            pb::HeartbeatRequest {
                service_name: "payments".into(),
                instance_id: "p-9".into(),
                ..Default::default()
            },
            Some(&payments),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        unknown.code(),
        Code::NotFound,
        "register again: {unknown:?}"
    );

    let found = registry
        .discover(with_token(
            pb::DiscoverRequest {
                service_name: "payments".into(),
                ..Default::default()
            },
            Some(&reader),
        ))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = found
        .instances
        .iter()
        .map(|i| i.instance_id.as_str())
        .collect();
    assert_eq!(ids, ["p-1"]);
    assert_eq!((found.healthy, found.total), (1, 2));
    let url = registry
        .get_service_url(with_token(
            pb::DiscoverRequest {
                service_name: "payments".into(),
                ..Default::default()
            },
            Some(&reader),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(url.instance_id, "p-1");
    let listed = registry
        .list_services(with_token(pb::ListServicesRequest {}, Some(&reader)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.services[0].instances, 2);
    assert_eq!(listed.services[0].critical, 1);
    let detail = registry
        .get_service(with_token(
            pb::GetServiceRequest {
                service_name: "payments".into(),
            },
            Some(&reader),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.instances[1].output, "db down");
    // What the heartbeat measured, as REST shows it; a measure never reported stays absent.
    assert_eq!(detail.instances[1].error_rate, Some(0.25));
    assert_eq!(detail.instances[1].latency_p99_ms, None);
    assert_eq!(detail.instances[0].error_rate, None);

    // Maintenance is an operator's act.
    let maintenance = |token: &str| {
        with_token(
            pb::SetMaintenanceRequest {
                service_name: "payments".into(),
                instance_id: "p-1".into(),
                enabled: true,
                reason: "swap".into(),
            },
            Some(token),
        )
    };
    let refused = registry
        .set_maintenance(maintenance(&payments))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let marked = registry
        .set_maintenance(maintenance(&ops))
        .await
        .unwrap()
        .into_inner();
    assert!(marked.maintenance && !marked.healthy);
    assert_eq!(
        (
            marked.maintenance_reason.as_str(),
            marked.maintenance_by.as_str()
        ),
        ("swap", "token:ops")
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(&marked.maintenance_since).is_ok(),
        "{marked:?}"
    );
    let none = registry
        .get_service_url(with_token(
            pb::DiscoverRequest {
                service_name: "payments".into(),
                ..Default::default()
            },
            Some(&reader),
        ))
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::Unavailable);

    registry
        .deregister(with_token(
            pb::DeregisterRequest {
                service_name: "payments".into(),
                instance_id: "p-2".into(),
            },
            Some(&payments),
        ))
        .await
        .unwrap();

    let mut kinds = Vec::new();
    while kinds.len() < 5 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), events.message())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("stream not ended");
        if let Some(Event::Change(change)) = event.event {
            kinds.push((change.kind, change.config_id));
        }
    }
    assert_eq!(
        kinds,
        [
            ("instance.registered".to_owned(), "payments/p-1".to_owned()),
            ("instance.registered".to_owned(), "payments/p-2".to_owned()),
            (
                "instance.status_changed".to_owned(),
                "payments/p-2".to_owned()
            ),
            (
                "instance.status_changed".to_owned(),
                "payments/p-1".to_owned()
            ),
            (
                "instance.deregistered".to_owned(),
                "payments/p-2".to_owned()
            ),
        ]
    );
}
