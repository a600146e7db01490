//! The checks, one module per group. Each check is a plain function of a
//! [`crate::ctx::Ctx`]; its id, section, level and title are in its
//! module's `CHECKS` table.

pub mod classic;
pub mod extensions;
pub mod structured;
