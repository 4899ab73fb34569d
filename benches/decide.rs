//! Time per identity through the decision core, over the benchmark's seeded mix (`bench/seed.py`:
//! half dormant, keys, passwords, exempt and protected ones) at every stage of the ladder.
//! `cargo bench --bench decide`; criterion reports identities per second (`elem/s`); the target
//! is under 5 µs per identity.

use std::collections::BTreeMap;
use std::hint::black_box;

use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dormant::domain::{
    decide, dormant_subjects, AccessKey, Budget, Facts, LoginProfile, Policy, Principal, Record,
    Subject,
};

const ACCOUNT: &str = "123456789012";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn days_ago(n: i64) -> DateTime<Utc> {
    now() - Duration::days(n)
}

fn key(id: &str, created: i64, used: Option<i64>, active: bool) -> AccessKey {
    AccessKey {
        id: id.into(),
        active,
        created_at: days_ago(created),
        last_used_at: used.map(days_ago),
    }
}

/// Identity `i` of the seeded mix (profile `i % 20`, as in `bench/seed.py`).
fn identity(i: usize) -> Facts {
    let profile = i % 20;
    let mut tags = BTreeMap::new();
    let (kind_is_role, path) = match profile {
        9 => (true, "/aws-service-role/"),
        _ => (profile < 10, "/"),
    };
    let name = format!("id-{i}");
    let principal = if kind_is_role {
        Principal::role(ACCOUNT, path, &name)
    } else {
        Principal::user(ACCOUNT, path, &name)
    };
    let mut facts = Facts {
        principal,
        unique_id: None,
        created_at: days_ago(400),
        tags: BTreeMap::new(),
        role_last_used: None,
        password_last_used: None,
        login_profile: None,
        access_keys: Vec::new(),
        has_quarantine_policy: false,
        advisor_last_used: None,
        bulk: false,
    };
    match profile {
        0 => facts.created_at = days_ago(200),
        1 => facts.role_last_used = Some(days_ago(120)),
        2 => facts.role_last_used = Some(days_ago(300)),
        3 => facts.role_last_used = Some(days_ago(150)),
        4 => facts.role_last_used = Some(days_ago(2)),
        5 => facts.role_last_used = Some(days_ago(30)),
        6 => facts.role_last_used = Some(days_ago(60)),
        7 => facts.created_at = days_ago(20),
        8 | 18 => {
            tags.insert("dormant:exempt".to_string(), "true".to_string());
        }
        10 => {
            facts.password_last_used = Some(days_ago(200));
            facts.login_profile = Some(LoginProfile {
                created_at: days_ago(390),
            });
            facts.access_keys = vec![
                key("AKIAOLD", 380, Some(150), true),
                key("AKIANEVER", 380, None, false),
            ];
        }
        11 => facts.created_at = days_ago(300),
        12 => facts.access_keys = vec![key("AKIAIDLE", 380, Some(120), true)],
        13 => facts.access_keys = vec![key("AKIANEW", 200, None, true)],
        14 => {
            facts.password_last_used = Some(days_ago(3));
            facts.login_profile = Some(LoginProfile {
                created_at: days_ago(390),
            });
            facts.access_keys = vec![key("AKIAUSED", 380, Some(1), true)];
        }
        15 => facts.access_keys = vec![key("AKIATEN", 380, Some(10), true)],
        16 => {
            facts.created_at = days_ago(20);
            facts.access_keys = vec![key("AKIAYOUNG", 20, None, true)];
        }
        17 | 19 => {
            facts.access_keys = vec![
                key("AKIAACTIVE", 380, Some(1), true),
                key("AKIASTALE", 380, Some(60), true),
            ];
        }
        _ => {}
    }
    facts.tags = tags;
    facts
}

fn bench(c: &mut Criterion) {
    let policy = Policy::default();
    let budget = Budget {
        tripped: false,
        actions_this_run: 0,
        quarantines_in_window: 0,
        identities_in_account: 10_000,
    };
    let population: Vec<Facts> = (0..1000).map(identity).collect();
    // Every subject a sweep decides for: the whole principal and each dormant credential, new...
    let fresh: Vec<(Record, &Facts)> = population
        .iter()
        .flat_map(|f| {
            let mut subjects = vec![Subject::whole(f.principal.clone())];
            subjects.extend(dormant_subjects(f, &policy, now()));
            subjects.into_iter().map(move |s| (Record::new(s), f))
        })
        .collect();
    // ...and the same a week after their notice, when the quarantine is due.
    let noticed: Vec<(Record, &Facts)> = fresh
        .iter()
        .map(|(r, f)| {
            let d = decide(r, Some(f), &policy, &budget, now() - Duration::days(8));
            (d.after().cloned().unwrap_or_else(|| r.clone()), *f)
        })
        .collect();

    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(population.len() as u64));
    group.bench_function("sweep: candidates + decide per identity", |b| {
        b.iter(|| {
            for f in &population {
                let subjects = dormant_subjects(black_box(f), &policy, now());
                let whole = Record::new(Subject::whole(f.principal.clone()));
                black_box(decide(&whole, Some(f), &policy, &budget, now()));
                for s in subjects {
                    black_box(decide(&Record::new(s), Some(f), &policy, &budget, now()));
                }
            }
        })
    });
    group.throughput(Throughput::Elements(noticed.len() as u64));
    group.bench_function("tick: decide per noticed subject", |b| {
        b.iter(|| {
            for (r, f) in &noticed {
                black_box(decide(black_box(r), Some(f), &policy, &budget, now()));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
