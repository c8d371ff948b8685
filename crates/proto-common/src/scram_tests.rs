//! Tests of SCRAM-SHA-256: the RFC 7677 3 exchange octet for octet, then
//! each way a client can get it wrong.

use super::*;

const USER: &str = "user";
const PASSWORD: &str = "pencil";
const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn iterations(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn rfc_keys() -> ScramKeys {
    derive_keys(
        PASSWORD,
        &base64_decode(SALT_B64).unwrap(),
        iterations(MIN_ITERATIONS),
    )
}

fn rfc_nonce() -> ServerNonce {
    ServerNonce::from_printable(SERVER_NONCE).unwrap()
}

/// The server after the RFC's client-first and server-first messages.
fn rfc_server() -> ScramSentFirst {
    let need = ScramServer::start(CLIENT_FIRST.as_bytes()).unwrap();
    need.with_keys(rfc_keys(), &rfc_nonce()).1
}

#[test]
fn rfc_7677_example_exchange_octet_for_octet() {
    let need = ScramServer::start(CLIENT_FIRST.as_bytes()).unwrap();
    assert_eq!(need.username(), USER);
    assert_eq!(need.authzid(), None);
    let (server_first, state) = need.with_keys(rfc_keys(), &rfc_nonce());
    assert_eq!(String::from_utf8(server_first).unwrap(), SERVER_FIRST);
    let (server_final, outcome) = state.finish(CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(server_final).unwrap(), SERVER_FINAL);
    assert_eq!(
        outcome,
        ScramOutcome {
            username: USER.to_string(),
            authzid: None
        }
    );
}

#[test]
fn our_client_reproduces_the_rfc_messages() {
    let (client, first) = ScramClient::new(USER, PASSWORD, None, CLIENT_NONCE);
    assert_eq!(first, CLIENT_FIRST.as_bytes());
    let (fin, verifier) = client.server_first(SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(fin).unwrap(), CLIENT_FINAL);
    verifier.server_final(SERVER_FINAL.as_bytes()).unwrap();
}

#[test]
fn derive_keys_round_trip_with_another_salt_and_count() {
    let salt = [7u8; 16];
    let keys = derive_keys("correct horse", &salt, iterations(4100));
    assert_eq!(keys, derive_keys("correct horse", &salt, iterations(4100)));
    assert_ne!(keys, derive_keys("correct horse", &salt, iterations(4096)));
    assert_ne!(keys, derive_keys("correct horsE", &salt, iterations(4100)));
    assert_ne!(
        keys,
        derive_keys("correct horse", &[8u8; 16], iterations(4100))
    );
    assert_eq!(
        (keys.salt.as_slice(), keys.iterations.get()),
        (&salt[..], 4100)
    );
    // Keys made from the password log the client in; others do not.
    for (password, ok) in [("correct horse", true), ("correct horsE", false)] {
        let (client, first) = ScramClient::new("bob", password, None, "abcdefgh");
        let need = ScramServer::start(&first).unwrap();
        let nonce = ServerNonce::from_random(&[0x5a; SERVER_NONCE_LEN]);
        let (server_first, state) = need.with_keys(keys.clone(), &nonce);
        let (fin, verifier) = client.server_first(&server_first).unwrap();
        match state.finish(&fin) {
            Ok((server_final, _)) => {
                assert!(ok);
                verifier.server_final(&server_final).unwrap();
            }
            Err(e) => {
                assert!(!ok);
                assert_eq!(e, ScramError::InvalidProof);
            }
        }
    }
}

#[test]
fn password_is_saslprepped_before_hashing() {
    // RFC 4013 3: "I<U+00AD>X" and "IX" are the same password.
    let salt = [1u8; 16];
    assert_eq!(
        derive_keys("I\u{00AD}X", &salt, iterations(4096)),
        derive_keys("IX", &salt, iterations(4096))
    );
}

#[test]
fn wrong_password_is_invalid_proof() {
    let (client, first) = ScramClient::new(USER, "pencils", None, CLIENT_NONCE);
    assert_eq!(first, CLIENT_FIRST.as_bytes());
    let (fin, _) = client.server_first(SERVER_FIRST.as_bytes()).unwrap();
    let err = rfc_server().finish(&fin).unwrap_err();
    assert_eq!(err, ScramError::InvalidProof);
    assert_eq!(err.server_final(), b"e=invalid-proof");
    assert!(!err.is_malformed());
}

#[test]
fn a_tampered_proof_is_invalid_proof() {
    let tampered = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
    assert_eq!(
        rfc_server().finish(tampered.as_bytes()),
        Err(ScramError::InvalidProof)
    );
}

#[test]
fn mismatched_nonce_fails() {
    // The client's nonce alone, and another server nonce.
    for nonce in [
        CLIENT_NONCE.to_string(),
        format!("{CLIENT_NONCE}%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1"),
    ] {
        let fin = format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let err = rfc_server().finish(fin.as_bytes()).unwrap_err();
        assert_eq!(err, ScramError::NonceMismatch);
        assert_eq!(err.server_final(), b"e=other-error");
    }
}

#[test]
fn channel_binding_must_repeat_the_gs2_header() {
    // "eSws" is "y,," but the client said "n,,".
    let fin = CLIENT_FINAL.replace("c=biws", "c=eSws");
    let err = rfc_server().finish(fin.as_bytes()).unwrap_err();
    assert_eq!(err, ScramError::ChannelBindingsDontMatch);
    assert_eq!(err.server_final(), b"e=channel-bindings-dont-match");
}

#[test]
fn y_flag_is_accepted_and_binds_as_esws() {
    let first = format!("y,,n={USER},r={CLIENT_NONCE}");
    let need = ScramServer::start(first.as_bytes()).unwrap();
    let (_, state) = need.with_keys(rfc_keys(), &rfc_nonce());
    // The RFC proof was computed over "c=biws": with "c=eSws" the
    // AuthMessage differs, so only the binding check may pass, not the proof.
    let fin = CLIENT_FINAL.replace("c=biws", "c=eSws");
    assert_eq!(
        state.clone().finish(fin.as_bytes()),
        Err(ScramError::InvalidProof)
    );
    assert_eq!(
        state.finish(CLIENT_FINAL.as_bytes()),
        Err(ScramError::ChannelBindingsDontMatch)
    );
}

#[test]
fn p_flag_is_refused_since_plus_is_not_offered() {
    let err = ScramServer::start(b"p=tls-exporter,,n=user,r=abc").unwrap_err();
    assert_eq!(err, ScramError::ChannelBindingNotSupported);
    assert_eq!(err.server_final(), b"e=channel-binding-not-supported");
    assert!(!err.is_malformed());
}

#[test]
fn authzid_is_returned_and_bound() {
    let (client, first) = ScramClient::new("bob", "pw", Some("alice,=x"), "nonce1");
    assert_eq!(first, b"n,a=alice=2C=3Dx,n=bob,r=nonce1");
    let need = ScramServer::start(&first).unwrap();
    assert_eq!(need.authzid(), Some("alice,=x"));
    let keys = derive_keys("pw", b"salt", iterations(4096));
    let (server_first, state) = need.with_keys(keys, &rfc_nonce());
    let (fin, verifier) = client.server_first(&server_first).unwrap();
    // c= carries "n,a=alice=2C=3Dx,", the whole GS2 header.
    let header = base64_encode(b"n,a=alice=2C=3Dx,");
    assert!(String::from_utf8_lossy(&fin).starts_with(&format!("c={header},")));
    let (server_final, outcome) = state.clone().finish(&fin).unwrap();
    verifier.server_final(&server_final).unwrap();
    assert_eq!(outcome.username, "bob");
    assert_eq!(outcome.authzid.as_deref(), Some("alice,=x"));
    // "biws" (no authzid) does not match that header.
    let unbound = String::from_utf8(fin)
        .unwrap()
        .replacen(&format!("c={header}"), "c=biws", 1);
    assert_eq!(
        state.finish(unbound.as_bytes()),
        Err(ScramError::ChannelBindingsDontMatch)
    );
}

#[test]
fn usernames_are_unescaped_and_saslprepped() {
    let need = ScramServer::start(b"n,,n=a=2Cb=3dc,r=x").unwrap();
    assert_eq!(need.username(), "a,b=c");
    let need = ScramServer::start("n,,n=I\u{00AD}X,r=x".as_bytes()).unwrap();
    assert_eq!(need.username(), "IX");
    let need = ScramServer::start("n,,n=\u{2168},r=x".as_bytes()).unwrap();
    assert_eq!(need.username(), "IX");
    for bad in [
        &b"n,,n=a=2Xb,r=x"[..],
        b"n,,n=a=,r=x",
        b"n,,n=a=2,r=x",
        b"n,,n=a\0b,r=x",
        b"n,,n=\xc2\xad,r=x",
        "n,,n=bell\u{7},r=x".as_bytes(),
        b"n,a=x=41,n=u,r=x",
    ] {
        assert_eq!(
            ScramServer::start(bad).unwrap_err(),
            ScramError::InvalidUsernameEncoding,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = format!("n,,n={},r=x", "a".repeat(MAX_NAME_LEN + 1));
    assert_eq!(
        ScramServer::start(long.as_bytes()),
        Err(ScramError::InvalidUsernameEncoding)
    );
}

#[test]
fn garbage_client_first_is_invalid_encoding() {
    let long_nonce = format!("n,,n=u,r={}", "x".repeat(MAX_CLIENT_NONCE_LEN + 1));
    for bad in [
        &b""[..],
        b"\xff\xfe",
        b"n",
        b"n,",
        b"n,,",
        b"x,,n=u,r=abc",
        b"n,b=z,n=u,r=abc",
        b"n,,r=abc,n=u",
        b"n,,n=u",
        b"n,,n=u,r=",
        b"n,,n=u,r=a b",
        b"n,,n=u,r=abc,",
        b"n,,n=u,r=abc,1=x",
        b"n,,n=u,r=abc,x=",
        b"n,,n=u,r=\xc3\xa9",
        long_nonce.as_bytes(),
    ] {
        assert_eq!(
            ScramServer::start(bad).unwrap_err(),
            ScramError::InvalidEncoding,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(ScramError::InvalidEncoding.is_malformed());
}

#[test]
fn mandatory_extensions_are_refused_optional_ones_ignored() {
    assert_eq!(
        ScramServer::start(b"n,,m=ext,n=u,r=abc"),
        Err(ScramError::ExtensionsNotSupported)
    );
    let need = ScramServer::start(b"n,,n=u,r=abc,x=future").unwrap();
    assert_eq!(need.username(), "u");
}

#[test]
fn garbage_client_final_is_invalid_encoding() {
    let nonce = format!("{CLIENT_NONCE}{SERVER_NONCE}");
    let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    for bad in [
        String::new(),
        "garbage".to_string(),
        format!("c=biws,r={nonce}"),
        format!("c=biws,r={nonce},p="),
        format!("c=biws,r={nonce},p=!!!!"),
        format!("c=biws,r={nonce},p=dHzb"),
        format!("c=bi!s,r={nonce},p={proof}"),
        format!("r={nonce},c=biws,p={proof}"),
        format!("c=biws,p={proof}"),
        format!("c=biws,r={nonce},1=x,p={proof}"),
        format!("c=biws,r={nonce},p={proof},x=y"),
    ] {
        assert_eq!(
            rfc_server().finish(bad.as_bytes()),
            Err(ScramError::InvalidEncoding),
            "{bad}"
        );
    }
    assert_eq!(
        rfc_server().finish(b"c=biws,\xff"),
        Err(ScramError::InvalidEncoding)
    );
    // An optional extension before the proof is ignored (and, being part
    // of the AuthMessage, makes the RFC's proof wrong).
    let ext = format!("c=biws,r={nonce},x=y,p={proof}");
    assert_eq!(
        rfc_server().finish(ext.as_bytes()),
        Err(ScramError::InvalidProof)
    );
}

#[test]
fn base64_of_each_step_is_strict() {
    // The protocols decode each response with base64_decode before the
    // step; garbage there never reaches the mechanism.
    for bad in ["biws!", "bixz=", "n,,n=user", "====", "Zg"] {
        assert!(base64_decode(bad).is_err(), "{bad}");
    }
    assert_eq!(
        base64_decode(&base64_encode(CLIENT_FIRST.as_bytes())).unwrap(),
        CLIENT_FIRST.as_bytes()
    );
}

#[test]
fn server_nonces_are_printable_and_the_random_ones_base64() {
    let n = ServerNonce::from_random(&[0xff; SERVER_NONCE_LEN]);
    assert_eq!(n.as_str(), "////////////////////////");
    assert!(ServerNonce::from_printable("a,b").is_none());
    assert!(ServerNonce::from_printable("").is_none());
    assert!(ServerNonce::from_printable("a b").is_none());
    let (server_first, _) = ScramServer::start(CLIENT_FIRST.as_bytes())
        .unwrap()
        .with_keys(rfc_keys(), &n);
    assert!(
        String::from_utf8(server_first)
            .unwrap()
            .starts_with("r=rOprNGfwEbeRWgbNEkqO////////////////////////,s=")
    );
}

#[test]
fn keys_never_print() {
    let keys = rfc_keys();
    let stored = base64_encode(&keys.stored_key);
    let server = base64_encode(&keys.server_key);
    let shown = format!("{keys:?} {:?}", rfc_server());
    assert!(
        !shown.contains(&stored) && !shown.contains(&server),
        "{shown}"
    );
    assert!(
        !shown.contains(&format!("{:?}", keys.stored_key)),
        "{shown}"
    );
    assert!(shown.contains("4096"), "{shown}");
    let (client, _) = ScramClient::new(USER, PASSWORD, None, CLIENT_NONCE);
    assert!(!format!("{client:?}").contains(PASSWORD));
}

#[test]
fn every_error_has_its_rfc_5802_value() {
    let all = [
        (ScramError::InvalidEncoding, "invalid-encoding"),
        (
            ScramError::ExtensionsNotSupported,
            "extensions-not-supported",
        ),
        (
            ScramError::InvalidUsernameEncoding,
            "invalid-username-encoding",
        ),
        (
            ScramError::ChannelBindingNotSupported,
            "channel-binding-not-supported",
        ),
        (
            ScramError::ChannelBindingsDontMatch,
            "channel-bindings-dont-match",
        ),
        (ScramError::NonceMismatch, "other-error"),
        (ScramError::InvalidProof, "invalid-proof"),
    ];
    for (e, v) in all {
        assert_eq!(e.server_error_value(), v);
        // Never unknown-user: that would reveal who exists.
        assert_ne!(v, "unknown-user");
    }
}
