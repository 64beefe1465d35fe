//! The one integration-test binary: the real `scanbridge` binary over real files, pipes and sockets.

#[macro_use]
mod stores;

mod admin;
mod alerting;
mod api_destination;
mod archive;
mod archive_api;
mod aws_cli;
mod check_patterns;
mod compose;
mod daemon;
mod data_dir;
mod delivery;
mod disk;
mod email;
mod escaping;
mod first_hour;
mod hostile;
mod ingest;
mod inspector;
mod layout;
mod line_rate;
mod lint;
mod pagers;
mod parse_once;
mod readme;
mod redirects;
mod reload;
mod reports;
mod resolve;
mod restore;
mod route;
mod secrets;
mod security;
mod sharing;
mod slack;
mod smtp;
mod sns;
mod store_cli;
mod support;
mod test_pattern;
mod topic;
mod ui;
mod vendor;
mod webhook;
