//! Sources: sockets and files in, raw messages out, with drop accounting.

pub mod listen;
pub mod udp;
