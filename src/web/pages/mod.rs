//! Page routes, one small module per area; handlers are free functions named by verb.

mod account;
mod admin;
pub(crate) mod dashboard;
mod documents;
pub(crate) mod order_detail;
pub(crate) mod orders;
mod password;
mod second_factor;
mod session;
mod signin_code;
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
        .at(
            "/account/tokens",
            get(account::tokens_page).post(account::create_token),
        )
        .at("/account/tokens/:id/revoke", post(account::revoke_token))
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
