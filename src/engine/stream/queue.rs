//! The queue from the streamer to the applier, bounded twice: in items, and in the bytes of row changes in flight
//! (a semaphore of bytes: the streamer takes an item's weight before sending it, the applier gives it back as it
//! takes the item). With the assembler's parts (at most about `PART_BYTES` each), what the stream holds between the
//! binary log and the applier's batch is bounded in bytes, whatever the size of a source transaction.

use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::engine::stream::binlog::StreamItem;

/// The bytes of row changes (as `RowChange::weight` estimates them) the queue holds at most. An item heavier than
/// that (one huge row) waits for an empty queue and then goes alone.
pub const QUEUE_BYTES: usize = 16 << 20;

type Queued = (StreamItem, Option<OwnedSemaphorePermit>);

/// The streamer's end.
#[derive(Debug, Clone)]
pub struct QueueTx {
    tx: mpsc::Sender<Queued>,
    bytes: Arc<Semaphore>,
    capacity: usize,
}

/// The applier's end.
#[derive(Debug)]
pub struct QueueRx {
    rx: mpsc::Receiver<Queued>,
}

/// The receiver is gone (the applier stopped).
#[derive(Debug)]
pub struct Closed;

/// A queue of at most `items` items and `bytes` bytes of row changes.
pub fn channel(items: usize, bytes: usize) -> (QueueTx, QueueRx) {
    let (tx, rx) = mpsc::channel(items.max(1));
    let capacity = bytes.clamp(1, u32::MAX as usize);
    (QueueTx { tx, bytes: Arc::new(Semaphore::new(capacity)), capacity }, QueueRx { rx })
}

/// What an item holds in row changes.
pub fn weight(item: &StreamItem) -> usize {
    match item {
        StreamItem::Transaction(t) => t.changes.iter().map(|c| c.weight()).sum(),
        StreamItem::Part(changes) => changes.iter().map(|c| c.weight()).sum(),
        StreamItem::Progress(_) => 0,
    }
}

impl QueueTx {
    /// Sends `item` once the queue has room for it, in items and in bytes.
    pub async fn send(&self, item: StreamItem) -> Result<(), Closed> {
        let w = weight(&item).min(self.capacity);
        let permit = match w {
            0 => None,
            w => Some(self.bytes.clone().acquire_many_owned(w as u32).await.map_err(|_| Closed)?),
        };
        self.tx.send((item, permit)).await.map_err(|_| Closed)
    }
}

impl QueueRx {
    /// The next item (its bytes are given back), None once the streamer is gone.
    pub async fn recv(&mut self) -> Option<StreamItem> {
        self.rx.recv().await.map(|(item, _)| item)
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<StreamItem> {
        self.rx.try_recv().ok().map(|(item, _)| item)
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stream::binlog::{ChangeKind, RowChange};
    use mysql_async::Value;

    fn part(bytes: usize) -> StreamItem {
        let row = vec![Value::Bytes(vec![b'x'; bytes])];
        StreamItem::Part(vec![RowChange { table: 0, kind: ChangeKind::Insert, before: None, after: Some(row), after_sql: Vec::new() }])
    }

    #[tokio::test]
    async fn the_streamer_waits_for_bytes_not_only_for_items() {
        let (tx, mut rx) = channel(1000, 100_000);
        tx.send(part(60_000)).await.unwrap();
        // A second 60 kB item does not fit beside the first: it waits until the applier takes the first.
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(200), tx.send(part(60_000))).await;
        assert!(blocked.is_err(), "a second item went past the byte bound");
        assert!(rx.recv().await.is_some());
        tokio::time::timeout(std::time::Duration::from_secs(2), tx.send(part(60_000))).await.unwrap().unwrap();
        // An item heavier than the whole bound goes alone once the queue is empty.
        assert!(rx.recv().await.is_some());
        tokio::time::timeout(std::time::Duration::from_secs(2), tx.send(part(500_000))).await.unwrap().unwrap();
        assert!(rx.recv().await.is_some());
    }
}
