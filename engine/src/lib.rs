//! hapwatch's decisions, pure: events and time go in, figures and changes
//! come out. Nothing here opens a socket or a file or reads the clock on its
//! own (`timezone::now_ms` is for callers): the daemon and `replay` drive it
//! the same way, and Cargo keeps it from reaching back into I/O.

pub mod de;
pub mod escape;
pub mod fasthash;
pub mod figures;
pub mod hist;
pub mod incidents;
pub mod maintenance;
pub mod notify;
pub mod reloads;
pub mod route;
pub mod rules;
pub mod timezone;
pub mod urls;
pub mod windows;
