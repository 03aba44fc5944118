//! placeholder
#![allow(dead_code)]
mod ffi;
