//! What `dormant permissions` prints: the IAM actions each step needs, from the effects' own list.

use crate::domain::effect::{all_permissions, ADVISOR_PERMISSIONS, EVALUATE_PERMISSIONS};
use crate::domain::PrincipalKind;

/// `permissions`: the IAM actions each step needs, per principal kind.
pub fn permissions() -> PermissionsReport {
    let both = |actions: &[&'static str]| KindPermissions {
        role: actions.to_vec(),
        user: actions.to_vec(),
    };
    let mut steps = vec![
        ("evaluate", both(EVALUATE_PERMISSIONS)),
        ("access_advisor", both(ADVISOR_PERMISSIONS)),
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
    PermissionsReport {
        steps: StepPermissions(steps),
        all,
    }
}

/// What `dormant permissions` prints: the IAM actions of each step, by kind, and all of them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PermissionsReport {
    pub steps: StepPermissions,
    pub all: Vec<&'static str>,
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
