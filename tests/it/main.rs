//! The one integration-test binary: the real `scanbridge` binary over real files, pipes and sockets.

mod alerting;
mod aws_cli;
mod check_patterns;
mod daemon;
mod data_dir;
mod delivery;
mod disk;
mod email;
mod escaping;
mod hostile;
mod ingest;
mod layout;
mod parse_once;
mod redirects;
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
