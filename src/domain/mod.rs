//! The product's vocabulary: roles, organization kinds, order states and the caller.
//!
//! `Caller` is the verified identity every party-scoped store API takes; it is only
//! built by the authentication layer after a session or token check (or by the CLI
//! for the operator), never from request data.

pub mod account;
pub mod conversation;
pub mod device;
pub mod document;
pub mod guard;
pub mod order;
pub mod password;
pub mod placement;
pub mod second_factor;
pub mod signup;
pub mod validate;
pub mod workflow;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Staff,
    FacilityUser,
    ProviderUser,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::Staff,
        Role::FacilityUser,
        Role::ProviderUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::FacilityUser => "facility_user",
            Role::ProviderUser => "provider_user",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Agency admin",
            Role::Staff => "Intake staff",
            Role::FacilityUser => "Discharge planner",
            Role::ProviderUser => "Provider",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a user of this role may belong to an organization of `kind`.
    pub fn fits(self, kind: OrgKind) -> bool {
        match self {
            Role::Admin | Role::Staff => kind == OrgKind::Agency,
            Role::FacilityUser => kind == OrgKind::ReferringFacility,
            Role::ProviderUser => kind.is_provider(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    Agency,
    ReferringFacility,
    HomeHealth,
    Dme,
    Caregiver,
}

impl OrgKind {
    pub const ALL: [OrgKind; 5] = [
        OrgKind::Agency,
        OrgKind::ReferringFacility,
        OrgKind::HomeHealth,
        OrgKind::Dme,
        OrgKind::Caregiver,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Agency => "agency",
            OrgKind::ReferringFacility => "referring_facility",
            OrgKind::HomeHealth => "home_health",
            OrgKind::Dme => "dme",
            OrgKind::Caregiver => "caregiver",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            OrgKind::Agency => "Agency",
            OrgKind::ReferringFacility => "Referring facility",
            OrgKind::HomeHealth => "Home health",
            OrgKind::Dme => "DME supplier",
            OrgKind::Caregiver => "Caregiver services",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_provider(self) -> bool {
        matches!(
            self,
            OrgKind::HomeHealth | OrgKind::Dme | OrgKind::Caregiver
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Submitted,
    InReview,
    NeedsInfo,
    PendingPlacement,
    Placed,
    InService,
    Completed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Submitted,
        Status::InReview,
        Status::NeedsInfo,
        Status::PendingPlacement,
        Status::Placed,
        Status::InService,
        Status::Completed,
        Status::Cancelled,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::InReview => "in_review",
            Status::NeedsInfo => "needs_info",
            Status::PendingPlacement => "pending_placement",
            Status::Placed => "placed",
            Status::InService => "in_service",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Submitted => "Submitted",
            Status::InReview => "In review",
            Status::NeedsInfo => "Needs info",
            Status::PendingPlacement => "Pending placement",
            Status::Placed => "Placed",
            Status::InService => "In service",
            Status::Completed => "Completed",
            Status::Cancelled => "Cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Which side of the coordination a caller is on; decides what they may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Agency,
    Facility(Uuid),
    Provider(Uuid),
}

/// A verified caller: who is acting, for whom, from where.
#[derive(Debug, Clone)]
pub struct Caller {
    user_id: Uuid,
    role: Role,
    org_id: Uuid,
    source: Option<String>,
}

impl Caller {
    /// Only the authentication layer and the operator's CLI build callers.
    pub(crate) fn verified(
        user_id: Uuid,
        role: Role,
        org_id: Uuid,
        source: Option<String>,
    ) -> Self {
        Self {
            user_id,
            role,
            org_id,
            source,
        }
    }

    pub fn user_id(&self) -> Uuid {
        self.user_id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn org_id(&self) -> Uuid {
        self.org_id
    }

    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    pub fn party(&self) -> Party {
        match self.role {
            Role::Admin | Role::Staff => Party::Agency,
            Role::FacilityUser => Party::Facility(self.org_id),
            Role::ProviderUser => Party::Provider(self.org_id),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn is_agency(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Staff)
    }
}
