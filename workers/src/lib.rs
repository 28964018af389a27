//! Worker client.
