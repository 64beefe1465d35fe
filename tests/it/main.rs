//! The one integration-test binary: the real `scanbridge` binary over real files, pipes and sockets.

mod aws_cli;
mod daemon;
mod delivery;
mod email;
mod ingest;
mod reload;
mod smtp;
mod support;
mod test_pattern;
