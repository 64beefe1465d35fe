//! The archive: `P_EVENTS`, one message per accepted event (subject `P.events.TOKEN`, one message per
//! subject, kept until the retention task prunes it, `retention.rs`), published with the event id as `Nats-Msg-Id` so
//! the stream itself drops a copy sent again within its duplicate window. Digests read their
//! members' events here; a body is immutable, so any replica may answer.

use async_nats::jetstream::stream::DirectGetErrorKind;
type Stream = async_nats::jetstream::stream::Stream<()>;

use super::cluster::{Cluster, failed, from_json, msg_id, to_json};
use super::wire::EventMsg;
use crate::store::StoreError;

pub struct Events {
    cluster: Cluster,
    stream: Stream,
}

impl Events {
    pub async fn open(c: &Cluster) -> Result<Events, StoreError> {
        Ok(Events {
            stream: c.stream(&c.names.events_stream()).await?,
            cluster: c.clone(),
        })
    }

    /// Publishes the archive record of one event; the returned future resolves when it is stored.
    pub async fn publish(
        &self,
        e: &EventMsg,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, StoreError> {
        self.cluster
            .publish(
                self.cluster.names.event_subject(&e.id),
                to_json(e),
                Some(&msg_id(&e.id)),
            )
            .await
    }

    /// The archived event `id`, if the archive still has it.
    pub async fn get(&self, id: &str) -> Result<Option<EventMsg>, StoreError> {
        match self
            .stream
            .direct_get_last_for_subject(self.cluster.names.event_subject(id))
            .await
        {
            Ok(m) => Ok(Some(from_json("archived event", &m.payload)?)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed("reading the archive", e)),
        }
    }
}
