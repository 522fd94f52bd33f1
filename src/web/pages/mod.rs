//! Page routes, one small module per area; handlers are free functions named by verb.

mod account;
mod admin;
mod blocked;
pub(crate) mod dashboard;
mod documents;
mod my_account;
pub(crate) mod order_detail;
pub(crate) mod orders;
mod own_sessions;
mod password;
mod queues;
mod second_factor;
mod session;
mod signin_code;
mod signup;
mod steps;

use poem::{Route, get, post};

pub fn routes() -> Route {
    Route::new()
        .at("/", get(session::home))
        .at("/signin", get(session::signin_page).post(session::signin))
        .at(
            "/signin/code",
            get(signin_code::code_page).post(signin_code::code),
        )
        .at("/signout", post(session::signout))
        .at("/setup", get(session::setup_page).post(session::setup))
        .at("/signup", get(signup::signup_page).post(signup::signup))
        .at("/signup/pending", get(signup::pending_page))
        .at("/signup/pending/signout", post(signup::pending_signout))
        .at("/admin/signups", get(queues::signups_page))
        .at("/admin/signups/:id/approve", post(queues::approve))
        .at("/admin/signups/:id/reject", post(queues::reject))
        .at("/admin/deletions", get(queues::deletions_page))
        .at(
            "/admin/deletions/:id/process",
            post(queues::process_deletion),
        )
        .at("/account", get(my_account::account_page))
        .at("/account/profile", post(my_account::update_profile))
        .at("/account/email", post(my_account::change_email))
        .at("/account/export", post(my_account::export))
        .at(
            "/account/delete-request",
            post(my_account::request_deletion),
        )
        .at("/orders", get(orders::list))
        .at("/orders/export.csv", get(orders::export))
        .at("/orders/search", post(orders::search))
        .at("/dashboard", get(dashboard::dashboard))
        .at("/inbox", get(dashboard::inbox))
        .at("/orders/new", get(orders::new_page).post(orders::create))
        .at("/orders/:id/steps/:step", post(steps::order_step))
        .at("/orders/:id/lines/:line/:step", post(steps::line_step))
        .at("/orders/:id/offers/:offer/:step", post(steps::offer_step))
        .at("/orders/:id", get(order_detail::detail))
        .at("/orders/:id/messages", post(documents::post_message))
        .at("/orders/:id/documents", post(documents::upload))
        .at("/documents/:id/open", post(documents::open))
        .at("/documents/:id/content", get(documents::content))
        .at("/documents/:id/delete", post(documents::remove))
        .at(
            "/admin/users",
            get(admin::users_page).post(admin::create_user),
        )
        .at("/admin/users/:id/disable", post(admin::disable_user))
        .at(
            "/admin/organizations",
            get(admin::orgs_page).post(admin::create_org),
        )
        .at("/admin/organizations/:id/disable", post(admin::disable_org))
        .at("/admin/organizations/:id", get(admin::profile_page))
        .at(
            "/admin/organizations/:id/profile",
            post(admin::save_profile),
        )
        .at("/admin/audit", get(admin::audit_log))
        .at("/admin/blocked", get(blocked::blocked_page))
        .at("/admin/blocked/unblock", post(blocked::unblock))
        .at(
            "/account/tokens",
            get(account::tokens_page).post(account::create_token),
        )
        .at("/account/tokens/:id/revoke", post(account::revoke_token))
        .at("/account/sessions", get(own_sessions::sessions_page))
        .at("/account/sessions/end", post(own_sessions::end_session))
        .at(
            "/account/sessions/end-others",
            post(own_sessions::end_others),
        )
        .at("/account/second-factor", get(second_factor::page))
        .at(
            "/account/second-factor/confirm",
            post(second_factor::confirm),
        )
        .at(
            "/account/second-factor/replace",
            post(second_factor::replace),
        )
        .at(
            "/account/second-factor/disable",
            post(second_factor::disable),
        )
        .at("/account/second-factor/cancel", post(second_factor::cancel))
        .at(
            "/account/password",
            get(password::page).post(password::change),
        )
        .at("/admin/users/:id/reset-link", post(password::issue_link))
        .at(
            "/admin/users/:id/second-factor-reset",
            post(second_factor::admin_reset),
        )
        .at("/reset/:secret", get(password::reset_page))
        .at("/reset", post(password::reset))
}
