//! The one integration-test binary: the real `scanbridge` binary over real sockets and files.
