//! Suppressed notifications: `P_SUPPRESSED`, an append-only log of the deliveries the notification
//! pipeline did not send on purpose (silenced, duplicate, not news...), kept until the retention
//! task prunes it (`retention.rs`: `store.retain_events`, oldest first). A suppression is recorded before its delivery is acked out of
//! the outbox, so it is never lost between the two (at worst recorded twice after a crash, and
//! listed once: the listing keeps the newest record per delivery).

use std::collections::HashSet;

use async_nats::jetstream::stream::LastRawMessageErrorKind;
type Stream = async_nats::jetstream::stream::Stream<()>;

use super::cluster::{Cluster, failed, from_json, to_json};
use crate::store::{StoreError, Suppressed};

pub struct SuppressedLog {
    cluster: Cluster,
    stream: Stream,
}

impl SuppressedLog {
    pub async fn open(c: &Cluster) -> Result<SuppressedLog, StoreError> {
        Ok(SuppressedLog {
            stream: c.stream(&c.names.suppressed_stream()).await?,
            cluster: c.clone(),
        })
    }

    pub async fn put(&self, s: &Suppressed) -> Result<(), StoreError> {
        self.cluster
            .publish_acked(self.cluster.names.suppressed_subject(), to_json(s), None)
            .await
            .map(|_| ())
    }

    /// Up to `limit` records, newest first.
    pub async fn newest(&self, limit: usize) -> Result<Vec<Suppressed>, StoreError> {
        let state = self
            .stream
            .get_info()
            .await
            .map_err(|e| failed("reading suppressed notifications", e))?
            .state;
        let mut out: Vec<Suppressed> = Vec::new();
        let mut ids = HashSet::new();
        let mut seq = state.last_sequence;
        while seq >= state.first_sequence.max(1) && out.len() < limit && state.messages > 0 {
            match self.stream.get_raw_message(seq).await {
                Ok(m) => {
                    let s: Suppressed = from_json("suppressed record", &m.payload)?;
                    if ids.insert(s.id.clone()) {
                        out.push(s);
                    }
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(failed("reading suppressed notifications", e)),
            }
            seq -= 1;
        }
        out.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }
}
