//! Integration tests: the real binary against real servers on 127.0.0.1
//! (wiremock's HTTP server), with a temporary data folder each.
//! One test binary with modules keeps link time down.

mod browser;
mod check;
mod daemon;
mod desk;
mod email;
mod golden;
mod helpers;
mod history;
mod pairs;
mod pdf;
mod reliability;
mod render;
mod smtp;
mod webhook;
