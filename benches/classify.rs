//! Events per second through the classifier, over every fixture in `tests/fixtures/events/`.
//! `cargo bench --bench classify`; criterion reports the rate as `elem/s`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dormant::inbound::eventbridge::{classify, classify_bytes, ClassifyRules};
use serde_json::Value;

fn fixtures() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .map(|e| e.expect("fixture entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).expect("fixture"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let rules = ClassifyRules {
        config_rules: vec![
            "iam-user-unused-credentials-check".into(),
            "iam-role-last-used".into(),
        ],
    };
    let raw = fixtures();
    // The Lambda runtime hands the handler a parsed value; the CLI reads bytes.
    let values: Vec<Value> = raw
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect();

    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(raw.len() as u64));
    group.bench_function("bytes", |b| {
        b.iter(|| {
            for event in &raw {
                black_box(classify_bytes(black_box(event), &rules));
            }
        })
    });
    group.throughput(Throughput::Elements(values.len() as u64));
    group.bench_function("value", |b| {
        b.iter(|| {
            for event in &values {
                black_box(classify(black_box(event), &rules));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
