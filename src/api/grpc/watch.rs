//! The `Watch` server stream over the core's gap-free change stream: an optional snapshot, then
//! changes in revision order, heartbeats on idle streams, and a bounded buffer per stream. A
//! consumer that lets the buffer fill gets a final `Resync` (fetch state, watch again from its
//! revision) instead of silently losing events; a consumer that goes away frees everything.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::convert::{self as cv, environment};
use super::pb;
use super::pb::watch_event::Event;
use crate::core::access::{AccessService, Caller};
use crate::core::effective::AssignmentInput;
use crate::core::error::Error;
use crate::core::events::{ChangeEvent, kind};
use crate::core::ids::ConfigId;
use crate::core::service::{ConfigService, EffectiveQuery};
use crate::core::watch::WatchFilter;

pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

/// An idle stream gets a heartbeat this often.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

struct Watch {
    service: Arc<ConfigService>,
    caller: Caller,
    query: Option<EffectiveQuery>,
}

impl Watch {
    /// The event as sent, with the effective config when asked for and available.
    async fn message(&self, change: &ChangeEvent, snapshot: bool) -> pb::WatchEvent {
        let effective = match &self.query {
            Some(query) if change.kind == kind::CONFIG_UPDATED => {
                match ConfigId::parse(&change.config_id) {
                    // As of this change: a replayed event must not carry a later version.
                    Ok(id) => self
                        .service
                        .effective_at(&self.caller, &id, change.version, query)
                        .await
                        .ok()
                        .map(|e| cv::pb_effective(&e)),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        let event = cv::pb_change(change);
        pb::WatchEvent {
            event: Some(if snapshot {
                Event::Snapshot(event)
            } else {
                Event::Change(event)
            }),
            effective,
        }
    }
}

fn check_request(
    request: &pb::WatchRequest,
) -> Result<(WatchFilter, Option<EffectiveQuery>), Error> {
    fn names(list: &[String]) -> Vec<&str> {
        list.iter().map(String::as_str).collect()
    }
    let filter = WatchFilter::new(
        &names(&request.config_ids),
        Some(request.prefix.as_str()),
        &names(&request.flag_keys),
        request.all_flags,
        (!request.environment.is_empty()).then_some(request.environment.as_str()),
    )?
    .with_services(&names(&request.services), request.all_services)?
    .with_instance(Some(request.instance_id.as_str()))?;
    let env = environment(&request.environment)?;
    if request.assignment_key.len() > 1024 {
        return Err(Error::invalid(
            "assignmentKey",
            "assignmentKey must be at most 1024 bytes",
        ));
    }
    let query = request.include_effective.then(|| EffectiveQuery {
        environment: env,
        assignment: if request.assignment_key.is_empty() {
            AssignmentInput::None
        } else {
            AssignmentInput::Key(request.assignment_key.clone())
        },
        resolve_secrets: false,
        instance_id: filter.instance_id.clone(),
    });
    Ok((filter, query))
}

pub async fn start(
    service: Arc<ConfigService>,
    caller: Caller,
    credential: Option<(Arc<AccessService>, String)>,
    request: pb::WatchRequest,
    buffer: usize,
    shutdown: CancellationToken,
) -> Result<EventStream, Status> {
    let (filter, query) = check_request(&request)?;
    let from = match request.from_revision {
        Some(revision) => revision,
        None => service.latest_revision().await?,
    };
    // The watcher (and its slot) first: no snapshot work for a request over the limit, and the
    // watch covers everything after `from` while the snapshot is read.
    let mut changes = match request.from_revision {
        Some(_) => service.watch(&caller, filter.clone(), Some(from)).await?,
        None => {
            service
                .watch_after_snapshot(&caller, filter.clone(), from)
                .await?
        }
    };
    if let Some((access, credential)) = credential {
        changes = access.while_authenticated(credential, changes);
    }
    let initial = match request.from_revision {
        Some(_) => Vec::new(),
        None => service.watch_snapshot(&caller, &filter, from).await?,
    };
    // Boxed items: the channel's first block of slots is allocated up front for every stream.
    let (tx, rx) = mpsc::channel::<Box<Result<pb::WatchEvent, Status>>>(buffer.max(1));
    let resync = Arc::new(OnceLock::<u64>::new());
    let watch = Watch {
        service,
        caller,
        query,
    };
    let resync_at = resync.clone();
    tokio::spawn(async move {
        // Consumed as sent: the snapshot is not kept for the stream's lifetime.
        for event in initial {
            let message = Box::new(Ok(watch.message(&event, true).await));
            tokio::select! {
                () = shutdown.cancelled() => return,
                sent = tx.send(message) => if sent.is_err() { return },
            }
        }
        let mut cursor = from;
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tx.closed() => return, // the client went away: drop the core watcher too
                _ = heartbeat.tick() => {
                    let beat = pb::WatchEvent {
                        event: Some(Event::Heartbeat(pb::Heartbeat { revision: cursor })),
                        effective: None,
                    };
                    // A full buffer already means the client is behind; no need to add to it.
                    let _ = tx.try_send(Box::new(Ok(beat)));
                }
                item = changes.next() => match item {
                    None => return,
                    Some(Err(error)) => {
                        // A full buffer must not swallow the error: the client resumes instead.
                        if let Err(mpsc::error::TrySendError::Full(_)) =
                            tx.try_send(Box::new(Err(error.into())))
                        {
                            metrics::counter!("summit_watch_resyncs_total").increment(1);
                            let _ = resync_at.set(cursor);
                        }
                        return;
                    }
                    Some(Ok(change)) => {
                        let message = watch.message(&change, false).await;
                        match tx.try_send(Box::new(Ok(message))) {
                            Ok(()) => cursor = change.revision,
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                // Tell the client where it stands rather than drop events.
                                metrics::counter!("summit_watch_resyncs_total").increment(1);
                                let _ = resync_at.set(cursor);
                                return;
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                },
            }
            heartbeat.reset();
        }
    });
    let tail = futures::stream::once(async move {
        resync.get().map(|revision| {
            Ok(pb::WatchEvent {
                event: Some(Event::Resync(pb::Resync {
                    revision: *revision,
                })),
                effective: None,
            })
        })
    })
    .filter_map(|item| async move { item });
    // Counted open while the stream lives (the closure owns the guard).
    let open = crate::telemetry::collector::OpenStream::open("grpc");
    Ok(Box::pin(
        ReceiverStream::new(rx)
            .map(|item| *item)
            .chain(tail)
            .inspect(move |_| {
                let _ = &open;
            }),
    ))
}
