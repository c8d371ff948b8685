//! Tests for command parsing: case, arguments, numbers at and past their
//! limits, the RFC's own example traces, round trips, and random lines
//! that must never panic.

use super::*;

fn parse(line: &str) -> Result<Command, CommandError> {
    parse_command(line.as_bytes())
}

fn n(v: u32) -> MsgNum {
    MsgNum::new(v).unwrap()
}

#[test]
fn verbs_are_case_insensitive() {
    assert_eq!(parse("user user1"), Ok(Command::User("user1".into())));
    assert_eq!(parse("StAt"), Ok(Command::Stat));
    assert_eq!(parse("retr 1"), Ok(Command::Retr(n(1))));
    assert_eq!(
        parse("top 1 0"),
        Ok(Command::Top {
            msg: n(1),
            lines: 0
        })
    );
}

#[test]
fn rfc_1939_example_session_parses() {
    // RFC 1939 10, the client side of the example POP3 session.
    assert_eq!(parse("STAT"), Ok(Command::Stat));
    assert_eq!(parse("LIST"), Ok(Command::List(None)));
    assert_eq!(parse("LIST 2"), Ok(Command::List(Some(n(2)))));
    assert_eq!(parse("RETR 1"), Ok(Command::Retr(n(1))));
    assert_eq!(parse("DELE 1"), Ok(Command::Dele(n(1))));
    assert_eq!(parse("UIDL"), Ok(Command::Uidl(None)));
    assert_eq!(
        parse("TOP 1 10"),
        Ok(Command::Top {
            msg: n(1),
            lines: 10
        })
    );
    assert_eq!(parse("QUIT"), Ok(Command::Quit));
    assert_eq!(parse("USER mrose"), Ok(Command::User("mrose".into())));
    assert_eq!(parse("PASS secret"), Ok(Command::Pass("secret".into())));
}

#[test]
fn pass_keeps_spaces_in_the_password() {
    assert_eq!(
        parse("PASS  two words "),
        Ok(Command::Pass(" two words ".into()))
    );
    assert!(matches!(parse("PASS"), Err(CommandError::Syntax(_))));
    assert!(matches!(parse("PASS "), Err(CommandError::Syntax(_))));
}

#[test]
fn negative_zero_and_overflowing_numbers_are_bad_numbers() {
    for line in [
        "RETR -1",
        "RETR 0",
        "RETR +1",
        "RETR 1.5",
        "RETR x",
        "RETR 4294967296",
        "RETR 99999999999999999999",
        "DELE 00",
        "LIST -3",
        "TOP 1 -5",
        "TOP 1 99999999999999999999",
        "TOP 0 1",
        "UIDL 1e3",
    ] {
        assert!(
            matches!(parse(line), Err(CommandError::BadNumber(_))),
            "{line}: {:?}",
            parse(line)
        );
    }
    assert_eq!(parse("RETR 4294967295"), Ok(Command::Retr(n(u32::MAX))));
    assert_eq!(parse("RETR 007"), Ok(Command::Retr(n(7))));
    assert_eq!(
        parse("TOP 1 18446744073709551615"),
        Ok(Command::Top {
            msg: n(1),
            lines: u64::MAX
        })
    );
}

#[test]
fn missing_or_extra_arguments_are_syntax_errors() {
    for line in [
        "RETR",
        "DELE",
        "TOP 1",
        "TOP",
        "TOP 1 2 3",
        "USER",
        "USER a b",
        "STAT 1",
        "LIST 1 2",
        "QUIT now",
        "NOOP x",
        "CAPA x",
    ] {
        assert!(
            matches!(parse(line), Err(CommandError::Syntax(_))),
            "{line}: {:?}",
            parse(line)
        );
    }
}

#[test]
fn unknown_empty_and_garbage_lines_are_unknown() {
    for line in [
        &b""[..],
        b"HELO x",
        b"RETRX 1",
        b"RE",
        b" STAT",
        b"\0\0\0\0",
        b"\xff\xfe",
    ] {
        assert_eq!(parse_command(line), Err(CommandError::Unknown), "{line:?}");
    }
}

#[test]
fn nul_and_control_bytes_in_arguments_are_refused() {
    for line in [&b"USER a\0b"[..], b"PASS \0", b"RETR 1\0", b"USER \x1b[2J"] {
        assert!(
            matches!(parse_command(line), Err(CommandError::Syntax(_))),
            "{line:?}"
        );
    }
    assert!(matches!(
        parse_command(b"USER \xff"),
        Err(CommandError::Syntax(_))
    ));
}

#[test]
fn apop_is_not_supported() {
    assert!(matches!(
        parse("APOP mrose c4c9334bac560ecc979e58001b3e22fb"),
        Err(CommandError::NotSupported(_))
    ));
    let r = parse("apop x y").unwrap_err().response();
    assert!(!r.ok);
    assert!(r.text.contains("not supported"), "{}", r.text);
}

#[test]
fn auth_forms() {
    assert_eq!(parse("AUTH"), Ok(Command::Auth(None)));
    assert_eq!(
        parse("auth plain"),
        Ok(Command::Auth(Some(AuthStart {
            mechanism: "PLAIN".into(),
            initial_response: None
        })))
    );
    assert_eq!(
        parse("AUTH PLAIN AGZyZWQAc2VjcmV0"),
        Ok(Command::Auth(Some(AuthStart {
            mechanism: "PLAIN".into(),
            initial_response: Some("AGZyZWQAc2VjcmV0".into())
        })))
    );
    assert!(matches!(parse("AUTH PL@IN"), Err(CommandError::Syntax(_))));
    assert!(matches!(
        parse("AUTH ABCDEFGHIJKLMNOPQRSTU"),
        Err(CommandError::Syntax(_))
    ));
    assert!(matches!(parse("AUTH A b c"), Err(CommandError::Syntax(_))));
}

#[test]
fn stls_and_capa_take_no_arguments() {
    assert_eq!(parse("stls"), Ok(Command::Stls));
    assert_eq!(parse("capa"), Ok(Command::Capa));
}

#[test]
fn errors_answer_err() {
    for e in [
        CommandError::Unknown,
        CommandError::Syntax("Syntax: RETR msg"),
        CommandError::BadNumber("bad"),
        CommandError::NotSupported("no"),
    ] {
        let bytes = e.response().to_bytes();
        assert!(bytes.starts_with(b"-ERR "), "{bytes:?}");
    }
}

#[test]
fn commands_round_trip() {
    let commands = [
        Command::User("user1".into()),
        Command::User("alice@example.test".into()),
        Command::Pass("1111".into()),
        Command::Pass("with space".into()),
        Command::Stat,
        Command::List(None),
        Command::List(Some(n(3))),
        Command::Retr(n(1)),
        Command::Dele(n(u32::MAX)),
        Command::Noop,
        Command::Rset,
        Command::Top {
            msg: n(2),
            lines: 0,
        },
        Command::Top {
            msg: n(2),
            lines: u64::MAX,
        },
        Command::Quit,
        Command::Uidl(None),
        Command::Uidl(Some(n(9))),
        Command::Capa,
        Command::Stls,
        Command::Auth(None),
        Command::Auth(Some(AuthStart {
            mechanism: "PLAIN".into(),
            initial_response: None,
        })),
        Command::Auth(Some(AuthStart {
            mechanism: "PLAIN".into(),
            initial_response: Some("=".into()),
        })),
    ];
    for c in commands {
        assert_eq!(parse(&c.to_string()), Ok(c.clone()), "{c}");
        assert!(parse(&c.to_string().to_lowercase()).is_ok(), "{c}");
    }
}

#[test]
fn random_lines_never_panic() {
    let mut state = 0xDEAD_BEEF_CAFE_F00Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words: [&[u8]; 14] = [
        b"RETR",
        b"top",
        b"LIST",
        b"PASS",
        b"AUTH",
        b" ",
        b"-",
        b"1",
        b"99999999999999999999",
        b"\0",
        b"\xff",
        b"=",
        b"0",
        b"x",
    ];
    for _ in 0..20_000 {
        let mut line = Vec::new();
        for _ in 0..next() % 6 {
            line.extend_from_slice(words[(next() % words.len() as u64) as usize]);
        }
        if let Ok(c) = parse_command(&line) {
            // Whatever parses prints back to something that parses the same.
            assert_eq!(parse(&c.to_string()), Ok(c));
        }
    }
}
