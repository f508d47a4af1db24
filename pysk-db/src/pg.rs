//! PostgreSQL: reached as its superuser through the Unix socket by peer
//! authentication ([`connect`]), so that no password exists at all;
//! [`setup`] takes back what a fresh cluster grants everyone; [`scram`]
//! makes and checks password verifiers on the client; [`create`] makes a
//! database with its owner, [`password`] sets a role's, [`drop`] removes a
//! database and its role, [`vacuum`] keeps every table in shape without
//! waiting on a lock.

pub mod apply;
pub mod connect;
pub mod create;
pub mod drop;
pub mod password;
pub mod scram;
pub mod setup;
pub mod vacuum;
