//! Signing cost per outbound message, for bench/auth.sh:
//! `dkim_sign_bench [MSGS] [BYTES]` makes an RSA 2048 and an Ed25519 key
//! in a temporary data directory and times `Signer::sign` (what the queue
//! worker calls per message) with each alone and with both.
#![forbid(unsafe_code)]

use std::time::Instant;

use delivery::dkim::{Algorithm, Signer, generate};

fn main() {
    let mut args = std::env::args().skip(1);
    let msgs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let bytes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4096);
    let mut msg = b"From: Alice <alice@example.test>\r\nTo: bob@remote.example\r\n\
Subject: bench\r\nMessage-ID: <bench@example.test>\r\n\r\n"
        .to_vec();
    while msg.len() < bytes {
        msg.extend_from_slice(
            b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n",
        );
    }
    for (name, algs) in [
        ("rsa-2048", &[Algorithm::Rsa][..]),
        ("ed25519", &[Algorithm::Ed25519][..]),
        ("both", &[Algorithm::Rsa, Algorithm::Ed25519][..]),
    ] {
        let Ok(dir) = tempfile::tempdir() else {
            return eprintln!("no temporary directory");
        };
        for a in algs {
            if let Err(e) = generate(dir.path(), "example.test", None, *a) {
                return eprintln!("generate: {e}");
            }
        }
        let signer = Signer::new(dir.path());
        let first = signer.sign(msg.clone());
        if first.len() == msg.len() {
            return eprintln!("{name}: nothing signed");
        }
        let t = Instant::now();
        for _ in 0..msgs {
            std::hint::black_box(signer.sign(msg.clone()));
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / msgs as f64;
        println!(
            "dkim signing {name}: {msgs} msgs x {} B: {us:.0} us per message",
            msg.len()
        );
    }
}
