//! Hand-written fakes of ports the emulator cannot stand in for.

use std::sync::Mutex;

use async_trait::async_trait;
use dormant::domain::OutboundEvent;
use dormant::ports::{PortResult, Publisher};

/// A publisher that keeps every batch it is given.
#[derive(Default)]
pub struct Published(Mutex<Vec<Vec<OutboundEvent>>>);

impl Published {
    /// Every event published, in order.
    pub fn events(&self) -> Vec<OutboundEvent> {
        self.0.lock().unwrap().concat()
    }

    /// How many events each `publish` call carried.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.0.lock().unwrap().iter().map(Vec::len).collect()
    }
}

#[async_trait]
impl Publisher for Published {
    async fn publish(&self, events: &[OutboundEvent]) -> PortResult<()> {
        self.0.lock().unwrap().push(events.to_vec());
        Ok(())
    }
}
