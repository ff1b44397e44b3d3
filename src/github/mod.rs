//! GitHub itself: the rules its names follow, its pagination, and the clients verdict talks to
//! GitHub's API through: as the App and its installations (`app`: catch-up, backfill,
//! write-back) and as a signed-in person (`sign_in`).

pub mod app;
pub mod names;
pub mod pages;
pub mod sign_in;
pub mod stand_in;
