//! Keys and the codec: each domain value is JSON in one string attribute.

use super::*;

pub(super) fn subject_pk(subject: &Subject) -> String {
    format!("ID#{}#{}", subject.principal.account, subject.stable_id())
}

pub(super) fn breaker_pk(account: &str) -> String {
    format!("BREAKER#{account}")
}

pub(super) fn sweep_pk(account: &str) -> String {
    format!("SWEEP#{account}")
}

pub(super) fn dry_run_pk(account: &str) -> String {
    format!("DRYRUN#{account}")
}

/// An audit entry under `AUDIT#<time>#<suffix>`.
pub(super) fn audit_item(subject: &Subject, entry: &AuditEntry, suffix: &str) -> PortResult<Item> {
    let mut item = Item::new();
    item.insert("pk".into(), s(&subject_pk(subject)));
    item.insert(
        "sk".into(),
        s(&format!("AUDIT#{}#{suffix}", key_time(entry.at))),
    );
    item.insert("kind".into(), s("audit"));
    item.insert("entry".into(), s(&to_json("PutItem", entry)?));
    // When it was written (the wall clock, whatever `--now` says): orders the entries of one
    // instant, which the key alone leaves to their suffixes.
    item.insert(
        "written".into(),
        s(&key_time(crate::adapters::clock::Clock::system().now())),
    );
    Ok(item)
}

/// Fixed-width UTC with nanoseconds: lexical order is time order (for years 0000-9999).
pub(super) fn key_time(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Unique per write across processes: a random per-process nonce (std's hash seed, drawn from
/// the OS; Lambda containers may share pids) and a process-wide counter.
pub(super) fn unique_id() -> String {
    static NONCE: OnceLock<u64> = OnceLock::new();
    let nonce = NONCE.get_or_init(|| RandomState::new().build_hasher().finish());
    format!("{nonce:016x}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

pub(super) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

/// A string attribute, or "" if absent or not a string.
pub(super) fn attr_s<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

pub(super) fn to_json<T: Serialize>(operation: &str, value: &T) -> PortResult<String> {
    serde_json::to_string(value).map_err(|e| {
        PortError::new(
            ErrorKind::Permanent,
            operation,
            format!("cannot encode: {e}"),
        )
    })
}

/// The JSON in attribute `attr`, decoded; a malformed item is a permanent error naming its key.
pub(super) fn decode<T: DeserializeOwned>(item: &Item, attr: &str) -> PortResult<T> {
    let bad = |why: String| {
        PortError::new(
            ErrorKind::Permanent,
            "decode",
            format!(
                "item pk={} sk={}: {why}",
                attr_s(item, "pk"),
                attr_s(item, "sk")
            ),
        )
    };
    let json = item
        .get(attr)
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| bad(format!("no string attribute '{attr}'")))?;
    serde_json::from_str(json).map_err(|e| bad(format!("attribute '{attr}': {e}")))
}

pub(super) fn decode_all<T: DeserializeOwned>(items: Vec<Item>, attr: &str) -> PortResult<Vec<T>> {
    items.iter().map(|item| decode(item, attr)).collect()
}

pub(super) fn built<T>(result: Result<T, BuildError>) -> PortResult<T> {
    result.map_err(|e| PortError::new(ErrorKind::Permanent, "CreateTable", e.to_string()))
}
