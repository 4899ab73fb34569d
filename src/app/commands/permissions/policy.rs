//! `dormant permissions --policy`: the actions of `permissions()` as an IAM policy document, each
//! on the resources it is needed on, in any account and region, with dormant's default names
//! (`dormant` table, `default` bus, `dormant-member`/`dormant-automation` roles, `Dormant-*`
//! documents). The CDK stacks scope the same actions to their own account and names.

use serde_json::{json, Value};

use super::permissions;
use crate::domain::exemption::{Part, ALWAYS_PROTECTED};
use crate::domain::permissions::{guards, Guard, Scope, CONTROLLER_NEEDS, OPERATOR_NEEDS};
use crate::domain::tag::{CREDENTIALS_TAG, TAG_KEY_PATTERNS, WHOLE_STAGE_TAG};

/// Whose actions the document grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFor {
    /// The Lambda's role (and a member account's role, which needs the IAM part of it).
    Controller,
    /// An operator running `init` and `restore` too.
    Operator,
}

/// The resource type an IAM action is authorized on (Service Authorization Reference); the CDK's
/// `lib/permissions.ts` holds the same table, checked against AWS's data.
fn iam_resources(action: &str) -> Vec<&'static str> {
    let name = action.trim_start_matches("iam:");
    match name {
        "GenerateCredentialReport"
        | "GetCredentialReport"
        | "GetAccountAuthorizationDetails"
        | "GetServiceLastAccessedDetails"
        | "ListRoles"
        | "ListUsers" => vec!["*"],
        "GetPolicy" | "GetPolicyVersion" | "CreatePolicy" => vec![QUARANTINE_POLICY_ANY_ACCOUNT],
        "GenerateServiceLastAccessedDetails" => {
            vec!["arn:aws:iam::*:role/*", "arn:aws:iam::*:user/*"]
        }
        _ if name.ends_with("InstanceProfile") => vec!["arn:aws:iam::*:instance-profile/*"],
        _ if name.ends_with("Group") => vec!["arn:aws:iam::*:group/*"],
        _ if name.contains("Role") => vec!["arn:aws:iam::*:role/*"],
        _ => vec!["arn:aws:iam::*:user/*"],
    }
}

fn scoped(scope: Scope) -> Vec<&'static str> {
    match scope {
        Scope::Any | Scope::Identity => vec!["*"],
        Scope::Table => vec![
            "arn:aws:dynamodb:*:*:table/dormant",
            "arn:aws:dynamodb:*:*:table/dormant/index/*",
        ],
        Scope::Bus => vec!["arn:aws:events:*:*:event-bus/default"],
        Scope::MemberRole => vec!["arn:aws:iam::*:role/dormant-member"],
        Scope::Automation => vec![
            "arn:aws:ssm:*:*:document/Dormant-*",
            "arn:aws:ssm:*:*:automation-definition/Dormant-*:*",
            "arn:aws:ssm:*:*:automation-execution/*",
        ],
        Scope::AutomationRole => vec!["arn:aws:iam::*:role/dormant-automation"],
        Scope::Queue => vec!["arn:aws:sqs:*:*:dormant-*"],
        Scope::Analyzer => vec!["arn:aws:access-analyzer:*:*:analyzer/*"],
        Scope::QuarantinePolicy => vec![QUARANTINE_POLICY_ANY_ACCOUNT],
        Scope::HubProduct => vec!["arn:aws:securityhub:*:*:product/*/default"],
        Scope::Hub => vec!["arn:aws:securityhub:*:*:hub/default"],
        Scope::EmailIdentity => vec!["arn:aws:ses:*:*:identity/*"],
        Scope::Topic => vec!["arn:aws:sns:*:*:*"],
        Scope::Secret => vec!["arn:aws:secretsmanager:*:*:secret:dormant/*"],
    }
}

/// dormant's quarantine policy in any account and partition, the resource of its reads.
const QUARANTINE_POLICY_ANY_ACCOUNT: &str = "arn:*:iam::*:policy/dormant/DormantQuarantineDenyAll";

/// The quarantine policy of the caller's own account, in any partition: what the attach and
/// detach guards pin `iam:PolicyARN` to.
const QUARANTINE_POLICY_OWN_ACCOUNT: &str =
    "arn:*:iam::${aws:PrincipalAccount}:policy/dormant/DormantQuarantineDenyAll";

/// The condition of one guard (`domain::permissions::Guard`).
pub fn guard_condition(guard: Guard, quarantine_policy_arn: &str) -> Value {
    match guard {
        Guard::QuarantinePolicy => {
            json!({"ArnLike": {"iam:PolicyARN": quarantine_policy_arn}})
        }
        Guard::Marked => {
            json!({"Null": {format!("aws:ResourceTag/{WHOLE_STAGE_TAG}"): "false"}})
        }
        Guard::CredentialsMarked => {
            json!({"Null": {format!("aws:ResourceTag/{CREDENTIALS_TAG}"): "false"}})
        }
        Guard::DormantTagKeys => json!({
            "ForAllValues:StringLike": {"aws:TagKeys": TAG_KEY_PATTERNS},
            "Null": {"aws:TagKeys": "false"}
        }),
    }
}

/// Statements grouped by resource list and guard, in a stable order: an action with guards is
/// granted once under each of them, never plainly.
fn statements(actions: impl IntoIterator<Item = Grant>) -> Vec<Value> {
    type Group = (Vec<&'static str>, Option<Guard>, Vec<&'static str>);
    let mut grouped: Vec<Group> = Vec::new();
    for Grant {
        action,
        resources,
        guarded,
    } in actions
    {
        let action_guards: Vec<Option<Guard>> = match guards(action) {
            some if guarded && !some.is_empty() => some.iter().copied().map(Some).collect(),
            _ => vec![None],
        };
        for guard in action_guards {
            match grouped
                .iter_mut()
                .find(|(r, g, _)| *r == resources && *g == guard)
            {
                Some((_, _, list)) => list.push(action),
                None => grouped.push((resources.clone(), guard, vec![action])),
            }
        }
    }
    grouped
        .into_iter()
        .enumerate()
        .map(|(n, (resources, guard, mut actions))| {
            actions.sort_unstable();
            actions.dedup();
            let mut s = json!({"Sid": format!("Dormant{n}"), "Effect": "Allow",
                "Action": actions, "Resource": resources});
            if resources == scoped(Scope::AutomationRole) {
                s["Condition"] =
                    json!({"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}});
            }
            if let Some(guard) = guard {
                s["Condition"] = guard_condition(guard, QUARANTINE_POLICY_OWN_ACCOUNT);
            }
            s
        })
        .collect()
}

/// One action on its resources; `guarded`: under its guards (the controller's actions), or
/// plainly (what `restore` and `init` need with the operator's own credentials).
struct Grant {
    action: &'static str,
    resources: Vec<&'static str>,
    guarded: bool,
}

/// The policy document for `who`.
pub fn policy_document(who: PolicyFor) -> Value {
    let report = permissions();
    let mut actions: Vec<Grant> = report
        .all
        .iter()
        .map(|a| Grant {
            action: a,
            resources: iam_resources(a),
            guarded: true,
        })
        .collect();
    let operator: &[_] = match who {
        PolicyFor::Controller => &[],
        PolicyFor::Operator => OPERATOR_NEEDS,
    };
    let needs = CONTROLLER_NEEDS
        .iter()
        .map(|n| (n, true))
        .chain(operator.iter().map(|n| (n, false)));
    for ((_, scope, list), guarded) in needs {
        for a in *list {
            let resources = match (scope, a.starts_with("iam:")) {
                (Scope::Identity, true) => iam_resources(a),
                _ => scoped(*scope),
            };
            actions.push(Grant {
                action: a,
                resources,
                guarded,
            });
        }
    }
    let mut mutating: Vec<&str> = actions
        .iter()
        .filter(|g| {
            g.resources.contains(&"arn:aws:iam::*:role/*")
                && !g.action.contains(":Get")
                && !g.action.contains(":List")
                && !g.action.contains(":Generate")
        })
        .map(|g| g.action)
        .collect();
    mutating.sort_unstable();
    mutating.dedup();
    let mut out = statements(actions);
    // IAM compares ARNs case-sensitively; dormant's own check ignores case and covers the rest.
    let protected: Vec<String> = ALWAYS_PROTECTED
        .iter()
        .map(|p| match p.part {
            Part::Path => format!("arn:aws:iam::*:role{}", p.pattern),
            Part::Name => format!("arn:aws:iam::*:role/{}", p.pattern),
        })
        .collect();
    out.push(json!({"Sid": "NeverTouchProtectedRoles", "Effect": "Deny",
        "Action": mutating, "Resource": protected}));
    json!({"Version": "2012-10-17", "Statement": out})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(doc: &Value) -> Vec<String> {
        let mut out: Vec<String> = doc["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["Effect"] == "Allow")
            .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn the_controller_document_grants_exactly_what_permissions_lists() {
        let report = permissions();
        let mut listed: Vec<String> = report
            .controller
            .values()
            .flatten()
            .map(|a| a.to_string())
            .collect();
        listed.sort();
        assert_eq!(granted(&policy_document(PolicyFor::Controller)), listed);
    }

    /// Actions granted by a statement without a condition.
    fn granted_plainly(doc: &Value) -> Vec<String> {
        let plain = json!({"Statement": doc["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s.get("Condition").is_none())
            .cloned()
            .collect::<Vec<_>>()});
        granted(&plain)
    }

    #[test]
    fn the_controller_is_guarded_and_restore_is_not() {
        let controller = granted_plainly(&policy_document(PolicyFor::Controller));
        for guarded in [
            "iam:AttachRolePolicy",
            "iam:TagRole",
            "iam:DeleteRolePolicy",
        ] {
            assert!(!controller.iter().any(|a| a == guarded), "{guarded}");
        }
        assert!(!controller.iter().any(|a| a == "iam:PutRolePolicy"));
        // restore re-attaches the owner's policies and tags with the operator's credentials.
        let operator = granted_plainly(&policy_document(PolicyFor::Operator));
        for plain in ["iam:AttachRolePolicy", "iam:TagRole", "iam:PutRolePolicy"] {
            assert!(operator.iter().any(|a| a == plain), "{plain}");
        }
    }

    #[test]
    fn the_operator_document_adds_the_operator_commands() {
        let doc = granted(&policy_document(PolicyFor::Operator));
        for (_, _, actions) in OPERATOR_NEEDS {
            for a in *actions {
                assert!(doc.iter().any(|d| d == a), "{a}");
            }
        }
        assert!(doc.iter().any(|d| d == "dynamodb:BatchWriteItem"));
    }

    #[test]
    fn identity_actions_are_scoped_to_their_resource_type() {
        assert_eq!(
            iam_resources("iam:ListGroupsForUser"),
            ["arn:aws:iam::*:user/*"]
        );
        assert_eq!(
            iam_resources("iam:RemoveUserFromGroup"),
            ["arn:aws:iam::*:group/*"]
        );
        assert_eq!(
            iam_resources("iam:ListInstanceProfilesForRole"),
            ["arn:aws:iam::*:role/*"]
        );
        assert_eq!(
            iam_resources("iam:RemoveRoleFromInstanceProfile"),
            ["arn:aws:iam::*:instance-profile/*"]
        );
        assert_eq!(iam_resources("iam:ListUsers"), ["*"]);
    }
}
