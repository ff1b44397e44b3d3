//! The feedback loop: accountability rules judge the decision records. (Alerts and
//! write-back into GitHub build on the findings; see the project's issues.)

pub mod facts;
pub mod judge;
pub mod rules;
