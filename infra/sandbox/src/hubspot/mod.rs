//! The simulated HubSpot API.
