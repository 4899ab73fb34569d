//! What `dormant permissions` prints: the IAM actions each step needs, from the effects' own list,
//! and every other action the controller and the operator commands call
//! (`crate::domain::permissions`).

use std::collections::BTreeMap;

use crate::domain::effect::{all_permissions, ADVISOR_PERMISSIONS, EVALUATE_PERMISSIONS};
use crate::domain::permissions::{
    guards, service_of, Guard, Need, CONTROLLER_NEEDS, LIMITED_BY_TAG_GUARDS, OPERATOR_NEEDS,
    RESOLVE_ROLE_ID_PERMISSIONS, RESOLVE_USER_ID_PERMISSIONS,
};
use crate::domain::PrincipalKind;

mod policy;
pub use policy::{policy_document, PolicyFor};

/// `permissions`: the IAM actions each step needs, per principal kind.
pub fn permissions() -> PermissionsReport {
    let both = |actions: &[&'static str]| KindPermissions {
        role: actions.to_vec(),
        user: actions.to_vec(),
    };
    let mut steps = vec![
        ("evaluate", both(EVALUATE_PERMISSIONS)),
        ("access_advisor", both(ADVISOR_PERMISSIONS)),
        (
            "resolve_id",
            KindPermissions {
                role: RESOLVE_ROLE_ID_PERMISSIONS.to_vec(),
                user: RESOLVE_USER_ID_PERMISSIONS.to_vec(),
            },
        ),
    ];
    for (step, kind, actions) in all_permissions() {
        let at = match steps.iter().position(|(name, _)| *name == step.as_str()) {
            Some(at) => at,
            None => {
                steps.push((step.as_str(), KindPermissions::default()));
                steps.len() - 1
            }
        };
        match kind {
            PrincipalKind::Role => steps[at].1.role = actions,
            PrincipalKind::User => steps[at].1.user = actions,
        }
    }
    let mut all: Vec<&'static str> = steps
        .iter()
        .flat_map(|(_, k)| k.role.iter().chain(&k.user).copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    let mut controller = by_service(CONTROLLER_NEEDS);
    controller
        .entry("iam")
        .or_default()
        .extend(all.iter().copied());
    for actions in controller.values_mut() {
        actions.sort_unstable();
        actions.dedup();
    }
    let operator = OPERATOR_NEEDS
        .iter()
        .map(|(command, _, actions)| (*command, actions.to_vec()))
        .collect();
    let guards = all
        .iter()
        .filter(|a| !guards(a).is_empty())
        .map(|a| (*a, guards(a).to_vec()))
        .collect();
    PermissionsReport {
        steps: StepPermissions(steps),
        all,
        controller,
        operator,
        guards,
        limited_by_tag_guards: LIMITED_BY_TAG_GUARDS.iter().copied().collect(),
    }
}

fn by_service(needs: &[Need]) -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut out: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for (_, _, actions) in needs {
        for a in *actions {
            out.entry(service_of(a)).or_default().push(a);
        }
    }
    out
}

/// What `dormant permissions` prints: the IAM actions of each step, by kind, and all of them
/// (what the identity roles need); every action the controller calls, by service; and what each
/// operator command needs beyond those.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PermissionsReport {
    pub steps: StepPermissions,
    pub all: Vec<&'static str>,
    pub controller: BTreeMap<&'static str, Vec<&'static str>>,
    pub operator: BTreeMap<&'static str, Vec<&'static str>>,
    /// The conditions the controller's and member's roles grant these actions under (each guard
    /// a statement of its own): docs/design.md, 'Permissions'.
    pub guards: BTreeMap<&'static str, Vec<Guard>>,
    /// Permission-adding actions whose tag guard the same credentials can satisfy (they may
    /// write the tag): the known gap, and why.
    pub limited_by_tag_guards: BTreeMap<&'static str, &'static str>,
}

/// The steps in ladder order (a JSON object whose keys keep that order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPermissions(pub Vec<(&'static str, KindPermissions)>);

impl serde::Serialize for StepPermissions {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (step, kinds) in &self.0 {
            map.serialize_entry(step, kinds)?;
        }
        map.end()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KindPermissions {
    pub role: Vec<&'static str>,
    pub user: Vec<&'static str>,
}
