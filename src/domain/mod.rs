//! The decision core: pure, synchronous and deterministic. It does no I/O, holds no AWS SDK types
//! and never reads the clock: `now` is always an argument (the quinn-proto model). Everything that
//! talks to AWS lives in `crate::adapters` and is driven by `crate::app`.

pub mod answer;
pub mod audit;
pub mod breaker;
pub mod decision;
pub mod effect;
pub mod event;
pub mod exemption;
pub mod facts;
pub mod fallback;
pub mod finding;
pub mod html;
pub mod key_id;
pub mod ladder;
pub mod notify;
pub mod operator;
pub mod permissions;
pub mod policy;
pub mod quarantine;
pub mod record;
pub mod security_hub;
pub mod snapshot;
pub mod stage;
pub mod subject;
pub mod tag;
pub mod time;

pub use audit::{AuditEntry, Outcome};
pub use breaker::{BreakerState, Budget, Trip};
pub use decision::{Action, Decision, Gate, PlannedStep};
pub use effect::Effect;
pub use event::OutboundEvent;
pub use exemption::{Exemption, OpenExemption, Verdict};
pub use facts::{AccessKey, Activity, Evidence, Facts, LoginProfile};
pub use fallback::{AutomationRequest, AutomationStatus};
pub use key_id::KeyId;
pub use ladder::{decide, dormancy, dormant_subjects, schedule, Dormancy};
pub use operator::{approve, undo, RefusedBecause};
pub use policy::{BreakerLimits, DeleteMode, Inactivity, Ladder, Policy};
pub use record::{retry_delay, Approval, Intent, Record};
pub use snapshot::{
    Holder, NameHolder, PublicCredential, RestoreOutcome, RestoreReport, ServiceCredential,
    Snapshot,
};
pub use stage::{Stage, Step};
pub use subject::{IdentityArg, Principal, PrincipalKind, Scope, Subject, SubjectKind};
pub use time::{fmt_time, Timestamp};
