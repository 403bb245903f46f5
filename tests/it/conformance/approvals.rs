//! Approvals: change requests, stored once, updated by compare-and-set, applied with the write.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use summit_config::core::approvals::model::{
    Approval, ChangeOperation, ChangeRequest, ChangeRequestStatus, Proposal, Subject,
};
use summit_config::core::error::Error;
use summit_config::core::events::{ChangeKind, kind};
use summit_config::core::ids::ConfigId;
use summit_config::core::model::{AuditDraft, ConfigDocument};
use summit_config::core::ports::{
    AppliedRequest, ChangeRequestQuery, ChangeRequestWrite, ConfigWrite, DeleteWrite, Documents,
    Store, VersionWrite,
};
use summit_config::core::service::now;

use super::fixtures::*;

fn change_request(
    id: &str,
    config: &ConfigId,
    environments: &[&str],
    created_at: DateTime<Utc>,
) -> ChangeRequest {
    ChangeRequest {
        id: id.to_owned(),
        subject: Subject::Config(config.clone()),
        operation: ChangeOperation::Put {
            document: Box::new(Proposal::Config(ConfigDocument {
                overrides: BTreeMap::from([("production".to_owned(), json!({ "limit": 50 }))]),
                ..document(json!({ "limit": 5, "nested": { "on": true } }))
            })),
        },
        base_version: 1,
        environments: environments.iter().map(|e| (*e).to_owned()).collect(),
        required_approvals: 2,
        approvals: Vec::new(),
        status: ChangeRequestStatus::Pending,
        requested_by: "alice".to_owned(),
        on_behalf_of: Some("deploy-bot".to_owned()),
        message: Some("raise the limit".to_owned()),
        reason: None,
        applied_version: None,
        created_at,
        updated_at: created_at,
    }
}

fn request_write(
    request: &ChangeRequest,
    expected: Option<(ChangeRequestStatus, usize)>,
    kind: ChangeKind,
) -> ChangeRequestWrite {
    ChangeRequestWrite {
        request: request.clone(),
        expected,
        kind,
        audit: AuditDraft {
            environments: request.environments.clone(),
            ..audit_draft(kind.as_str(), "bob", "review")
        },
    }
}

/// `request` with one more approval (by `actor`), approved once it has enough.
fn approved_by(request: &ChangeRequest, actor: &str) -> ChangeRequest {
    let at = request.updated_at + chrono::Duration::seconds(1);
    let mut next = request.clone();
    next.approvals.push(Approval {
        actor: actor.to_owned(),
        at,
    });
    if next.approvals.len() >= next.required_approvals as usize {
        next.status = ChangeRequestStatus::Approved;
    }
    next.updated_at = at;
    next
}

/// Stores a request for `config` at `base_version` that needs and has one approval.
async fn approved_request(
    store: &dyn Store,
    id: &str,
    config: &ConfigId,
    base_version: u64,
) -> ChangeRequest {
    let pending = ChangeRequest {
        base_version,
        required_approvals: 1,
        ..change_request(id, config, &["production"], now())
    };
    store
        .put_change_request(request_write(&pending, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect("create request");
    let approved = approved_by(&pending, "carol");
    store
        .put_change_request(request_write(
            &approved,
            Some((ChangeRequestStatus::Pending, 0)),
            kind::CHANGE_REQUEST_APPROVED,
        ))
        .await
        .expect("approve request");
    approved
}

fn applying(write: ConfigWrite, request: &ChangeRequest) -> ConfigWrite {
    VersionWrite {
        applies: Some(AppliedRequest {
            id: request.id.clone(),
            audit: audit_draft("change_request.apply", "dave", "apply"),
        }),
        ..write
    }
}

pub(super) async fn change_requests_are_inserted_once_and_updated_by_compare_and_set(
    store: Arc<dyn Store>,
) {
    let config = config_id("checkout");
    let request = change_request("cr-1", &config, &["production", "eu"], now());
    let created = store
        .put_change_request(request_write(&request, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect("create");
    assert_eq!(created.version, request.base_version);
    assert_eq!(created.event.revision, 1);
    assert_eq!(created.event.kind, kind::CHANGE_REQUEST_CREATED);
    assert_eq!(created.event.config_id, "checkout");
    assert_eq!(created.event.version, request.base_version);
    assert_eq!(created.event.at, request.updated_at);
    assert!(created.follow_up.is_none());
    assert_eq!(
        store.change_request("cr-1").await.expect("read"),
        Some(request.clone()),
        "every field round-trips"
    );
    assert!(store.change_request("cr-2").await.expect("read").is_none());

    let error = store
        .put_change_request(request_write(&request, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect_err("the id is taken");
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );

    let once = approved_by(&request, "carol");
    let committed = store
        .put_change_request(request_write(
            &once,
            Some((ChangeRequestStatus::Pending, 0)),
            kind::CHANGE_REQUEST_APPROVED,
        ))
        .await
        .expect("first approval");
    assert_eq!(committed.event.revision, 2);
    assert_eq!(committed.event.kind, kind::CHANGE_REQUEST_APPROVED);
    assert_eq!(
        store.change_request("cr-1").await.expect("read"),
        Some(once.clone())
    );

    let before = (
        store.change_request("cr-1").await.expect("read"),
        store.changes_since(0, 100).await.expect("changes"),
        store.audit(all_audit()).await.expect("audit"),
    );
    // A second approver who read the request before the first approval, and one who expects
    // the wrong status.
    let twice = approved_by(&once, "dave");
    for stale in [
        (ChangeRequestStatus::Pending, 0),
        (ChangeRequestStatus::Approved, 1),
    ] {
        let error = store
            .put_change_request(request_write(
                &twice,
                Some(stale),
                kind::CHANGE_REQUEST_APPROVED,
            ))
            .await
            .expect_err("stale expectation");
        assert!(
            matches!(error, Error::ConcurrentModification { .. }),
            "{error:?}"
        );
    }
    let absent = ChangeRequest {
        id: "cr-9".to_owned(),
        ..twice.clone()
    };
    let error = store
        .put_change_request(request_write(
            &absent,
            Some((ChangeRequestStatus::Pending, 1)),
            kind::CHANGE_REQUEST_APPROVED,
        ))
        .await
        .expect_err("no such request");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let after = (
        store.change_request("cr-1").await.expect("read"),
        store.changes_since(0, 100).await.expect("changes"),
        store.audit(all_audit()).await.expect("audit"),
    );
    assert_eq!(after, before, "refused updates write nothing");

    store
        .put_change_request(request_write(
            &twice,
            Some((ChangeRequestStatus::Pending, 1)),
            kind::CHANGE_REQUEST_APPROVED,
        ))
        .await
        .expect("second approval");
    let stored = store
        .change_request("cr-1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored, twice);
    assert_eq!(stored.status, ChangeRequestStatus::Approved);

    let mut rejected = twice.clone();
    rejected.status = ChangeRequestStatus::Rejected;
    rejected.reason = Some("not now".to_owned());
    let error = store
        .put_change_request(request_write(
            &rejected,
            Some((ChangeRequestStatus::Pending, 2)),
            kind::CHANGE_REQUEST_REJECTED,
        ))
        .await
        .expect_err("it is approved now");
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );

    let records = store.audit(all_audit()).await.expect("audit");
    let audited: Vec<(u64, &str, &str, Option<u64>)> = records
        .iter()
        .map(|r| {
            (
                r.revision,
                r.action.as_str(),
                r.config_id.as_str(),
                r.version,
            )
        })
        .collect();
    assert_eq!(
        audited,
        [
            (
                3,
                kind::CHANGE_REQUEST_APPROVED.as_str(),
                "checkout",
                Some(1)
            ),
            (
                2,
                kind::CHANGE_REQUEST_APPROVED.as_str(),
                "checkout",
                Some(1)
            ),
            (
                1,
                kind::CHANGE_REQUEST_CREATED.as_str(),
                "checkout",
                Some(1)
            ),
        ]
    );
    assert_eq!(
        records[0].environments,
        ["production".to_owned(), "eu".to_owned()]
    );
}

pub(super) async fn change_requests_are_listed_newest_first_and_filtered(store: Arc<dyn Store>) {
    let (checkout, search) = (config_id("checkout"), config_id("search"));
    let base = now();
    let at = |secs: i64| base + chrono::Duration::seconds(secs);
    // Two share a creation time: the id breaks the tie (descending).
    let requests = [
        change_request("cr-a", &checkout, &["production"], at(0)),
        change_request("cr-b", &search, &["production", "eu"], at(1)),
        change_request("cr-c", &checkout, &["eu"], at(2)),
        change_request("cr-d", &checkout, &["staging-eu"], at(2)),
        change_request("cr-e", &search, &["eu-west"], at(3)),
    ];
    for request in &requests {
        store
            .put_change_request(request_write(request, None, kind::CHANGE_REQUEST_CREATED))
            .await
            .expect("create");
    }
    let mut cancelled = requests[2].clone();
    cancelled.status = ChangeRequestStatus::Cancelled;
    cancelled.reason = Some("superseded".to_owned());
    cancelled.updated_at = at(10);
    store
        .put_change_request(request_write(
            &cancelled,
            Some((ChangeRequestStatus::Pending, 0)),
            kind::CHANGE_REQUEST_CANCELLED,
        ))
        .await
        .expect("cancel");

    let ids = |query: ChangeRequestQuery| {
        let store = store.clone();
        async move {
            store
                .change_requests(query)
                .await
                .expect("change requests")
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let all = ChangeRequestQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        ids(all.clone()).await,
        ["cr-e", "cr-d", "cr-c", "cr-b", "cr-a"]
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            limit: 2,
            ..all.clone()
        })
        .await,
        ["cr-e", "cr-d"]
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            status: Some(ChangeRequestStatus::Pending),
            ..all.clone()
        })
        .await,
        ["cr-e", "cr-d", "cr-b", "cr-a"]
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            status: Some(ChangeRequestStatus::Cancelled),
            ..all.clone()
        })
        .await,
        ["cr-c"]
    );
    // Whole environment names only: "eu" is not "eu-west" nor "staging-eu".
    assert_eq!(
        ids(ChangeRequestQuery {
            environment: Some("eu".to_owned()),
            ..all.clone()
        })
        .await,
        ["cr-c", "cr-b"]
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            environment: Some("eu".to_owned()),
            limit: 1,
            ..all.clone()
        })
        .await,
        ["cr-c"],
        "the limit applies after the filter"
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            subject: Some(Subject::Config(checkout.clone())),
            ..all.clone()
        })
        .await,
        ["cr-d", "cr-c", "cr-a"]
    );
    assert_eq!(
        ids(ChangeRequestQuery {
            status: Some(ChangeRequestStatus::Pending),
            environment: Some("production".to_owned()),
            subject: Some(Subject::Config(checkout)),
            prefixes: Vec::new(),
            limit: 100,
        })
        .await,
        ["cr-a"]
    );
    // A caller's id scope, applied before the limit: the newest requests are search's.
    assert_eq!(
        ids(ChangeRequestQuery {
            prefixes: vec!["check".to_owned(), "nothing.".to_owned()],
            limit: 2,
            ..all.clone()
        })
        .await,
        ["cr-d", "cr-c"]
    );
    assert!(
        ids(ChangeRequestQuery {
            environment: Some("nowhere".to_owned()),
            ..all
        })
        .await
        .is_empty()
    );
}

pub(super) async fn applying_an_approved_request_writes_the_version_and_marks_it_applied(
    store: Arc<dyn Store>,
) {
    let id = config_id("checkout");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    let request = approved_request(store.as_ref(), "cr-1", &id, 1).await;
    let revision = store.latest_revision().await.expect("latest revision");

    let write = applying(version_write(&id, json!({ "v": 2 }), 1), &request);
    let (checksum, created_at) = (write.version.checksum.clone(), write.version.created_at);
    let committed = store.configs().append(write).await.expect("apply");
    assert_eq!(committed.version, 2);
    assert_eq!(committed.event.revision, revision + 1);
    assert_eq!(committed.event.kind, kind::CONFIG_UPDATED);
    let follow_up = committed.follow_up.clone().expect("a follow-up change");
    assert_eq!(follow_up.revision, revision + 2);
    assert_eq!(follow_up.kind, kind::CHANGE_REQUEST_APPLIED);
    assert_eq!(follow_up.config_id, "checkout");
    assert_eq!(follow_up.version, 2);
    assert_eq!(follow_up.checksum, checksum);
    assert_eq!(follow_up.actor, "dave");
    assert_eq!(follow_up.at, created_at);
    assert_eq!(
        store.changes_since(revision, 10).await.expect("changes"),
        [committed.event.clone(), follow_up]
    );

    let head = store
        .configs()
        .head(&id)
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(head.latest.version, 2);
    assert_eq!(head.latest.document.config, json!({ "v": 2 }));
    let applied = store
        .change_request("cr-1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        applied,
        ChangeRequest {
            status: ChangeRequestStatus::Applied,
            applied_version: Some(2),
            updated_at: created_at,
            ..request
        }
    );

    let records = store.audit(all_audit()).await.expect("audit");
    assert_eq!(
        (
            records[0].revision,
            records[0].action.as_str(),
            records[0].version
        ),
        (revision + 2, "change_request.apply", Some(2))
    );
    assert_eq!(
        (records[1].revision, records[1].action.as_str()),
        (revision + 1, "config.put")
    );
}

pub(super) async fn applying_a_request_that_is_not_approved_is_a_concurrent_modification_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let id = config_id("checkout");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    let pending = change_request("cr-pending", &id, &["production"], now());
    store
        .put_change_request(request_write(&pending, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect("create pending");
    let approved = approved_request(store.as_ref(), "cr-approved", &id, 1).await;
    store
        .configs()
        .append(applying(
            version_write(&id, json!({ "v": 2 }), 1),
            &approved,
        ))
        .await
        .expect("apply once");
    let absent = ChangeRequest {
        id: "cr-absent".to_owned(),
        ..pending.clone()
    };

    let before = observe(store.as_ref(), &id).await;
    let requests_before = (
        store.change_request("cr-pending").await.expect("read"),
        store.change_request("cr-approved").await.expect("read"),
    );
    // Pending, already applied, and unknown.
    for request in [&pending, &approved, &absent] {
        let error = store
            .configs()
            .append(applying(
                version_write(&id, json!({ "v": "lost" }), 2),
                request,
            ))
            .await
            .expect_err("only an approved request applies");
        assert!(
            matches!(error, Error::ConcurrentModification { .. }),
            "{error:?}"
        );
    }
    assert_eq!(observe(store.as_ref(), &id).await, before);
    assert_eq!(before.versions, [2, 1]);
    assert_eq!(
        (
            store.change_request("cr-pending").await.expect("read"),
            store.change_request("cr-approved").await.expect("read"),
        ),
        requests_before
    );
    assert!(
        store
            .change_request("cr-absent")
            .await
            .expect("read")
            .is_none()
    );

    // The version's own rules still come first.
    let fresh = approved_request(store.as_ref(), "cr-fresh", &id, 2).await;
    let error = store
        .configs()
        .append(applying(
            version_write(&id, json!({ "v": "lost" }), 1),
            &fresh,
        ))
        .await
        .expect_err("stale expected_live");
    assert!(matches!(error, Error::VersionConflict { .. }), "{error:?}");
    assert_eq!(
        store.change_request("cr-fresh").await.expect("read"),
        Some(fresh),
        "a refused write leaves the request approved"
    );
}

pub(super) async fn deleting_through_an_approved_request_marks_it_applied_and_only_then(
    store: Arc<dyn Store>,
) {
    let id = config_id("checkout");
    store
        .configs()
        .append(version_write(&id, json!({ "v": 1 }), 0))
        .await
        .expect("v1");
    let v2 = version_write(&id, json!({ "v": 2 }), 1);
    let v2_checksum = v2.version.checksum.clone();
    store.configs().append(v2).await.expect("v2");
    let pending = ChangeRequest {
        operation: ChangeOperation::Delete,
        base_version: 2,
        ..change_request("cr-pending", &id, &["production"], now())
    };
    store
        .put_change_request(request_write(&pending, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect("create pending");
    let delete_applying = |request: &ChangeRequest| DeleteWrite {
        applies: Some(AppliedRequest {
            id: request.id.clone(),
            audit: audit_draft("change_request.apply", "dave", "apply"),
        }),
        ..delete_write(&id, 2)
    };

    let before = observe(store.as_ref(), &id).await;
    let error = store
        .configs()
        .delete(delete_applying(&pending))
        .await
        .expect_err("a pending request does not apply");
    assert!(
        matches!(error, Error::ConcurrentModification { .. }),
        "{error:?}"
    );
    assert_eq!(observe(store.as_ref(), &id).await, before);
    assert_eq!(
        store.change_request("cr-pending").await.expect("read"),
        Some(pending)
    );

    let approved = approved_request(store.as_ref(), "cr-approved", &id, 2).await;
    let revision = store.latest_revision().await.expect("latest revision");
    let write = delete_applying(&approved);
    let at = write.at;
    let committed = store.configs().delete(write).await.expect("delete");
    assert_eq!(committed.version, 2);
    assert_eq!(committed.event.kind, kind::CONFIG_DELETED);
    assert_eq!(committed.event.revision, revision + 1);
    let follow_up = committed.follow_up.expect("a follow-up change");
    assert_eq!(
        (
            follow_up.revision,
            follow_up.kind.as_str(),
            follow_up.config_id.as_str(),
            follow_up.version,
            follow_up.checksum.as_str(),
            follow_up.at,
        ),
        (
            revision + 2,
            kind::CHANGE_REQUEST_APPLIED.as_str(),
            "checkout",
            2,
            v2_checksum.as_str(),
            at,
        )
    );
    let head = store
        .configs()
        .head(&id)
        .await
        .expect("head")
        .expect("exists");
    assert!(head.deleted);
    let applied = store
        .change_request("cr-approved")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(applied.status, ChangeRequestStatus::Applied);
    assert_eq!(applied.applied_version, Some(2));
    assert_eq!(applied.updated_at, at);
}

/// A request on a flag is stored as one (its kind and key survive) and a filter on a config
/// with the same name does not find it.
pub(super) async fn a_flag_change_request_keeps_its_subject_and_definition(store: Arc<dyn Store>) {
    let key = flag_key("checkout");
    let mut request = change_request("cr-flag", &config_id("checkout"), &["production"], now());
    request.subject = Subject::Flag(key.clone());
    request.operation = ChangeOperation::Put {
        document: Box::new(Proposal::Flag(flag_definition("new flow", "on"))),
    };
    store
        .put_change_request(request_write(&request, None, kind::CHANGE_REQUEST_CREATED))
        .await
        .expect("insert");
    let stored = store
        .change_request("cr-flag")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored, request);
    let query = |subject| ChangeRequestQuery {
        subject: Some(subject),
        limit: 10,
        ..Default::default()
    };
    let found = store
        .change_requests(query(Subject::Flag(key)))
        .await
        .expect("list");
    assert_eq!(found, [request]);
    let found = store
        .change_requests(query(Subject::Config(config_id("checkout"))))
        .await
        .expect("list");
    assert!(found.is_empty(), "{found:?}");
}
