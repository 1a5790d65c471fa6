//! End-to-end tests: one binary, a module per subsystem. Fixtures are built by umoci
//! and skopeo from Debian's static busybox; berth never builds its own test images.

mod appc;
mod concurrency;
mod dropin;
mod erofs;
mod exit_codes;
mod export;
mod fault_registry;
mod fetch_layout;
mod hostile_layouts;
mod policy;
mod registry;
mod render;
mod run;
mod run_image;
mod runtime;
mod sandbox;
mod support;
mod system;
mod tree;
mod trust;
