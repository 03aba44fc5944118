//! Hostile and broken inputs and outputs (written by the hardening helper).
