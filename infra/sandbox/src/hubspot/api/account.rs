//! Account details.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::common::*;
use crate::hubspot::errors::HsResult;

pub(super) async fn account_details(State(st): St) -> HsResult<Response> {
    let c = st.config();
    Ok(ok(json!({
        "portalId": c.portal_id,
        "accountType": "STANDARD",
        "timeZone": "US/Eastern",
        "companyCurrency": "USD",
        "additionalCurrencies": [],
        "utcOffset": "-05:00",
        "utcOffsetMilliseconds": -18_000_000,
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
    })))
}
