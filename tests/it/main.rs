//! The one integration-test binary: the real `scanbridge` binary over real files, pipes and sockets.

mod alerting;
mod aws_cli;
mod daemon;
mod delivery;
mod email;
mod ingest;
mod reload;
mod route;
mod secrets;
mod slack;
mod smtp;
mod support;
mod test_pattern;
mod topic;
mod webhook;
