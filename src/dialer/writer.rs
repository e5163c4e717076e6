//! The batched store writer: the only path by which call results reach the database.
//!
//! The tracker hands it one [`NumberUpdate`] per fact; it writes them in batches (one transaction,
//! one round trip for up to `MAX_BATCH` updates), so 1,000 calls per second cost a few dozen
//! transactions, not thousands. When the database is down the batch is kept and retried with
//! back-off — results are queued in memory until written, never dropped. (Claims stop at the same
//! time, because the runners cannot claim either, so the queue is bounded by the calls in flight.)
//! A batch that fails for another reason (a row the database refuses) is retried row by row so one
//! bad row cannot block every other result; the refused row is logged and skipped.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::store::{NumberUpdate, Store};

const MAX_BATCH: usize = 1_000;
/// How long the writer waits for more updates after the first before writing.
const LINGER: Duration = Duration::from_millis(20);

/// The writer task, seen from outside.
pub struct WriterHandle {
    /// How many updates wait to be written (0 once all is written), for tests and `/health`.
    pub pending: watch::Receiver<usize>,
    /// Ends when every sender is dropped and the queue is written out.
    pub join: tokio::task::JoinHandle<()>,
}

/// Starts the writer.
pub fn start(store: Store) -> (mpsc::UnboundedSender<NumberUpdate>, WriterHandle) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (pending_tx, pending_rx) = watch::channel(0usize);
    let join = tokio::spawn(run(store, rx, pending_tx));
    (
        tx,
        WriterHandle {
            pending: pending_rx,
            join,
        },
    )
}

async fn run(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<NumberUpdate>,
    pending: watch::Sender<usize>,
) {
    let mut batch: Vec<NumberUpdate> = Vec::with_capacity(MAX_BATCH);
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(u) => batch.push(u),
                None => return,
            }
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(u)) => batch.push(u),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let _ = pending.send(batch.len() + rx.len());
        write(&store, &mut batch).await;
        let _ = pending.send(rx.len());
    }
}

/// Writes `batch` (emptying it), retrying while the database is unavailable.
async fn write(store: &Store, batch: &mut Vec<NumberUpdate>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.apply(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, pendientes = batch.len(), "base de datos no disponible; resultados en cola");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e, "lote rechazado; se escribe fila por fila");
                for u in batch.drain(..) {
                    let one = [u];
                    let mut backoff = Duration::from_millis(100);
                    loop {
                        match store.apply(&one).await {
                            Ok(()) => break,
                            Err(e) if e.is_transient() => {
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(5));
                            }
                            Err(e) => {
                                tracing::error!(error = %e, update = ?one[0], "actualización descartada por la base de datos");
                                break;
                            }
                        }
                    }
                }
                return;
            }
        }
    }
}
