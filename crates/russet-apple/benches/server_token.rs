//! `cargo bench -p russet-apple --bench server_token`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use russet_apple::server_token::{EncryptedServerToken, generate_key_pair, load_key_pair};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/abm-server-token/"
);

fn read(name: &str) -> Vec<u8> {
    match std::fs::read(format!("{FIXTURES}{name}")) {
        Ok(bytes) => bytes,
        Err(e) => panic!("cannot read fixture {name}: {e}"),
    }
}

fn benches(c: &mut Criterion) {
    let token = read("apple-mdm-client-tests-1-server-token.p7m");
    let key_pem = String::from_utf8(read("apple-mdm-client-tests-1.pem")).unwrap();
    let cert_pem = String::from_utf8(read("apple-mdm-client-tests-1.crt")).unwrap();
    let (key, cert) = load_key_pair(&key_pem, &cert_pem).unwrap();

    c.bench_function("parse+decrypt the real Apple token", |b| {
        b.iter(|| {
            let parsed = EncryptedServerToken::parse(black_box(&token)).unwrap();
            black_box(parsed.decrypt(&key, &cert).unwrap())
        })
    });

    c.bench_function("parse the real Apple token (no decryption)", |b| {
        b.iter(|| black_box(EncryptedServerToken::parse(black_box(&token)).unwrap()))
    });

    let not_before = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let mut group = c.benchmark_group("keys");
    // RSA key generation takes a random amount of time (prime search): few, long samples.
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(15));
    group.bench_function("generate_key_pair", |b| {
        b.iter(|| black_box(generate_key_pair("russet-bench", not_before, 3650).unwrap()))
    });
    group.finish();
}

criterion_group!(server_token, benches);
criterion_main!(server_token);
