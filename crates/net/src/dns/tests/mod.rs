//! Tests of the DNS server: `answer` unit and property tests, the wire
//! decoder, and the real server driven by `dig` and by raw sockets.

mod answer;
mod bind;
mod dig;
mod harness;
mod message;
mod props;
mod raw;
mod records;
mod wire;
