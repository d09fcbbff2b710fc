//! The public API routes. Each area is its own module of handlers of one style (extractors in,
//! `HsResult<Response>` out); the routing here mounts every area under its v3/v4 prefix and its
//! date-versioned `2026-03` prefix with `Router::nest`, so both spellings serve the same
//! handlers. The layers (`layer`: request accounting and faults, then auth and rate limits) are
//! put on each area before it is nested, where the matched route is known in full: the stats
//! key a request counts under is `"METHOD /prefix/route"`.

mod account;
mod associations;
mod batch;
mod common;
mod lists;
mod objects;
mod preferences;
mod properties;

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::{Extension, Router};

use super::HubSpotState;
use super::model::ObjectType;

pub use lists::{change_members, create_list_in};
pub use objects::{create_company_in, edit_company_in};

type Area = Router<Arc<HubSpotState>>;

/// The routes of one object type under `/{objects}`; contacts may carry their v4 association
/// route (served under the `2026-03` prefix, not under v3).
fn object_type(t: ObjectType, with_associations: bool) -> Area {
    let mut r = Router::new()
        .route("/", get(objects::list_objects).post(objects::create_object))
        .route("/batch/read", post(batch::batch_read))
        .route("/search", post(batch::search_objects));
    r = match t {
        ObjectType::Contacts => r
            .route("/{id}", get(objects::get_object).patch(objects::patch_object).delete(objects::delete_contact))
            .route("/batch/create", post(batch::batch_create))
            .route("/batch/update", post(batch::batch_update))
            .route("/batch/upsert", post(batch::batch_upsert))
            .route("/batch/archive", post(batch::batch_archive))
            .route("/merge", post(batch::merge))
            .route("/gdpr-delete", post(batch::gdpr_delete)),
        ObjectType::Companies => r
            .route("/{id}", get(objects::get_object).patch(objects::patch_object))
            .route("/batch/update", post(batch::batch_update)),
        ObjectType::Notes => {
            r.route("/{id}", get(objects::get_object)).route("/batch/create", post(batch::batch_create))
        }
    };
    if with_associations {
        r = r.route("/{id}/associations/companies", get(associations::contact_company_associations));
    }
    r.layer(Extension(t))
}

/// `/contacts`, `/companies` and `/notes`.
fn objects(with_associations: bool) -> Area {
    Router::new()
        .nest("/contacts", object_type(ObjectType::Contacts, with_associations))
        .nest("/companies", object_type(ObjectType::Companies, false))
        .nest("/notes", object_type(ObjectType::Notes, false))
}

/// The v4 objects path serves only the contact-to-company associations.
fn v4_objects() -> Area {
    Router::new().route("/contacts/{id}/associations/companies", get(associations::contact_company_associations))
}

fn association_batches() -> Area {
    Router::new().route("/contacts/companies/batch/read", post(associations::association_batch_read))
}

fn property_routes() -> Area {
    Router::new()
        .route("/{object_type}", get(properties::list_properties).post(properties::create_property))
        .route("/{object_type}/groups", get(properties::list_groups).post(properties::create_group))
        .route("/{object_type}/{name}", get(properties::get_property))
}

fn list_routes() -> Area {
    Router::new()
        .route("/", get(lists::get_lists).post(lists::create_list))
        .route("/search", post(lists::search_lists))
        .route("/{list_id}", get(lists::get_list).delete(lists::delete_list))
        .route("/object-type-id/{object_type}/name/{name}", get(lists::list_by_name))
        .route("/{list_id}/memberships", get(lists::members))
        .route("/{list_id}/memberships/join-order", get(lists::members_in_join_order))
        .route("/{list_id}/memberships/add", put(lists::add_members))
        .route("/{list_id}/memberships/remove", put(lists::remove_members))
        .route("/{list_id}/memberships/add-and-remove", put(lists::add_and_remove_members))
        .route("/records/{object_type}/{record_id}/memberships", get(lists::record_lists))
        .route("/records/memberships/batch/read", post(lists::record_lists_batch))
}

fn preference_routes() -> Area {
    Router::new()
        .route("/definitions", get(preferences::get_definitions))
        .route("/statuses/{email}", get(preferences::get_statuses).post(preferences::set_status))
        .route(
            "/statuses/{email}/unsubscribe-all",
            get(preferences::get_unsubscribe_all).post(preferences::unsubscribe_all),
        )
}

fn account_routes() -> Area {
    Router::new().route("/details", get(account::account_details))
}

/// Every public route in both spellings; `layer` wraps each area (see the module doc).
pub fn routes(state: Arc<HubSpotState>, layer: impl Fn(Router) -> Router) -> Router {
    let area = |r: Area| layer(r.with_state(state.clone()));
    let spellings: [(&str, Area); 13] = [
        ("/crm/v3/objects", objects(false)),
        ("/crm/objects/2026-03", objects(true)),
        ("/crm/v4/objects", v4_objects()),
        ("/crm/v4/associations", association_batches()),
        ("/crm/associations/2026-03", association_batches()),
        ("/crm/v3/properties", property_routes()),
        ("/crm/properties/2026-03", property_routes()),
        ("/crm/v3/lists", list_routes()),
        ("/crm/lists/2026-03", list_routes()),
        ("/communication-preferences/v4", preference_routes()),
        ("/communication-preferences/2026-03", preference_routes()),
        ("/account-info/v3", account_routes()),
        ("/account-info/2026-03", account_routes()),
    ];
    spellings.into_iter().fold(Router::new(), |r, (prefix, routes)| r.nest(prefix, area(routes)))
}
