//! Shared by the benchmarks: a stand-in user of a role, for building callers
//! without sign-in.

use ihms_connect::domain::Role;
use ihms_connect::store::accounts::User;
use uuid::Uuid;

pub fn user(role: Role, org: Uuid) -> User {
    User {
        id: Uuid::now_v7(),
        email: String::new(),
        name: String::new(),
        phone: String::new(),
        role,
        org_id: org,
        password_hash: String::new(),
        disabled: false,
        created_ms: 0,
        state: Default::default(),
    }
}
