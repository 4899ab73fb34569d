//! Hand-written fakes of ports the emulator cannot stand in for.

use std::sync::Mutex;

use async_trait::async_trait;
use dormant::domain::{AutomationRequest, AutomationStatus, OutboundEvent};
use dormant::ports::{Fallback, PortResult, Publisher};

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

/// What happens in the world while an execution is being stopped (the test's doing).
pub type OnStop = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

/// SSM Automation as moto lacks it: records starts and stops, and reports what the test sets
/// (running until told otherwise; cancelled once stopped).
#[derive(Default)]
pub struct FakeSsm {
    pub started: Mutex<Vec<AutomationRequest>>,
    pub status: Mutex<Option<AutomationStatus>>,
    pub stopped: Mutex<Vec<String>>,
    /// Run once, at the first stop.
    pub on_stop: Mutex<Option<OnStop>>,
}

#[async_trait]
impl Fallback for FakeSsm {
    async fn start(&self, request: &AutomationRequest) -> PortResult<String> {
        let mut started = self.started.lock().unwrap();
        started.push(request.clone());
        Ok(format!("exec-{}", started.len()))
    }
    async fn status(&self, _id: &str) -> PortResult<AutomationStatus> {
        Ok(self
            .status
            .lock()
            .unwrap()
            .clone()
            .unwrap_or(AutomationStatus::Running))
    }
    async fn stop(&self, id: &str) -> PortResult<()> {
        let hook = self.on_stop.lock().unwrap().take();
        if let Some(hook) = hook {
            hook().await;
        }
        self.stopped.lock().unwrap().push(id.to_string());
        *self.status.lock().unwrap() = Some(AutomationStatus::Failed("Cancelled".into()));
        Ok(())
    }
}
