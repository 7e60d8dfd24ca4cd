//! Group commit: batches that arrive while a transaction runs wait for the next one, which takes
//! them all (up to [`MAX_GROUP_SAMPLES`]), so a thousand agents pushing at once cost a few
//! transactions, not a thousand; at low load a batch goes alone, at once.

use powerstack_api::site::BatchStoredV1;
use tokio::sync::{mpsc, oneshot};

use super::{BatchIn, IngestLimits};
use crate::store::{Store, StoreError};

/// The most samples one transaction takes.
pub const MAX_GROUP_SAMPLES: usize = 50_000;
/// The most batches waiting before a push waits for room.
pub const QUEUE_BATCHES: usize = 20_000;

type Reply = oneshot::Sender<Result<BatchStoredV1, StoreError>>;

/// The queue in front of the store's writer.
#[derive(Clone, Debug)]
pub struct Ingester {
    tx: mpsc::Sender<(BatchIn, Reply)>,
}

impl Ingester {
    /// The queue, and its writer running on the current runtime until every sender is dropped.
    pub fn spawn(store: Store, limits: IngestLimits) -> Ingester {
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        tokio::spawn(writer(store, limits, rx));
        Ingester { tx }
    }

    /// Stores `batch` with the next group; its answer.
    pub async fn submit(&self, batch: BatchIn) -> Result<BatchStoredV1, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((batch, reply))
            .await
            .map_err(|_| StoreError::Unavailable("the site is stopping".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the site is stopping".into()))?
    }
}

async fn writer(store: Store, limits: IngestLimits, mut rx: mpsc::Receiver<(BatchIn, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut samples = first.0.batch.samples.len();
        let mut group = vec![first];
        while samples < MAX_GROUP_SAMPLES {
            match rx.try_recv() {
                Ok(next) => {
                    samples += next.0.batch.samples.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<BatchIn>, Vec<Reply>) = group.into_iter().unzip();
        match store.ingest_group(&batches, &limits).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                let message = match e {
                    StoreError::Unavailable(m) => m,
                    other => other.to_string(),
                };
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}
