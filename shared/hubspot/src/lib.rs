//! HubSpot API client: auth (static token, OAuth), batching, paging, pacing, typed errors, webhook signatures.
