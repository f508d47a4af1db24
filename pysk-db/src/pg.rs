//! PostgreSQL: reached as its superuser through the Unix socket by peer
//! authentication ([`connect`]), so that no password exists at all.

pub mod connect;
