//! MailerLite API client: batching, paging, pacing, typed errors, webhook signatures.
