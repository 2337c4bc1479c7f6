//! `volley`: privacy-preserving training of a CNN's last layer on CKKS ciphertexts.
fn main() {}
