//! Page routes, one small module per area; handlers are free functions named by verb.

mod account;
mod admin;
mod documents;
mod order_detail;
mod orders;
mod session;

use poem::{Route, get, post};

pub fn routes() -> Route {
    Route::new()
        .at("/", get(session::home))
        .at("/signin", get(session::signin_page).post(session::signin))
        .at("/signout", post(session::signout))
        .at("/setup", get(session::setup_page).post(session::setup))
        .at("/orders", get(orders::list))
        .at("/orders/new", get(orders::new_page).post(orders::create))
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
        .at("/admin/audit", get(admin::audit_log))
        .at(
            "/account/tokens",
            get(account::tokens_page).post(account::create_token),
        )
}
