//! The controller against the API double, the double itself, the
//! operator's building blocks, the workspace's rules, and autopilot against
//! a real Prometheus: one test binary, so the workspace links it once.
//! (`migration` and `shared` stay binaries of their own, as does `e2e`,
//! which has its own harness.)

mod harness;

mod apply;
mod autopilot;
mod double;
mod expose;
mod install;
mod layers;
mod modules;
mod more;
mod operations;
mod ownership;
mod prometheus;
mod reconcile;
