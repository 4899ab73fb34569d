//! Every AWS action dormant calls, by purpose: the one list `dormant permissions` prints, the CDK
//! roles are built from (`cdk/permissions.json`) and the enforcement suite holds the calls it sees
//! to. The IAM actions of the ladder's steps come from [`super::effect`]; this adds what is not a
//! step: reading state, emitting events, reaching accounts, the SSM fallback, fan-out, findings.

/// Where an action is granted (what `dormant permissions --policy` scopes it to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// No resource-level permissions: `*`.
    Any,
    /// IAM roles or users dormant manages (`role/*`, `user/*`), by the action's name.
    Identity,
    /// The state table and its indexes.
    Table,
    /// The bus of dormant's own events.
    Bus,
    /// The member role in every managed account.
    MemberRole,
    /// dormant's SSM documents, their definitions and executions.
    Automation,
    /// The automation role, passed to SSM only.
    AutomationRole,
    /// The sweep queue.
    Queue,
    /// Access Analyzer analyzers.
    Analyzer,
    /// Security Hub's `default` product of each managed account: dormant's own findings.
    HubProduct,
    /// Security Hub itself, in each managed account and any region: the workflow of findings.
    Hub,
}

/// One purpose and the actions it needs.
pub type Need = (&'static str, Scope, &'static [&'static str]);

/// Config events name IAM users and roles by unique id (`AIDA…`/`AROA…`): `name_by_unique_id`
/// pages through `ListUsers`/`ListRoles` to find the name. The role needs one, the user the other.
pub const RESOLVE_ROLE_ID_PERMISSIONS: &[&str] = &["iam:ListRoles"];
pub const RESOLVE_USER_ID_PERMISSIONS: &[&str] = &["iam:ListUsers"];

/// What the controller needs besides the IAM actions on identities (`permissions().all`).
pub const CONTROLLER_NEEDS: &[Need] = &[
    // Records, audit, breaker, event claims; `BatchWriteItem` writes a dry run's audit notes.
    (
        "state",
        Scope::Table,
        &[
            "dynamodb:BatchWriteItem",
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
        ],
    ),
    ("events", Scope::Bus, &["events:PutEvents"]),
    // The caller's own account and ARN, then each member account's role.
    ("identity", Scope::Any, &["sts:GetCallerIdentity"]),
    ("accounts", Scope::MemberRole, &["sts:AssumeRole"]),
    // `[organization] enabled`: ListAccounts has no resource-level permissions.
    ("organization", Scope::Any, &["organizations:ListAccounts"]),
    (
        "fallback",
        Scope::Automation,
        &[
            "ssm:GetAutomationExecution",
            "ssm:StartAutomationExecution",
            "ssm:StopAutomationExecution",
        ],
    ),
    ("fallback_role", Scope::AutomationRole, &["iam:PassRole"]),
    // DORMANT_SWEEP_QUEUE_URL: SendMessage also authorizes SendMessageBatch.
    ("fan_out", Scope::Queue, &["sqs:SendMessage"]),
    // GetFindingV2 (the enrichment) is authorized as GetFinding.
    ("findings", Scope::Analyzer, &["access-analyzer:GetFinding"]),
    // `[security_hub] enabled`, in each managed account with its own credentials: dormant's
    // findings, then the workflow (NOTIFIED/RESOLVED and a note) of its own and the nominating.
    (
        "security_hub",
        Scope::HubProduct,
        &["securityhub:BatchImportFindings"],
    ),
    (
        "security_hub_workflow",
        Scope::Hub,
        &["securityhub:BatchUpdateFindings"],
    ),
];

/// What operator commands need beyond the controller's actions (which `undo`, `approve`,
/// `exempt`, `status`, `list`, `history` and `report` use as the controller does).
pub const OPERATOR_NEEDS: &[Need] = &[
    (
        "init",
        Scope::Table,
        &[
            "dynamodb:CreateTable",
            "dynamodb:DescribeTable",
            "dynamodb:DescribeTimeToLive",
            "dynamodb:UpdateTimeToLive",
        ],
    ),
    // Recreates a deleted identity from its snapshot: creates, attaches, tags, uploads.
    (
        "restore",
        Scope::Identity,
        &[
            "iam:AddRoleToInstanceProfile",
            "iam:AddUserToGroup",
            "iam:AttachRolePolicy",
            "iam:AttachUserPolicy",
            "iam:CreateRole",
            "iam:CreateUser",
            "iam:GetInstanceProfile",
            "iam:GetRole",
            "iam:GetUser",
            "iam:ListRoleTags",
            "iam:ListUserTags",
            "iam:PutRolePolicy",
            "iam:PutUserPolicy",
            "iam:TagRole",
            "iam:TagUser",
            "iam:UpdateSSHPublicKey",
            "iam:UpdateSigningCertificate",
            "iam:UploadSSHPublicKey",
            "iam:UploadSigningCertificate",
        ],
    ),
];

/// The service prefix of an action (`iam` of `iam:GetRole`).
pub fn service_of(action: &str) -> &str {
    action
        .split_once(':')
        .map_or(action, |(service, _)| service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_service_colon_name_sorted_within_its_purpose() {
        for (purpose, _, actions) in CONTROLLER_NEEDS.iter().chain(OPERATOR_NEEDS) {
            assert!(!actions.is_empty(), "{purpose}");
            assert!(actions.windows(2).all(|w| w[0] < w[1]), "{purpose}");
            for a in *actions {
                let (service, name) = a.split_once(':').unwrap();
                assert!(!service.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()));
            }
        }
    }
}
