//! The composition root: builds the engines from the configuration and the AWS SDK
//! configuration. The one module that knows the adapters; the CLI and the Lambda shells share
//! their start-up through it, and `app` never imports it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;

use crate::adapters::access_advisor::{AwsAccessAdvisor, Poll};
use crate::adapters::access_analyzer::AccessAnalyzer;
use crate::adapters::clock::Clock;
use crate::adapters::dynamo::DynamoStore;
use crate::adapters::events::EventBridgePublisher;
use crate::adapters::iam::AwsIam;
use crate::adapters::messenger::AwsMessenger;
use crate::adapters::metrics::ApiCalls;
use crate::adapters::organizations::AwsOrganizations;
use crate::adapters::rate::{IamLimits, RateStats};
use crate::adapters::retry::{classify, RetryPolicy};
use crate::adapters::security_hub::AwsSecurityHub;
use crate::adapters::sqs::SqsSweepQueue;
use crate::adapters::ssm::SsmFallback;
use crate::app::accounts::{partition_of, Members};
use crate::app::engine::{Engine, FallbackSetup, NotifySetup, CONTROLLER};
use crate::app::fleet::{Engines, Fleet, FleetSource};
use crate::app::Mode;
use crate::config::Account;
use crate::config::{Config, Timeouts};
use crate::domain::policy::Policy;
use crate::domain::subject::DEFAULT_PARTITION;
use crate::domain::{PrincipalKind, Step};
use crate::error::{Error, Result};
use crate::ports::Publisher;
use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use tracing::{error, warn};

/// Who the audit trail names for steps this process takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The scheduled/event-driven controller.
    Controller,
    /// An operator at the CLI: their caller ARN.
    Caller,
}

pub struct Assembly {
    pub fleet: Fleet<AwsIam, DynamoStore>,
    /// Every AWS request the fleet's clients send, by operation.
    pub api_calls: ApiCalls,
    /// The account dormant runs in (where its table lives).
    pub account: String,
    pub caller_arn: String,
    /// What built the fleet: lists the accounts again and wires single accounts on demand.
    pub factory: EngineFactory,
}

/// Everything an account's engine is built from, kept after start-up so that the Lambda can list
/// the accounts again for each fanned-out sweep and build an engine for an account the fleet does not hold.
pub struct EngineFactory {
    /// The controller's own configuration, SDK retries off.
    aws: SdkConfig,
    calls: ApiCalls,
    /// The account dormant runs in (where its table lives).
    pub account: String,
    pub caller_arn: String,
    pub members: Members,
    policy: Policy,
    actor: String,
    publisher: Arc<dyn Publisher>,
    fallback: Option<AutomationConfig>,
    /// `[security_hub]`, when enabled.
    security_hub: Option<crate::config::SecurityHub>,
    /// `[notify]`, when enabled: sent from the controller's account.
    notify: Option<NotifySetup>,
    table: String,
    retry: RetryPolicy,
    /// Accounts worked on at once.
    concurrency: usize,
    /// Identities of one account worked on at once.
    identity_concurrency: usize,
    /// Engines for a preview (see [`EngineFactory::previewing`]).
    preview: bool,
    /// Each account's IAM rate limits, kept across the engines built for it (a Lambda rebuilds
    /// an on-demand engine after [`ON_DEMAND_TTL`]; the rate it found stays).
    limits: AccountLimits,
    /// The clock the runs' `now` comes from (`--now` fixes it): engines check intents' leases
    /// by it.
    pub clock: Clock,
}

/// The IAM rate limits of every account a factory has built an engine for.
#[derive(Debug, Clone, Default)]
pub struct AccountLimits(Arc<std::sync::Mutex<HashMap<String, Arc<IamLimits>>>>);

impl AccountLimits {
    /// `account`'s limits, made on first use.
    pub fn of(&self, account: &str) -> Arc<IamLimits> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(account.to_string()).or_default().clone()
    }

    /// What the limiters of every account have seen so far: requests, throttles.
    pub fn stats(&self) -> RateStats {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.values().fold(RateStats::default(), |sum, l| {
            let s = l.stats();
            RateStats {
                requests: sum.requests + s.requests,
                throttles: sum.throttles + s.throttles,
                rate: sum.rate.or(s.rate),
            }
        })
    }
}

// Every client counts its requests through the same interceptor.
macro_rules! client {
    ($calls:expr, $sdk:ident, $conf:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from($conf)
                .interceptor($calls.clone())
                .build(),
        )
    };
}

mod notify;
mod on_demand;

use notify::{notify_setup, signed_links};
pub use on_demand::{LazyFleet, OnDemand, ON_DEMAND_TTL};

/// Resolves the caller (STS), protects the caller's own identity, lists the accounts (config and,
/// when enabled, Organizations) and builds one engine per account with the event publisher and,
/// when an automation role is configured, the SSM fallback.
pub async fn assemble(
    config: &Config,
    aws: &SdkConfig,
    actor: Actor,
    retry: RetryPolicy,
) -> Result<Assembly> {
    EngineFactory::new(config, aws, actor, retry)
        .await?
        .assemble()
        .await
}

impl EngineFactory {
    /// Lists the accounts and builds the fleet (see [`assemble`]).
    pub async fn assemble(self) -> Result<Assembly> {
        let members = self.accounts().await?;
        let fleet = self.fleet(members).await;
        Ok(Assembly {
            fleet,
            api_calls: self.calls.clone(),
            account: self.account.clone(),
            caller_arn: self.caller_arn.clone(),
            factory: self,
        })
    }

    /// Engines for a preview (`--dry-run`, [`Mode::Preview`]): read-only IAM and table, no event
    /// publisher, no SSM Automation; they decide as a dry run and write nothing anywhere.
    pub fn previewing(mut self) -> Self {
        self.preview = true;
        self.policy.dry_run = true;
        self
    }

    /// What the engines' runs may change.
    pub fn mode(&self) -> Mode {
        if self.preview {
            Mode::Preview
        } else {
            Mode::of(&self.policy)
        }
    }

    pub async fn new(
        config: &Config,
        aws: &SdkConfig,
        actor: Actor,
        retry: RetryPolicy,
    ) -> Result<EngineFactory> {
        let aws = sdk_config(aws, &config.timeouts);
        let calls = ApiCalls::default();
        let caller = client!(calls, aws_sdk_sts, &aws)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify("GetCallerIdentity", e))?;
        let account = caller.account().unwrap_or_default().to_string();
        let caller_arn = caller.arn().unwrap_or("unknown").to_string();
        let mut policy = config.policy.clone();
        // The roles the configuration names are already there (`Config`).
        if let Some(me) = controller_identity(&caller_arn) {
            policy.exemptions.controller.push(me);
        }
        let actor = match actor {
            Actor::Controller => CONTROLLER.to_string(),
            Actor::Caller => caller_arn.clone(),
        };
        let publisher: Arc<dyn Publisher> = Arc::new(EventBridgePublisher::new(
            client!(calls, aws_sdk_eventbridge, &aws),
            config.event_bus.clone(),
            retry,
        ));
        let fallback = config
            .automation_role
            .as_ref()
            .map(|role| AutomationConfig {
                automation_role: role.clone(),
                always: config.ssm_steps.clone(),
            });
        let notify = match &config.notify {
            Some(n) => {
                let setup = notify_setup(n, &aws, &calls, retry).await?;
                Some(match signed_links(config, &aws, &calls).await? {
                    Some(links) => setup.with_links(Arc::new(links)),
                    None => setup,
                })
            }
            None => None,
        };
        Ok(EngineFactory {
            members: Members::new(config, &account, partition_of(&caller_arn)),
            aws,
            calls,
            account,
            caller_arn,
            policy,
            actor,
            publisher,
            fallback,
            security_hub: config.security_hub.clone(),
            notify,
            table: config.table.clone(),
            retry,
            concurrency: config.max_concurrent_accounts,
            identity_concurrency: config.max_concurrent_identities,
            preview: false,
            limits: AccountLimits::default(),
            clock: Clock::system(),
        })
    }

    /// The state table in the controller's account (answer links' single-use claims).
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(
            client!(self.calls, aws_sdk_dynamodb, &self.aws),
            self.table.clone(),
            self.retry,
        )
    }

    /// SSM in the controller's account (the answer links' signing key).
    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        client!(self.calls, aws_sdk_ssm, &self.aws)
    }

    /// The IAM rate limits of every account, shared by every engine this factory builds.
    pub fn iam_limits(&self) -> &AccountLimits {
        &self.limits
    }

    /// Every AWS request sent through this factory's clients, by operation.
    pub fn api_calls(&self) -> &ApiCalls {
        &self.calls
    }

    /// The accounts of a run: the configured ones and, when enabled, the ACTIVE ones of the
    /// organization (`ListAccounts`, every page, asked again on each call).
    pub async fn accounts(&self) -> Result<Vec<Account>> {
        self.members.list(Some(&self.directory())).await
    }

    /// AWS Organizations, asked only when `[organization] enabled = true`.
    pub fn directory(&self) -> AwsOrganizations {
        AwsOrganizations::new(
            client!(self.calls, aws_sdk_organizations, &self.aws),
            self.retry,
        )
    }

    /// The sweep queue at `queue_url`, for a fanned-out sweep.
    pub fn sweep_queue(&self, queue_url: &str) -> SqsSweepQueue {
        SqsSweepQueue::new(
            client!(self.calls, aws_sdk_sqs, &self.aws),
            queue_url,
            self.retry,
        )
    }

    /// One engine per account; AssumeRole into `max_concurrent_accounts` accounts at a time. An
    /// account that cannot be reached is recorded as unreachable.
    pub async fn fleet(&self, members: Vec<Account>) -> Fleet<AwsIam, DynamoStore> {
        let built: Vec<_> = stream::iter(members)
            .map(|member| async move {
                let engine = self.engine(&member).await;
                (member.id, engine)
            })
            .buffered(self.concurrency.max(1))
            .collect()
            .await;
        let mut fleet = Fleet {
            engines: Vec::new(),
            unreachable: Vec::new(),
            concurrency: self.concurrency,
            // Enrichment is optional: a couple of retries, not the Lambda's whole budget.
            analyzer: Some(Arc::new(AccessAnalyzer::new(
                client!(self.calls, aws_sdk_accessanalyzer, &self.aws),
                RetryPolicy {
                    max_times: self.retry.max_times.min(2),
                    ..self.retry
                },
            ))),
        };
        for (id, engine) in built {
            match engine {
                Ok(e) => fleet.engines.push(Arc::new(e)),
                Err(why) => {
                    warn!(account = %id, %why, "cannot reach account");
                    fleet.unreachable.push((id, why));
                }
            }
        }
        fleet
    }

    /// The engine for one account: its IAM through the role it names (the controller's own
    /// credentials for its own account), state, events and automation in the controller's account.
    pub async fn engine(
        &self,
        member: &Account,
    ) -> std::result::Result<Engine<AwsIam, DynamoStore>, String> {
        // Roles cannot be assumed across partitions: refuse before trying.
        let partition = self.members.partition.as_str();
        if let Some(role) = &member.role_arn {
            let of_role = partition_of(role);
            if of_role != partition {
                return Err(format!(
                    "{role} is in partition {of_role}, but dormant runs in {partition}: a role cannot be assumed across partitions (deploy a controller in {of_role})"
                ));
            }
        }
        let member_aws = match (&member.role_arn, member.id == self.account) {
            (None, true) => self.aws.clone(),
            (Some(role), _) => {
                let assumed = assume(&self.aws, role).await?;
                // Every action of this engine is taken as account `member.id`: prove it.
                let who = client!(self.calls, aws_sdk_sts, &assumed)
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "GetCallerIdentity as {role}: {}",
                            classify("GetCallerIdentity", e)
                        )
                    })?;
                match who.account() {
                    Some(id) if id == member.id => assumed,
                    other => {
                        return Err(format!(
                            "{role} answers as account {}, not the configured {}: refused",
                            other.unwrap_or("unknown"),
                            member.id
                        ))
                    }
                }
            }
            (None, false) => return Err("no role to assume (accounts[].role)".to_string()),
        };
        let mut iam = AwsIam::new(
            client!(self.calls, aws_sdk_iam, &member_aws),
            member.id.clone(),
            self.retry,
        )
        .in_partition(partition)
        // One limiter per account and API class, shared by every worker (docs/design.md,
        // 'Rate limits'), so a throttle slows them all instead of each request retrying alone.
        .with_limits(self.limits.of(&member.id));
        let mut store = DynamoStore::new(
            client!(self.calls, aws_sdk_dynamodb, &self.aws),
            self.table.clone(),
            self.retry,
        )
        .in_partition(partition);
        if self.preview {
            iam = iam.read_only();
            store = store.read_only();
        }
        let clock = self.clock;
        let mut engine = Engine::new(iam, store, self.policy.clone(), self.actor.clone())
            .with_concurrency(self.identity_concurrency)
            .with_wall_clock(Arc::new(move || clock.now()));
        if self.policy.inactivity.confirm_with_access_advisor {
            // Access Advisor reports on the member account's principals: its own IAM client.
            engine = engine.with_advisor(Arc::new(AwsAccessAdvisor::new(
                client!(self.calls, aws_sdk_iam, &member_aws),
                self.retry,
                Poll::default(),
            )));
        }
        if self.preview {
            // Nothing that could write: no publisher, no automation.
            return Ok(engine.previewing());
        }
        engine = engine.with_publisher(self.publisher.clone());
        if let Some(n) = &self.notify {
            engine = engine.with_notify(n.clone());
        }
        // With the `default` product, Security Hub takes a finding only from the account it is
        // about: each account's findings are imported through its own credentials.
        if let Some(sh) = &self.security_hub {
            let region = match sh
                .region
                .clone()
                .or_else(|| member_aws.region().map(|r| r.to_string()))
            {
                Some(r) => r,
                None => {
                    return Err(
                        "[security_hub] needs a region: set security_hub.region or AWS_REGION"
                            .to_string(),
                    )
                }
            };
            let in_partition = crate::domain::subject::partition_of_region(&region);
            if in_partition != partition {
                return Err(format!(
                    "security_hub.region {region} is in partition {in_partition}, but dormant runs in {partition}"
                ));
            }
            let conf = aws_sdk_securityhub::config::Builder::from(&member_aws)
                .region(aws_sdk_securityhub::config::Region::new(region.clone()))
                .interceptor(self.calls.clone())
                .build();
            engine = engine.with_security_hub(Arc::new(AwsSecurityHub::new(
                aws_sdk_securityhub::Client::from_conf(conf),
                region,
                self.retry,
            )));
        }
        // The documents act on an identity by name in the account whose SSM runs them: each
        // account's steps run there, through its own credentials, as its own automation role
        // (the member stack deploys the same documents and role name in every account).
        if let Some(f) = &self.fallback {
            let automation_role = if member.id == self.account {
                f.automation_role.clone()
            } else {
                role_in_account(&f.automation_role, &member.id)
            };
            engine = engine.with_fallback(FallbackSetup {
                runner: Arc::new(SsmFallback::new(
                    client!(self.calls, aws_sdk_ssm, &member_aws),
                    self.retry,
                )),
                automation_role,
                always: f.always.clone(),
                starts: true,
            });
        }
        Ok(engine)
    }
}

/// The engine of one account, as the shells build it.
pub type AccountEngine = Engine<AwsIam, DynamoStore>;

/// `dormant init`: creates the state table unless it exists; `true` when it was created.
pub async fn create_table(config: &Config, aws: &SdkConfig, retry: RetryPolicy) -> Result<bool> {
    let aws = sdk_config(aws, &config.timeouts);
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config.table.clone(),
        retry,
    );
    Ok(store.init().await?)
}

/// `dormant init`: creates dormant's quarantine policy in the caller's account unless it is
/// there; its ARN and whether it was created.
pub async fn create_quarantine_policy(
    config: &Config,
    aws: &SdkConfig,
    retry: RetryPolicy,
) -> Result<(String, bool)> {
    let aws = sdk_config(aws, &config.timeouts);
    let caller = aws_sdk_sts::Client::new(&aws)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify("GetCallerIdentity", e))?;
    let account = caller.account().unwrap_or_default();
    let partition = caller
        .arn()
        .and_then(|a| a.split(':').nth(1))
        .unwrap_or(DEFAULT_PARTITION);
    let iam = AwsIam::new(aws_sdk_iam::Client::new(&aws), account, retry).in_partition(partition);
    Ok(iam.ensure_quarantine_policy().await?)
}

/// `[fallback]` as configured: the controller account's automation role and the steps always run
/// through SSM. Each account's engine gets its own runner and role from it.
struct AutomationConfig {
    automation_role: String,
    always: Vec<Step>,
}

/// The same role (path and name) in another account of the same partition.
fn role_in_account(role_arn: &str, account: &str) -> String {
    let mut parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    if parts.len() == 6 {
        parts[4] = account;
    }
    parts.join(":")
}

/// The SDK settings every client dormant builds shares: no SDK retries (`RetryPolicy` retries
/// with backoff and jitter; SDK retries underneath would multiply it) and the configured timeouts
/// (`[timeouts]`), so an endpoint that accepts a connection and never answers fails the call.
pub fn sdk_config(aws: &SdkConfig, timeouts: &Timeouts) -> SdkConfig {
    aws.to_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .read_timeout(timeouts.read)
                .operation_attempt_timeout(timeouts.operation)
                .operation_timeout(timeouts.operation)
                .build(),
        )
        .build()
}

/// Credentials for `role`, assumed now so that a denied AssumeRole is reported for its account
/// up front instead of failing every call later.
async fn assume(aws: &SdkConfig, role: &str) -> std::result::Result<SdkConfig, String> {
    use aws_credential_types::provider::ProvideCredentials;
    let provider = aws_config::sts::AssumeRoleProvider::builder(role)
        .configure(aws)
        .session_name("dormant")
        .build()
        .await;
    let first = provider.provide_credentials().await.map_err(|e| {
        format!(
            "AssumeRole {role}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(e)
        )
    })?;
    let primed = Primed {
        first: std::sync::Mutex::new(Some(first)),
        then: provider,
    };
    Ok(aws
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(primed),
        )
        .build())
}

/// Hands out the credentials the up-front AssumeRole already fetched, then asks the provider as
/// usual (which refreshes them): one AssumeRole per account at start-up instead of two.
#[derive(Debug)]
struct Primed {
    first: std::sync::Mutex<Option<aws_credential_types::Credentials>>,
    then: aws_config::sts::AssumeRoleProvider,
}

impl aws_credential_types::provider::ProvideCredentials for Primed {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).take();
        match first {
            Some(credentials) => {
                aws_credential_types::provider::future::ProvideCredentials::ready(Ok(credentials))
            }
            None => self.then.provide_credentials(),
        }
    }
}

/// The role or user dormant runs as, from the caller ARN: always protected.
pub fn controller_identity(arn: &str) -> Option<(PrincipalKind, String)> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let mut parts = resource.split('/');
    match parts.next()? {
        "assumed-role" => Some((PrincipalKind::Role, parts.next()?.to_string())),
        "user" => Some((PrincipalKind::User, parts.next_back()?.to_string())),
        "role" => Some((PrincipalKind::Role, parts.next_back()?.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_account_runs_the_documents_as_its_own_automation_role() {
        assert_eq!(
            role_in_account(
                "arn:aws-cn:iam::111122223333:role/ops/dormant-automation",
                "444455556666"
            ),
            "arn:aws-cn:iam::444455556666:role/ops/dormant-automation"
        );
    }

    #[test]
    fn the_controller_is_found_from_the_caller_arn() {
        assert_eq!(
            controller_identity("arn:aws:sts::123456789012:assumed-role/dormant-controller/lambda"),
            Some((PrincipalKind::Role, "dormant-controller".into()))
        );
        assert_eq!(
            controller_identity("arn:aws:iam::123456789012:user/ops/alice"),
            Some((PrincipalKind::User, "alice".into()))
        );
        assert_eq!(controller_identity("arn:aws:iam::123456789012:root"), None);
    }
}
