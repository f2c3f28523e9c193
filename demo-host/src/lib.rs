//! # demo-host
//!
//! A Wolf-compatible Moonlight host inside moongate (being written).

pub mod media;
pub mod wolf_api;
