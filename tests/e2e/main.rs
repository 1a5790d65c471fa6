//! End-to-end tests: one binary, a module per subsystem. Fixtures are built by umoci
//! and skopeo from Debian's static busybox; berth never builds its own test images.

mod appc;
mod concurrency;
mod containers;
mod crash;
mod dropin;
mod erofs;
mod exit_codes;
mod export;
mod fault_registry;
mod fetch_layout;
mod hostile_layouts;
mod lazy;
mod policy;
mod progress;
mod realm;
mod registry;
mod render;
mod run;
mod run_image;
mod runtime;
mod sandbox;
mod serve;
mod signatures;
mod support;
mod system;
mod tar_quirks;
mod tree;
mod trust;
