#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; the schedule is relative to one shared instant
//! The seeded chaos run's story (`tests/chaos.rs`): one account's identities, the month they
//! live through (sweeps, ticks, the owners' and the operator's actions) and what the owners do.

use chrono::{DateTime, Duration, Utc};
use dormant::domain::Policy;

use super::emulated_world::World;
use super::emulator::emulator;

/// Simulated days; the reference reaches its end state by day 26, the rest is slack for steps
/// that faults pushed back.
pub const DAYS: i64 = 30;

pub const PROTECTED_ROLE: &str = "AWSServiceRoleForSupport";
pub const EXEMPT_ROLE: &str = "exempt-owner";

/// Short waits (5 / 5 / 8 days) so the whole ladder fits in a month; a breaker that never trips,
/// so faults cannot change which steps are allowed.
pub fn chaos_policy() -> Policy {
    let mut p = Policy::default();
    p.ladder.notice_to_quarantine = Duration::days(5);
    p.ladder.quarantine_to_keys = Duration::days(5);
    p.ladder.to_delete = Duration::days(8);
    p.breaker.max_actions_per_run = 10_000;
    p.breaker.min_count = 10_000;
    p
}

/// The identities. In the reference:
/// - `idle-etl` (never used): notice d0, quarantine d5, delete d13;
/// - `comeback-role`: noticed, quarantined, used again d8 → released d9;
/// - `exempt-later`: noticed, quarantined, owner adds `dormant:exempt` d7 → exempt d8;
/// - `undo-me`: noticed, quarantined, operator `undo` d8;
/// - `busy-role` (used daily), `exempt-owner` (exempt by tag from the start) and the
///   service-linked `AWSServiceRoleForSupport` (dormant, protected): never touched;
/// - `leaver` (console password and 2 keys, one turned off by its owner, all unused for months):
///   notice d0, quarantine d5, keys d10 (only the active one), delete d18;
/// - `returner` (same keys): up to keys d10, signs in again d12 → released d13, the key dormant
///   turned off (only it) back on; that key, unused for 200 days, is then covered by the user's
///   30-day cool-off and stays untouched;
/// - `lone-key-user` (uses one key daily, the other unused): key notice d0, deactivate d5,
///   delete d13;
/// - `console-user` (uses a key daily, console password unused): password notice d0, login
///   profile deleted d5.
pub async fn build_chaos_world(w: &World) {
    w.role_with("/", "idle-etl", 200, None, &[("team", "data")])
        .await;
    w.role_with("/", "comeback-role", 200, Some(150), &[]).await;
    w.role_with("/", "exempt-later", 200, None, &[]).await;
    w.role_with("/", "undo-me", 200, None, &[("owner", "ops")])
        .await;
    w.role_with("/", "busy-role", 300, Some(1), &[]).await;
    w.role_with(
        "/",
        EXEMPT_ROLE,
        300,
        None,
        &[
            ("dormant:exempt", "true"),
            ("dormant:exempt-reason", "vendor integration"),
        ],
    )
    .await;
    w.role_with(
        "/aws-service-role/support.amazonaws.com/",
        PROTECTED_ROLE,
        500,
        None,
        &[],
    )
    .await;
    for user in ["leaver", "returner"] {
        w.user_with("/", user, 400, Some(200), true).await;
        w.key(user, &format!("{user}-k1"), 300, Some(200), true)
            .await;
        w.key(user, &format!("{user}-k2"), 300, Some(250), false)
            .await;
    }
    w.user_with("/", "lone-key-user", 400, None, false).await;
    w.key("lone-key-user", "lone-daily", 300, Some(1), true)
        .await;
    w.key("lone-key-user", "lone-unused", 300, Some(100), true)
        .await;
    w.user_with("/staff/", "console-user", 400, Some(100), true)
        .await;
    w.key("console-user", "console-daily", 300, Some(1), true)
        .await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// The identities in use are used (backdated to an hour ago).
    DailyUse,
    Sweep,
    Tick,
    /// The owner tags the role `dormant:exempt`.
    OwnerExempts(&'static str),
    /// The role is used again.
    RoleUsed(&'static str),
    /// The user signs in to the console again.
    UserSignsIn(&'static str),
    /// An operator runs `dormant undo`.
    Undo(&'static str),
}

impl Act {
    /// Acts of the system under test, which faults and crashes may hit.
    pub fn is_system(self) -> bool {
        matches!(self, Act::Sweep | Act::Tick | Act::Undo(_))
    }
}

/// The schedule, in time order: daily use and a sweep at 00:00, ticks at 08:00 and 16:00, the
/// owners' and the operator's actions in between.
pub fn schedule() -> Vec<(i64, i64, Act)> {
    let mut s = Vec::new();
    for day in 0..=DAYS {
        s.push((day, 0, Act::DailyUse));
        s.push((day, 0, Act::Sweep));
        s.push((day, 8, Act::Tick));
        s.push((day, 16, Act::Tick));
    }
    // Two days after the step each acts on: a seed's faults may push that step back by as much.
    s.push((7, 3, Act::OwnerExempts("exempt-later")));
    s.push((8, 3, Act::RoleUsed("comeback-role")));
    s.push((8, 9, Act::Undo("undo-me")));
    s.push((12, 3, Act::UserSignsIn("returner")));
    // Stable: same-time entries keep their order (use before sweep).
    s.sort_by_key(|(d, h, _)| (*d, *h));
    s
}

pub async fn owner_act(w: &World, act: Act, now: DateTime<Utc>) {
    let hour_ago = now - Duration::hours(1);
    match act {
        Act::DailyUse => {
            emulator().backdate_role(&w.id, "busy-role", None, Some(hour_ago));
            for (user, key) in [
                ("lone-key-user", "lone-daily"),
                ("console-user", "console-daily"),
            ] {
                emulator().backdate_access_key(&w.id, user, &w.key_id(key), None, Some(hour_ago));
            }
        }
        Act::OwnerExempts(role) => {
            let until = (now + Duration::days(60)).format("%Y-%m-%d").to_string();
            w.tag_role(
                role,
                &[
                    ("dormant:exempt", "true"),
                    ("dormant:exempt-until", &until),
                    ("dormant:exempt-reason", "quarterly batch"),
                ],
            )
            .await;
        }
        Act::RoleUsed(role) => emulator().backdate_role(&w.id, role, None, Some(now)),
        Act::UserSignsIn(user) => emulator().backdate_user(&w.id, user, None, Some(now)),
        Act::Sweep | Act::Tick | Act::Undo(_) => unreachable!("not an owner act"),
    }
}
