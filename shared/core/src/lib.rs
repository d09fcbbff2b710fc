//! hmsync core
