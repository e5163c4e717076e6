//! The batched store writer: the only path by which call results reach the database.
//!
//! The tracker hands it one [`NumberUpdate`] per fact; it writes them in batches (one transaction,
//! one round trip for up to `MAX_BATCH` updates), so 1,000 calls per second cost a few dozen
//! transactions, not thousands. When the database is down the batch is kept and retried with
//! back-off — results are queued in memory until written, never dropped. (Claims stop at the same
//! time, because the runners cannot claim either, so the queue is bounded by the calls in flight.)
//! A batch that fails for another reason (a row the database refuses) is retried row by row so one
//! bad row cannot block every other result; the refused row is logged and skipped.
//!
//! Its metrics: `discador_escritor_cola` moves with the count of unwritten updates (up when one is
//! sent, down when its batch is written), `discador_escritor_lote_segundos` times each batch from
//! the first attempt to the last (retries included: what a result waited for), and every failed
//! attempt counts in `discador_bd_errores_total{operacion="escribir_resultados"}`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, watch};

use crate::metrics::{DbOp, Metrics};
use crate::store::{NumberUpdate, Store};

const MAX_BATCH: usize = 1_000;
/// How long the writer waits for more updates after the first before writing.
const LINGER: Duration = Duration::from_millis(20);

/// Where updates are sent: counts each one from the moment it is sent until it is written, so
/// that "nothing left to write" is never read while an update sits in the channel or in the batch
/// the writer holds during its batching wait.
#[derive(Clone)]
pub struct WriterTx {
    tx: mpsc::UnboundedSender<NumberUpdate>,
    unwritten: Arc<AtomicUsize>,
    /// `discador_escritor_cola`, moved with `unwritten`.
    queue: Gauge,
}

impl WriterTx {
    /// Queues `update` for writing; `false` when the writer is gone (the process is stopping:
    /// recovery at the next start accounts for the call).
    pub fn send(&self, update: NumberUpdate) -> bool {
        self.unwritten.fetch_add(1, Ordering::SeqCst);
        self.queue.inc();
        if self.tx.send(update).is_err() {
            self.unwritten.fetch_sub(1, Ordering::SeqCst);
            self.queue.dec();
            return false;
        }
        true
    }
}

#[cfg(test)]
impl WriterTx {
    /// A sender whose updates a unit test reads itself.
    pub(crate) fn channel() -> (WriterTx, mpsc::UnboundedReceiver<NumberUpdate>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let unwritten = Arc::new(AtomicUsize::new(0));
        (
            WriterTx {
                tx,
                unwritten,
                queue: Gauge::default(),
            },
            rx,
        )
    }
}

/// The writer task, seen from outside.
pub struct WriterHandle {
    /// Sent after every batch written: how many updates are still unwritten.
    written: watch::Receiver<usize>,
    unwritten: Arc<AtomicUsize>,
    /// Ends when every sender is dropped and the queue is written out.
    pub join: tokio::task::JoinHandle<()>,
}

impl WriterHandle {
    /// Updates sent and not yet written.
    pub fn unwritten(&self) -> usize {
        self.unwritten.load(Ordering::SeqCst)
    }

    /// Resolves once every update sent so far is written (or refused by the database).
    pub async fn flushed(&self) {
        let mut written = self.written.clone();
        let _ = written.wait_for(|_| self.unwritten() == 0).await;
    }
}

/// Starts the writer.
pub fn start(store: Store, metrics: Arc<Metrics>) -> (WriterTx, WriterHandle) {
    let (tx, rx) = mpsc::unbounded_channel();
    let unwritten = Arc::new(AtomicUsize::new(0));
    let (written_tx, written_rx) = watch::channel(0usize);
    let queue = metrics.writer_queue();
    let join = tokio::spawn(run(store, rx, written_tx, Arc::clone(&unwritten), metrics));
    (
        WriterTx {
            tx,
            unwritten: Arc::clone(&unwritten),
            queue,
        },
        WriterHandle {
            written: written_rx,
            unwritten,
            join,
        },
    )
}

async fn run(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<NumberUpdate>,
    written: watch::Sender<usize>,
    unwritten: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
) {
    let queue = metrics.writer_queue();
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
        let n = batch.len();
        let started = tokio::time::Instant::now();
        write(&store, &mut batch, &metrics).await;
        metrics.writer_batch(started.elapsed().as_secs_f64());
        queue.dec_by(n as i64);
        let left = unwritten.fetch_sub(n, Ordering::SeqCst) - n;
        let _ = written.send(left);
    }
}

/// Writes `batch` (emptying it), retrying while the database is unavailable.
async fn write(store: &Store, batch: &mut Vec<NumberUpdate>, metrics: &Metrics) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = store.apply(batch).await;
        if result.is_err() {
            metrics.db_error(DbOp::EscribirResultados);
        }
        match result {
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
                        let result = store.apply(&one).await;
                        if result.is_err() {
                            metrics.db_error(DbOp::EscribirResultados);
                        }
                        match result {
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
