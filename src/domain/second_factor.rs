//! Who must use a second factor.
//!
//! Guarantees: agency admins and staff always must (they see every order); everyone
//! else must when the operator sets `require_second_factor_for_all`.

use super::Role;

pub fn required(role: Role, for_all: bool) -> bool {
    for_all || matches!(role, Role::Admin | Role::Staff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_roles_always_need_a_second_factor_others_when_configured() {
        assert!(required(Role::Admin, false));
        assert!(required(Role::Staff, false));
        assert!(!required(Role::FacilityUser, false));
        assert!(!required(Role::ProviderUser, false));
        assert!(required(Role::ProviderUser, true));
    }
}
