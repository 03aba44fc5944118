//! Recovery: sources that die and come back, devices that fail.
