//! JSON access: every read names its JSON path, so a wrong type says where.

use super::*;

/// A field that is present and not `null`.
pub(super) fn present<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

pub(super) fn join(base: &str, keys: &[&str]) -> String {
    let mut path = base.to_string();
    for k in keys {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(k);
    }
    path
}

/// The value at `keys` under `v`: `Ok(None)` when absent anywhere along the way, `Err` when an
/// intermediate value is not an object.
pub(super) fn value_at<'a>(v: &'a Value, base: &str, keys: &[&str]) -> Parsed<Option<&'a Value>> {
    let mut cur = v;
    for (i, k) in keys.iter().enumerate() {
        match cur {
            Value::Object(m) => match m.get(*k).filter(|x| !x.is_null()) {
                Some(next) => cur = next,
                None => return Ok(None),
            },
            other => {
                return Err(format!(
                    "{} must be an object, not {}",
                    if i == 0 {
                        base.to_string()
                    } else {
                        join(base, &keys[..i])
                    },
                    type_name(other)
                ))
            }
        }
    }
    Ok(Some(cur))
}

/// `base.key`, which must be present and an array.
pub(super) fn required_array<'a>(v: &'a Value, base: &str, key: &str) -> Parsed<&'a Vec<Value>> {
    match present(v, key) {
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(format!(
            "{base}.{key} must be an array, not {}",
            type_name(other)
        )),
        None => Err(format!("{base}.{key} is missing")),
    }
}

pub(super) fn str_at<'a>(v: &'a Value, base: &str, keys: &[&str]) -> Parsed<Option<&'a str>> {
    match value_at(v, base, keys)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "{} must be a string, not {}",
            join(base, keys),
            type_name(other)
        )),
    }
}

pub(super) fn int_at(v: &Value, base: &str, keys: &[&str]) -> Parsed<Option<i64>> {
    match value_at(v, base, keys)? {
        None => Ok(None),
        Some(n) => n.as_i64().map(Some).ok_or_else(|| {
            format!(
                "{} must be an integer, not {}",
                join(base, keys),
                type_name(n)
            )
        }),
    }
}

pub(super) fn bool_at(v: &Value, base: &str, key: &str) -> Parsed<Option<bool>> {
    match present(v, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(format!(
            "{} must be a boolean, not {}",
            join(base, &[key]),
            type_name(other)
        )),
    }
}

/// `Err` when the field is absent, naming it.
pub(super) fn required<'a>(found: Parsed<Option<&'a str>>, field: &str) -> Parsed<&'a str> {
    found?.ok_or_else(|| format!("{field} is missing"))
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Untrusted text in a reason: quoted, escaped and cut to a readable length.
pub(super) fn quote(s: &str) -> String {
    const MAX_CHARS: usize = 80;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// A value of any type, for a reason.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        other => type_name(other).to_string(),
    }
}

/// At most a few quoted items.
pub(super) fn list(items: &[&str]) -> String {
    const MAX_ITEMS: usize = 5;
    let mut out: Vec<String> = items.iter().take(MAX_ITEMS).map(|s| quote(s)).collect();
    if items.len() > MAX_ITEMS {
        out.push(format!("and {} more", items.len() - MAX_ITEMS));
    }
    out.join(", ")
}

/// `Some(size)` once the value's compact JSON encoding is known to exceed `cap` bytes. Iterative,
/// so that a deeply nested value built in memory cannot overflow the stack, and it stops early.
pub(super) fn json_size_over(v: &Value, cap: usize) -> Option<usize> {
    fn str_len(s: &str) -> usize {
        2 + s
            .chars()
            .map(|c| match c {
                '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
                c if (c as u32) < 0x20 => 6,
                c => c.len_utf8(),
            })
            .sum::<usize>()
    }
    let mut total = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        let own = match v {
            Value::Null | Value::Bool(true) => 4,
            Value::Bool(false) => 5,
            Value::Number(n) => n.to_string().len(),
            Value::String(s) => str_len(s),
            Value::Array(items) => {
                stack.extend(items.iter());
                2 + items.len().saturating_sub(1)
            }
            Value::Object(m) => {
                for (k, v) in m {
                    // The key and its colon.
                    total = total.saturating_add(str_len(k) + 1);
                    if total > cap {
                        return Some(total);
                    }
                    stack.push(v);
                }
                2 + m.len().saturating_sub(1)
            }
        };
        total = total.saturating_add(own);
        if total > cap {
            return Some(total);
        }
    }
    None
}
