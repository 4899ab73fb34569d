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
    /// dormant's quarantine policy (`policy/dormant/DormantQuarantineDenyAll`).
    QuarantinePolicy,
    /// Security Hub's `default` product of each managed account: dormant's own findings.
    HubProduct,
    /// Security Hub itself, in each managed account and any region: the workflow of findings.
    Hub,
    /// The SES identity owner messages are sent from (`[notify] email_from`).
    EmailIdentity,
    /// The SNS topics owner messages go to (`sns:` recipients, the feed).
    Topic,
    /// The Secrets Manager secret holding the Slack webhook URLs.
    Secret,
}

/// The condition an IAM action that could give access is granted under (docs/design.md,
/// 'Permissions'). An action with several guards is granted once under each (any one suffices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// `iam:PolicyARN` is dormant's quarantine policy in the same account: attaching it only
    /// takes access away, detaching it only undoes dormant's quarantine.
    QuarantinePolicy,
    /// The identity carries dormant's stage tag (`aws:ResourceTag/dormant:stage`): dormant
    /// removes policies only from identities it has marked as on its ladder.
    Marked,
    /// Every tag key of the request is one of dormant's (`aws:TagKeys` like `dormant:*`): tags
    /// that other policies may test (attribute-based access) are never written or removed.
    DormantTagKeys,
    /// The user carries dormant's credentials marker (`aws:ResourceTag/dormant:credentials`),
    /// which dormant writes with the first stage tag of a credential ladder of the user and
    /// removes with the last: dormant turns keys on and off, and deletes a key or a password,
    /// only of users it has marked so.
    CredentialsMarked,
}

/// Every IAM action that can give a principal access it did not have, directly (a policy, a
/// credential, a trust, a group) or by taking a restriction away (a Deny, a boundary, a tag a
/// policy tests). A role of dormant's grants each only under a guard of [`guards`], or not at
/// all; `UNGUARDED_BY_DESIGN` lists the exceptions and why.
pub const PERMISSION_ADDING: &[&str] = &[
    "iam:AddUserToGroup",
    "iam:AttachGroupPolicy",
    "iam:AttachRolePolicy",
    "iam:AttachUserPolicy",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:CreatePolicyVersion",
    // An MFA device taken off lets a stolen password sign in without it.
    "iam:DeactivateMFADevice",
    "iam:DeleteGroupPolicy",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteRolePolicy",
    "iam:DeleteUserPermissionsBoundary",
    "iam:DeleteUserPolicy",
    "iam:DetachGroupPolicy",
    "iam:DetachRolePolicy",
    "iam:DetachUserPolicy",
    "iam:PassRole",
    "iam:PutGroupPolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:PutUserPermissionsBoundary",
    "iam:PutUserPolicy",
    "iam:RemoveUserFromGroup",
    "iam:SetDefaultPolicyVersion",
    "iam:TagRole",
    "iam:TagUser",
    "iam:UntagRole",
    "iam:UntagUser",
    "iam:UpdateAccessKey",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateLoginProfile",
];

/// The guards an IAM action of dormant's is granted under; empty when it is granted plainly.
pub fn guards(action: &str) -> &'static [Guard] {
    use Guard::{CredentialsMarked, DormantTagKeys, Marked, QuarantinePolicy};
    match action {
        "iam:AttachRolePolicy" | "iam:AttachUserPolicy" => &[QuarantinePolicy],
        // Undoing a quarantine anywhere; everything, to delete a marked identity.
        "iam:DetachRolePolicy" | "iam:DetachUserPolicy" => &[QuarantinePolicy, Marked],
        // An earlier version's inline deny on release; every inline policy, to delete.
        "iam:DeleteRolePolicy" | "iam:DeleteUserPolicy" => &[Marked],
        // Only to delete a user dormant has on its ladder.
        "iam:DeactivateMFADevice" => &[Marked],
        "iam:TagRole" | "iam:TagUser" | "iam:UntagRole" | "iam:UntagUser" => &[DormantTagKeys],
        // Keys on and off (a key turned back on is access given back), and the deletions of a
        // credential, only on a user on dormant's ladder: whole (the quarantine, the teardown)
        // or by a credential's own ladder.
        "iam:UpdateAccessKey" | "iam:DeleteAccessKey" | "iam:DeleteLoginProfile" => {
            &[Marked, CredentialsMarked]
        }
        _ => &[],
    }
}

/// Permission-adding actions dormant's roles grant without a guard, and why no IAM condition can
/// pin them: `iam:PassRole` is pinned by its resource (the automation role) and
/// `iam:PassedToService`; the other is the known gap of docs/design.md, 'Permissions'.
pub const UNGUARDED_BY_DESIGN: &[(&str, &str)] = &[
    (
        "iam:PassRole",
        "only the automation role, only to SSM (resource and iam:PassedToService)",
    ),
    (
        "iam:RemoveUserFromGroup",
        "authorised on the group, whose tags say nothing of the user; used only to delete a \
         user dormant has on its ladder",
    ),
];

/// Permission-adding actions granted under a tag guard (`guards`) that the holder of dormant's
/// credentials can satisfy itself, since the same roles may write that tag (`TagUser`/`TagRole`
/// for `dormant:*`): the gap that stays open, two calls apart, both in CloudTrail
/// (docs/design.md, 'Permissions'). Outside dormant, the sample SCP (`cdk/lib/scp.ts`) keeps
/// `dormant:*` tag writes to the admins and dormant's roles.
pub const LIMITED_BY_TAG_GUARDS: &[(&str, &str)] = &[
    (
        "iam:DeactivateMFADevice",
        "granted on a user carrying dormant:stage, a tag the same credentials may write",
    ),
    (
        "iam:DeleteRolePolicy",
        "granted on a role carrying dormant:stage, a tag the same credentials may write: a Deny \
         can be removed after tagging",
    ),
    (
        "iam:DeleteUserPolicy",
        "granted on a user carrying dormant:stage, a tag the same credentials may write: a Deny \
         can be removed after tagging",
    ),
    (
        "iam:DetachRolePolicy",
        "any policy of a role carrying dormant:stage, a tag the same credentials may write: a \
         Deny can be detached after tagging",
    ),
    (
        "iam:DetachUserPolicy",
        "any policy of a user carrying dormant:stage, a tag the same credentials may write: a \
         Deny can be detached after tagging",
    ),
    (
        "iam:UpdateAccessKey",
        "granted on a user carrying dormant:stage or dormant:credentials, tags the same \
         credentials may write: whoever holds them can TagUser dormant:credentials on any user, \
         then turn on a key someone else turned off (two calls, both in CloudTrail)",
    ),
];

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
            // Owner messages: a send claim marked sent.
            "dynamodb:UpdateItem",
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
    // `[notify] enabled`, from the controller's account: email, the feed and team topics, and
    // the Slack webhook URLs read once at start-up.
    ("notify_email", Scope::EmailIdentity, &["ses:SendEmail"]),
    ("notify_sns", Scope::Topic, &["sns:Publish"]),
    (
        "notify_slack_webhooks",
        Scope::Secret,
        &["secretsmanager:GetSecretValue"],
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
    // `init` also creates dormant's quarantine policy in the caller's account when missing.
    (
        "init_quarantine_policy",
        Scope::QuarantinePolicy,
        &["iam:CreatePolicy", "iam:GetPolicy", "iam:GetPolicyVersion"],
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
    fn every_guarded_action_is_permission_adding_and_no_action_is_both_guarded_and_excused() {
        for action in PERMISSION_ADDING {
            let excused = UNGUARDED_BY_DESIGN.iter().any(|(a, _)| a == action);
            assert!(
                !excused || guards(action).is_empty(),
                "{action} is guarded and excused"
            );
        }
        for (action, _) in UNGUARDED_BY_DESIGN {
            assert!(PERMISSION_ADDING.contains(action), "{action}");
        }
    }

    #[test]
    fn every_permission_adding_action_behind_a_tag_dormant_writes_is_listed_as_limited() {
        let behind_own_tag = |a: &str| {
            guards(a)
                .iter()
                .any(|g| matches!(g, Guard::Marked | Guard::CredentialsMarked))
        };
        let listed: Vec<&str> = LIMITED_BY_TAG_GUARDS.iter().map(|(a, _)| *a).collect();
        let expected: Vec<&str> = PERMISSION_ADDING
            .iter()
            .copied()
            .filter(|a| behind_own_tag(a))
            .collect();
        assert_eq!(listed, expected);
    }

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
