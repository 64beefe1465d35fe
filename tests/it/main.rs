//! The one integration-test binary: the real `scanbridge` binary over real files, pipes and sockets.

mod support;
mod test_pattern;
