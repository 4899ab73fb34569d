//! Who the ladder acts on: a principal (role or user) and, for credential-level findings, one of its
//! credentials.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The two kinds of IAM principal dormant manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    Role,
    User,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Role => "role",
            PrincipalKind::User => "user",
        }
    }
}

/// A role or user, named the way IAM names it. `path` always starts and ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Principal {
    pub account: String,
    pub kind: PrincipalKind,
    pub path: String,
    pub name: String,
    /// `aws`, `aws-cn`, `aws-us-gov`…: from the caller's ARN or the input's. Not stored when
    /// `aws`, so records and keys written before partitions were known stay as they were.
    #[serde(
        default = "default_partition",
        skip_serializing_if = "is_default_partition"
    )]
    pub partition: String,
}

/// The partition of the commercial regions.
pub const DEFAULT_PARTITION: &str = "aws";

fn default_partition() -> String {
    DEFAULT_PARTITION.to_string()
}

fn is_default_partition(p: &str) -> bool {
    p == DEFAULT_PARTITION
}

/// `aws`, `aws-cn`, `aws-us-gov`, `aws-iso`, …: lower-case letters and dashes after `aws`.
pub fn is_partition(p: &str) -> bool {
    p.starts_with("aws") && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

/// The partition of a region (`cn-north-1` → `aws-cn`, `us-gov-west-1` → `aws-us-gov`).
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        DEFAULT_PARTITION
    }
}

impl Principal {
    /// A principal of the `aws` partition; [`Principal::in_partition`] for another.
    pub fn new(account: &str, kind: PrincipalKind, path: &str, name: &str) -> Self {
        Principal {
            account: account.to_string(),
            kind,
            path: normalise_path(path),
            name: name.to_string(),
            partition: default_partition(),
        }
    }

    pub fn in_partition(mut self, partition: &str) -> Self {
        self.partition = partition.to_string();
        self
    }

    pub fn role(account: &str, path: &str, name: &str) -> Self {
        Self::new(account, PrincipalKind::Role, path, name)
    }

    pub fn user(account: &str, path: &str, name: &str) -> Self {
        Self::new(account, PrincipalKind::User, path, name)
    }

    /// `arn:<partition>:iam::<account>:role/<path-without-leading-slash><name>`.
    pub fn arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:{}{}{}",
            self.partition,
            self.account,
            self.kind.as_str(),
            self.path,
            self.name
        )
    }

    /// The ARN in the `aws` partition, whatever the principal's: the form state is keyed by, so
    /// that records written before partitions were known keep their keys in every partition.
    pub fn stable_arn(&self) -> String {
        Principal {
            partition: default_partition(),
            ..self.clone()
        }
        .arn()
    }

    /// How the CLI prints it: `role/NAME`, or `role/PATH/NAME` when the path is not `/` (the
    /// ARN's resource part; the CLI takes it back as an identity).
    pub fn short(&self) -> String {
        format!("{}{}{}", self.kind.as_str(), self.path, self.name)
    }

    /// Path + name, the string exemption globs match against (`/security-audit`, `/ops/deploy`).
    pub fn path_and_name(&self) -> String {
        format!("{}{}", self.path, self.name)
    }

    /// Parses an IAM ARN of a role or user. The account and path come from the ARN.
    pub fn from_arn(arn: &str) -> Result<Self, SubjectParseError> {
        let bad = || SubjectParseError(format!("'{arn}' is not an IAM role or user ARN"));
        let rest = arn.strip_prefix("arn:").ok_or_else(bad)?;
        let mut parts = rest.splitn(5, ':');
        let partition = parts.next().ok_or_else(bad)?;
        let service = parts.next().ok_or_else(bad)?;
        let _region = parts.next().ok_or_else(bad)?;
        let account = parts.next().ok_or_else(bad)?;
        let resource = parts.next().ok_or_else(bad)?;
        if service != "iam" || !is_account_id(account) || !is_partition(partition) {
            return Err(bad());
        }
        let (kind, path_and_name) = if let Some(r) = resource.strip_prefix("role/") {
            (PrincipalKind::Role, r)
        } else if let Some(u) = resource.strip_prefix("user/") {
            (PrincipalKind::User, u)
        } else {
            return Err(bad());
        };
        let (path, name) = match path_and_name.rfind('/') {
            Some(i) => (
                format!("/{}/", &path_and_name[..i]),
                &path_and_name[i + 1..],
            ),
            None => ("/".to_string(), path_and_name),
        };
        if name.is_empty() {
            return Err(bad());
        }
        Ok(Principal::new(account, kind, &path, name).in_partition(partition))
    }
}

fn normalise_path(path: &str) -> String {
    let mut p = String::with_capacity(path.len() + 2);
    if !path.starts_with('/') {
        p.push('/');
    }
    p.push_str(path);
    if !p.ends_with('/') {
        p.push('/');
    }
    p
}

/// Twelve ASCII digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A long-term access key id: `AKIA` + upper-case alphanumerics, 16-128 characters.
pub fn is_access_key_id(s: &str) -> bool {
    s.starts_with("AKIA")
        && (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// What part of the principal the ladder walks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "key_id")]
pub enum Scope {
    /// The whole role or user.
    Whole,
    /// One access key of a user (IAM.22 / CIS 1.12 key-level findings).
    AccessKey(String),
    /// A user's console password (login profile).
    Password,
}

/// The thing a ladder record tracks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    pub principal: Principal,
    pub scope: Scope,
}

/// The `kind` field of the CLI contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Role,
    User,
    AccessKey,
    Password,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Role => "role",
            SubjectKind::User => "user",
            SubjectKind::AccessKey => "access_key",
            SubjectKind::Password => "password",
        }
    }
}

impl Subject {
    pub fn whole(principal: Principal) -> Self {
        Subject {
            principal,
            scope: Scope::Whole,
        }
    }

    pub fn access_key(user: Principal, key_id: &str) -> Self {
        Subject {
            principal: user,
            scope: Scope::AccessKey(key_id.to_string()),
        }
    }

    pub fn password(user: Principal) -> Self {
        Subject {
            principal: user,
            scope: Scope::Password,
        }
    }

    pub fn kind(&self) -> SubjectKind {
        match (&self.scope, self.principal.kind) {
            (Scope::Whole, PrincipalKind::Role) => SubjectKind::Role,
            (Scope::Whole, PrincipalKind::User) => SubjectKind::User,
            (Scope::AccessKey(_), _) => SubjectKind::AccessKey,
            (Scope::Password, _) => SubjectKind::Password,
        }
    }

    /// The stable id used in state keys and output: the principal's ARN, plus `/key/<id>` or
    /// `/password` for credential-level subjects (the same shape the CLI accepts).
    pub fn id(&self) -> String {
        match &self.scope {
            Scope::Whole => self.principal.arn(),
            Scope::AccessKey(key) => format!("{}/key/{key}", self.principal.arn()),
            Scope::Password => format!("{}/password", self.principal.arn()),
        }
    }

    /// [`Subject::id`] in the `aws` partition: the key state is stored under (see
    /// [`Principal::stable_arn`]).
    pub fn stable_id(&self) -> String {
        Subject {
            principal: Principal {
                partition: default_partition(),
                ..self.principal.clone()
            },
            scope: self.scope.clone(),
        }
        .id()
    }

    /// [`Subject::id`] without the account: `role/NAME`, `user/PATH/NAME/key/AKIA…`.
    pub fn short(&self) -> String {
        match &self.scope {
            Scope::Whole => self.principal.short(),
            Scope::AccessKey(key) => format!("{}/key/{key}", self.principal.short()),
            Scope::Password => format!("{}/password", self.principal.short()),
        }
    }

    /// Parses [`Subject::id`] output back.
    pub fn from_id(id: &str) -> Result<Self, SubjectParseError> {
        if let Some((arn, key)) = split_key_suffix(id) {
            let principal = Principal::from_arn(arn)?;
            return Self::user_credential(principal, Scope::AccessKey(key.to_string()), id);
        }
        if let Some(arn) = id.strip_suffix("/password") {
            if let Ok(principal) = Principal::from_arn(arn) {
                if principal.kind == PrincipalKind::User {
                    return Ok(Subject::password(principal));
                }
            }
        }
        Ok(Subject::whole(Principal::from_arn(id)?))
    }

    fn user_credential(
        principal: Principal,
        scope: Scope,
        original: &str,
    ) -> Result<Self, SubjectParseError> {
        if principal.kind != PrincipalKind::User {
            return Err(SubjectParseError(format!(
                "'{original}': only users have access keys and passwords"
            )));
        }
        Ok(Subject { principal, scope })
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// `…/key/AKIA…`: access key ids are 16-128 upper-case alphanumerics starting with `AKIA` or `ASIA`
/// (moto also issues them), so a path segment named `key` cannot be confused with this suffix.
fn split_key_suffix(id: &str) -> Option<(&str, &str)> {
    let i = id.rfind("/key/")?;
    let key = &id[i + 5..];
    let looks_like_key = key.len() >= 16
        && key.starts_with("AKIA")
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    looks_like_key.then(|| (&id[..i], key))
}

/// How an operator names an identity on the command line, before the account is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityArg {
    /// A full ARN (or subject id); carries its own account.
    Subject(Subject),
    /// `role/NAME`, `user/NAME`, `user/NAME/key/AKIA…` or `user/NAME/password`, each also with a
    /// path (`role/PATH/NAME`, as the CLI prints it): the account is the caller's; without a
    /// path, the path is looked up.
    Name {
        kind: PrincipalKind,
        /// `/PATH/` when given; a name is unique in an account whatever its path, so this only
        /// has to match.
        path: Option<String>,
        name: String,
        scope: Scope,
    },
}

impl IdentityArg {
    /// What part of the principal it names.
    pub fn scope(&self) -> &Scope {
        match self {
            IdentityArg::Name { scope, .. } => scope,
            IdentityArg::Subject(subject) => &subject.scope,
        }
    }
}

impl FromStr for IdentityArg {
    type Err = SubjectParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("arn:") {
            return Subject::from_id(s).map(IdentityArg::Subject);
        }
        let bad = || {
            SubjectParseError(format!(
                "'{s}' is not an identity: use an ARN, role/NAME, user/NAME, user/NAME/key/AKIA… or user/NAME/password (each NAME may be PATH/NAME)"
            ))
        };
        let (kind, rest) = if let Some(r) = s.strip_prefix("role/") {
            (PrincipalKind::Role, r)
        } else if let Some(u) = s.strip_prefix("user/") {
            (PrincipalKind::User, u)
        } else {
            return Err(bad());
        };
        let (path_and_name, scope) = if let Some((name, key)) = split_key_suffix(rest) {
            (name, Scope::AccessKey(key.to_string()))
        } else if let Some(name) = rest.strip_suffix("/password") {
            (name, Scope::Password)
        } else {
            (rest, Scope::Whole)
        };
        let (path, name) = match path_and_name.rsplit_once('/') {
            Some((path, name)) if is_iam_path(path) => (Some(format!("/{path}/")), name),
            Some(_) => return Err(bad()),
            None => (None, path_and_name),
        };
        if !is_iam_name(name) || (kind == PrincipalKind::Role && scope != Scope::Whole) {
            return Err(bad());
        }
        Ok(IdentityArg::Name {
            kind,
            path,
            name: name.to_string(),
            scope,
        })
    }
}

/// IAM user and role names: 1-64 characters of `[A-Za-z0-9+=,.@_-]`.
pub fn is_iam_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// A path between its outer slashes (`ops/team`): printable ASCII segments, none empty.
fn is_iam_path(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 510
        && s.split('/').all(|seg| !seg.is_empty())
        && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SubjectParseError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_round_trips_with_path() {
        let p = Principal::role("123456789012", "/ops/team/", "deploy");
        assert_eq!(p.arn(), "arn:aws:iam::123456789012:role/ops/team/deploy");
        assert_eq!(Principal::from_arn(&p.arn()).unwrap(), p);
        assert_eq!(p.path_and_name(), "/ops/team/deploy");
    }

    #[test]
    fn subject_ids_round_trip() {
        let u = Principal::user("123456789012", "/", "alice");
        for s in [
            Subject::whole(u.clone()),
            Subject::access_key(u.clone(), "AKIAIOSFODNN7EXAMPLE"),
            Subject::password(u),
        ] {
            assert_eq!(Subject::from_id(&s.id()).unwrap(), s);
        }
    }

    #[test]
    fn the_short_form_is_what_the_cli_takes_back() {
        let p = Principal::role("123456789012", "/ops/", "deploy");
        assert_eq!(p.short(), "role/ops/deploy");
        assert_eq!(
            Principal::user("123456789012", "/", "bob").short(),
            "user/bob"
        );
        let key = Subject::access_key(
            Principal::user("123456789012", "/ops/", "bob"),
            "AKIAIOSFODNN7EXAMPLE",
        );
        assert_eq!(key.short(), "user/ops/bob/key/AKIAIOSFODNN7EXAMPLE");
    }

    #[test]
    fn a_path_segment_called_key_is_not_a_key_suffix() {
        let s = Subject::from_id("arn:aws:iam::123456789012:user/key/bob").unwrap();
        assert_eq!(s.scope, Scope::Whole);
        assert_eq!(s.principal.path, "/key/");
        assert_eq!(s.principal.name, "bob");
    }

    #[test]
    fn cli_identity_forms() {
        assert_eq!(
            "user/alice/key/AKIAIOSFODNN7EXAMPLE"
                .parse::<IdentityArg>()
                .unwrap(),
            IdentityArg::Name {
                kind: PrincipalKind::User,
                path: None,
                name: "alice".into(),
                scope: Scope::AccessKey("AKIAIOSFODNN7EXAMPLE".into())
            }
        );
        assert_eq!(
            "role/ops/team/deploy".parse::<IdentityArg>().unwrap(),
            IdentityArg::Name {
                kind: PrincipalKind::Role,
                path: Some("/ops/team/".into()),
                name: "deploy".into(),
                scope: Scope::Whole
            }
        );
        assert_eq!(
            "user/ops/bob/password".parse::<IdentityArg>().unwrap(),
            IdentityArg::Name {
                kind: PrincipalKind::User,
                path: Some("/ops/".into()),
                name: "bob".into(),
                scope: Scope::Password
            }
        );
        assert!("role//x".parse::<IdentityArg>().is_err());
        assert!("role/ops/".parse::<IdentityArg>().is_err());
        assert!("role/x/password".parse::<IdentityArg>().is_err());
        assert!("group/admins".parse::<IdentityArg>().is_err());
        assert!("role/".parse::<IdentityArg>().is_err());
        assert!("arn:aws:s3:::bucket".parse::<IdentityArg>().is_err());
    }
}
