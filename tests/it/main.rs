//! tandem's integration tests: one binary, real servers on port 0, real processes.

mod access;
mod artifact_store;
mod assets;
mod backup;
mod bad_input;
mod cli;
mod concurrency;
mod crash;
mod gateway;
mod hostile;
mod jobs;
mod memory;
mod partition;
mod replay;
mod restore;
mod search;
mod secrets;
mod support;
mod witness;
