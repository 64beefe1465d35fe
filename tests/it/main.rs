//! The one integration-test binary: the real `scanbridge` binary over real files, pipes and sockets.

mod alerting;
mod aws_cli;
mod daemon;
mod delivery;
mod disk;
mod email;
mod hostile;
mod ingest;
mod layout;
mod lint;
mod parse_once;
mod reload;
mod reports;
mod route;
mod secrets;
mod security;
mod slack;
mod smtp;
mod sns;
mod support;
mod test_pattern;
mod topic;
mod webhook;
