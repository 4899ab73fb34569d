//! Engines built per account when a queued request first needs one.

use super::*;

/// How long an engine built for a queued sweep request is reused: shorter than the assumed
/// role's session (an hour by default), so a Lambda container that lives for hours assumes the
/// role again, and notices one that was revoked, within a session's length.
pub const ON_DEMAND_TTL: std::time::Duration = std::time::Duration::from_secs(45 * 60);

/// The engines a queued sweep request may use: one built at start-up when there is one
/// (`prebuilt`), else one built for that account on demand and kept for [`ON_DEMAND_TTL`], so a
/// batch assumes a role only in the accounts it names and a retried message after a failure
/// gets a fresh AssumeRole.
pub struct OnDemand<'a> {
    factory: &'a EngineFactory,
    prebuilt: Option<&'a Fleet<AwsIam, DynamoStore>>,
    ttl: std::time::Duration,
    built: std::sync::Mutex<HashMap<String, (Arc<AccountEngine>, Instant)>>,
}

impl<'a> OnDemand<'a> {
    pub fn new(
        factory: &'a EngineFactory,
        prebuilt: Option<&'a Fleet<AwsIam, DynamoStore>>,
    ) -> Self {
        OnDemand {
            factory,
            prebuilt,
            ttl: ON_DEMAND_TTL,
            built: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Another reuse period (tests).
    pub fn with_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn cached(&self, account: &str) -> Option<Arc<Engine<AwsIam, DynamoStore>>> {
        let built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        built
            .get(account)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(engine, _)| engine.clone())
    }
}

#[async_trait]
impl Engines<AwsIam, DynamoStore> for OnDemand<'_> {
    async fn engine_for(&self, account: &str) -> Result<Arc<Engine<AwsIam, DynamoStore>>> {
        if let Some(e) = self
            .prebuilt
            .and_then(|f| f.engines.iter().find(|e| e.account() == account))
        {
            return Ok(e.clone());
        }
        if let Some(e) = self.cached(account) {
            return Ok(e);
        }
        let Some(member) = self.factory.members.resolve(account) else {
            return Err(Error::Usage(format!(
                "account {account} is not one dormant manages (see `accounts` and `[organization]` in the configuration)"
            )));
        };
        let engine = self
            .factory
            .engine(&member)
            .await
            .map(Arc::new)
            .map_err(|why| Error::Rejected(format!("account {account} is unreachable: {why}")))?;
        self.built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.to_string(), (engine.clone(), Instant::now()));
        Ok(engine)
    }
}

/// The fleet, built on the first event that needs it (a sweep without fan-out, a tick, a
/// nomination) and kept for the life of the process; see [`FleetSource`].
pub struct LazyFleet<'a> {
    factory: &'a EngineFactory,
    fleet: tokio::sync::OnceCell<Fleet<AwsIam, DynamoStore>>,
}

impl<'a> LazyFleet<'a> {
    pub fn new(factory: &'a EngineFactory) -> Self {
        LazyFleet {
            factory,
            fleet: tokio::sync::OnceCell::new(),
        }
    }
}

#[async_trait]
impl FleetSource<AwsIam, DynamoStore> for LazyFleet<'_> {
    async fn fleet(&self) -> Result<&Fleet<AwsIam, DynamoStore>> {
        self.fleet
            .get_or_try_init(|| async {
                let members = self.factory.accounts().await?;
                Ok(self.factory.fleet(members).await)
            })
            .await
    }
}
