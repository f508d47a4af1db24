//! PostgreSQL: reached as its superuser through the Unix socket by peer
//! authentication ([`connect`]), so that no password exists at all;
//! [`setup`] takes back what a fresh cluster grants everyone.

pub mod connect;
pub mod setup;
