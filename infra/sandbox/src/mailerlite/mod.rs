//! The simulated MailerLite API.
