//! GitHub itself: the rules its names follow, and (as it grows) the one client verdict talks
//! to GitHub's API through.

pub mod names;
pub mod pages;
pub mod sign_in;
pub mod stand_in;
