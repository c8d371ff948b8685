//! Tests for command parsing: tolerance, errors and their replies, the
//! RFC's own example traces, round trips, and random lines that must never
//! panic.

use super::*;
use crate::params::{Body, Ret};

fn parse(line: &str) -> Result<Command, CommandError> {
    parse_command(line.as_bytes())
}

fn path(local: &str, domain: Option<&str>) -> Path {
    Path {
        local: local.to_string(),
        domain: domain.map(str::to_string),
    }
}

fn mail(local: &str, domain: &str) -> Command {
    Command::Mail(MailFrom {
        path: ReversePath::Path(path(local, Some(domain))),
        params: MailParams::default(),
    })
}

fn rcpt(local: &str, domain: Option<&str>) -> Command {
    Command::Rcpt(RcptTo {
        path: path(local, domain),
        params: RcptParams::default(),
    })
}

#[test]
fn hello_is_unknown_command() {
    assert_eq!(parse("HELLO world"), Err(CommandError::UnknownCommand));
    assert_eq!(parse("MAILX FROM:<a@b>"), Err(CommandError::UnknownCommand));
    assert_eq!(parse(""), Err(CommandError::UnknownCommand));
    assert_eq!(parse(" HELO x"), Err(CommandError::UnknownCommand));
}

#[test]
fn unknown_command_is_500_5_5_2() {
    let reply = CommandError::UnknownCommand.reply();
    assert_eq!(
        (reply.code, reply.enhanced),
        (500, Some(EnhancedCode(5, 5, 2)))
    );
}

#[test]
fn garbage_bytes_are_unknown_command() {
    assert_eq!(
        parse_command(b"\xff\xfe\x00 x"),
        Err(CommandError::UnknownCommand)
    );
}

#[test]
fn invalid_utf8_after_known_verb_is_syntax() {
    assert_eq!(
        parse_command(b"VRFY \xff"),
        Err(CommandError::Syntax("Invalid UTF-8"))
    );
}

#[test]
fn verbs_are_case_insensitive() {
    assert_eq!(parse("quit"), Ok(Command::Quit));
    assert_eq!(parse("NoOp"), Ok(Command::Noop));
    assert_eq!(parse("starttls"), Ok(Command::StartTls));
    assert_eq!(parse("ehlo x"), Ok(Command::Ehlo("x".into())));
}

#[test]
fn helo_accepts_domain_literal_and_bare_ip() {
    for arg in [
        "mx.example.org",
        "[1.2.3.4]",
        "195.161.101.33",
        "[IPv6:::1]",
    ] {
        assert_eq!(parse(&format!("HELO {arg}")), Ok(Command::Helo(arg.into())));
    }
}

#[test]
fn helo_without_argument_is_syntax() {
    assert_eq!(
        parse("HELO"),
        Err(CommandError::Syntax("Syntax: HELO hostname"))
    );
    assert_eq!(
        parse("EHLO   "),
        Err(CommandError::Syntax("Syntax: EHLO hostname"))
    );
}

#[test]
fn helo_with_control_characters_is_501_552() {
    for line in [
        &b"EHLO evil.test\rX-Injected: yes"[..],
        b"EHLO a\0b",
        b"HELO a\x1bb",
        b"HELO a\x7fb",
        "EHLO a\u{85}b".as_bytes(),
    ] {
        let err = parse_command(line).expect_err("control character accepted");
        let reply = err.reply();
        assert_eq!(
            (reply.code, reply.enhanced),
            (501, Some(EnhancedCode(5, 5, 2))),
            "{line:?}"
        );
    }
}

#[test]
fn addresses_with_control_characters_keep_their_address_codes() {
    let sender = parse_command(b"MAIL FROM:<a\0b@example.test>").expect_err("sender");
    assert_eq!(sender.reply().enhanced, Some(EnhancedCode(5, 1, 7)));
    let sender = parse_command(b"MAIL FROM:<\"a\rb\"@example.test>").expect_err("sender");
    assert_eq!(sender.reply().enhanced, Some(EnhancedCode(5, 1, 7)));
    let rcpt = parse_command(b"RCPT TO:<a@exa\rmple.test>").expect_err("recipient");
    assert_eq!(rcpt.reply().enhanced, Some(EnhancedCode(5, 1, 3)));
}

#[test]
fn mail_from_with_space_after_colon_is_accepted() {
    assert_eq!(parse("MAIL From: <a@b>"), Ok(mail("a", "b")));
    assert_eq!(parse("mail from:<a@b>"), Ok(mail("a", "b")));
    assert_eq!(parse("MAIL  FROM:<a@b>"), Ok(mail("a", "b")));
}

#[test]
fn mail_from_without_angle_brackets_is_accepted() {
    assert_eq!(parse("MAIL FROM:a@b"), Ok(mail("a", "b")));
    assert_eq!(
        parse("MAIL FROM:a@b SIZE=10"),
        Ok(Command::Mail(MailFrom {
            path: ReversePath::Path(path("a", Some("b"))),
            params: MailParams {
                size: Some(10),
                ..MailParams::default()
            }
        }))
    );
}

#[test]
fn null_reverse_path_is_accepted_for_mail_like_commands() {
    let null = MailFrom {
        path: ReversePath::Null,
        params: MailParams::default(),
    };
    assert_eq!(parse("MAIL FROM:<>"), Ok(Command::Mail(null.clone())));
    assert_eq!(parse("SEND FROM:<>"), Ok(Command::Send(null.clone())));
    assert_eq!(parse("SOML FROM:<>"), Ok(Command::Soml(null.clone())));
    assert_eq!(parse("SAML FROM:<>"), Ok(Command::Saml(null)));
}

#[test]
fn missing_from_is_syntax() {
    let err = Err(CommandError::Syntax("Syntax: MAIL FROM:<address>"));
    assert_eq!(parse("MAIL"), err);
    assert_eq!(parse("MAIL <a@b>"), err);
    assert_eq!(parse("MAIL FROM"), err);
    assert_eq!(parse("MAIL FROM:"), err);
    assert_eq!(parse("MAIL TO:<a@b>"), err);
    assert_eq!(
        parse("SEND <a@b>"),
        Err(CommandError::Syntax("Syntax: SEND FROM:<address>"))
    );
    assert_eq!(
        parse("RCPT <a@b>"),
        Err(CommandError::Syntax("Syntax: RCPT TO:<address>"))
    );
}

#[test]
fn invalid_sender_address_is_501_5_1_7() {
    for line in [
        "MAIL FROM:<a@>",
        "MAIL FROM:<@>",
        "MAIL FROM:<a b@c>",
        "MAIL FROM:<a@b",
        "MAIL FROM:<a@b SIZE=1",
        "MAIL FROM:<a@b>x",
        "SOML FROM:<a@b@c>",
    ] {
        let err = parse(line).unwrap_err();
        assert!(
            matches!(err, CommandError::BadSenderAddress(_)),
            "{line}: {err:?}"
        );
        let reply = err.reply();
        assert_eq!(
            (reply.code, reply.enhanced),
            (501, Some(EnhancedCode(5, 1, 7)))
        );
    }
}

#[test]
fn invalid_recipient_address_is_501_5_1_3() {
    for line in [
        "RCPT TO:<a@>",
        "RCPT TO:<>",
        "RCPT TO:<a b@c>",
        "RCPT TO:<a@b",
    ] {
        let err = parse(line).unwrap_err();
        assert!(
            matches!(err, CommandError::BadRecipientAddress(_)),
            "{line}: {err:?}"
        );
        let reply = err.reply();
        assert_eq!(
            (reply.code, reply.enhanced),
            (501, Some(EnhancedCode(5, 1, 3)))
        );
    }
}

#[test]
fn over_long_local_part_is_a_bad_address() {
    let local = "a".repeat(65);
    assert_eq!(
        parse(&format!("MAIL FROM:<{local}@b>")),
        Err(CommandError::BadSenderAddress("Local part too long"))
    );
    assert_eq!(
        parse(&format!("RCPT TO:<{local}@b>")),
        Err(CommandError::BadRecipientAddress("Local part too long"))
    );
}

#[test]
fn source_route_is_accepted_and_dropped() {
    assert_eq!(parse("RCPT TO:<@a,@b:user@c>"), Ok(rcpt("user", Some("c"))));
}

#[test]
fn postmaster_without_domain_is_unqualified() {
    assert_eq!(parse("RCPT TO:<Postmaster>"), Ok(rcpt("Postmaster", None)));
    assert_eq!(parse("RCPT TO:<postmaster>"), Ok(rcpt("postmaster", None)));
    assert_eq!(parse("rcpt to: <frol>"), Ok(rcpt("frol", None)));
}

#[test]
fn quoted_and_utf8_local_parts_are_accepted() {
    assert_eq!(
        parse("RCPT TO:<\"john doe\"@x.org>"),
        Ok(rcpt("\"john doe\"", Some("x.org")))
    );
    assert_eq!(
        parse("MAIL FROM:<\"a>b\"@x> SIZE=5").map(|c| c.to_line()),
        Ok("MAIL FROM:<\"a>b\"@x> SIZE=5".to_string())
    );
    assert_eq!(
        parse("RCPT TO:<jöran@bücher.de>"),
        Ok(rcpt("jöran", Some("bücher.de")))
    );
}

#[test]
fn unknown_mail_parameter_is_555() {
    let err = parse("MAIL FROM:<a@b> FOO=BAR").unwrap_err();
    assert_eq!(err, CommandError::UnknownParameter("FOO".into()));
    let reply = err.reply();
    assert_eq!(
        (reply.code, reply.enhanced),
        (555, Some(EnhancedCode(5, 5, 4)))
    );
    assert_eq!(
        parse("MAIL FROM:<a@b> SIZE=12x"),
        Err(CommandError::UnknownParameter("SIZE".into()))
    );
    assert_eq!(
        parse("RCPT TO:<a@b> SIZE=12"),
        Err(CommandError::UnknownParameter("SIZE".into()))
    );
}

#[test]
fn mail_parameters_are_parsed() {
    let cmd = parse("MAIL FROM:<a@b> size=100 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=x1 AUTH=<>");
    let Ok(Command::Mail(m)) = cmd else {
        panic!("{cmd:?}");
    };
    assert_eq!(
        m.params,
        MailParams {
            size: Some(100),
            body: Some(Body::EightBitMime),
            smtputf8: true,
            ret: Some(Ret::Full),
            envid: Some("x1".into()),
            auth: Some("<>".into()),
        }
    );
}

#[test]
fn data_rset_quit_starttls_take_no_argument() {
    assert_eq!(parse("DATA"), Ok(Command::Data));
    assert_eq!(parse("DATA "), Ok(Command::Data));
    assert_eq!(parse("DATA x"), Err(CommandError::Syntax("Syntax: DATA")));
    assert_eq!(parse("RSET x"), Err(CommandError::Syntax("Syntax: RSET")));
    assert_eq!(parse("QUIT now"), Err(CommandError::Syntax("Syntax: QUIT")));
    assert_eq!(
        parse("STARTTLS x"),
        Err(CommandError::Syntax("Syntax: STARTTLS"))
    );
}

#[test]
fn noop_ignores_its_argument() {
    assert_eq!(parse("NOOP hello there"), Ok(Command::Noop));
}

#[test]
fn help_topic_is_optional() {
    assert_eq!(parse("HELP"), Ok(Command::Help(None)));
    assert_eq!(parse("HELP mail"), Ok(Command::Help(Some("mail".into()))));
}

#[test]
fn vrfy_and_expn_need_an_argument_and_keep_spaces() {
    assert_eq!(
        parse("VRFY Alice Liddell"),
        Ok(Command::Vrfy("Alice Liddell".into()))
    );
    assert_eq!(
        parse("VRFY <alice@x>"),
        Ok(Command::Vrfy("<alice@x>".into()))
    );
    assert_eq!(parse("EXPN  staff "), Ok(Command::Expn("staff".into())));
    assert_eq!(
        parse("VRFY"),
        Err(CommandError::Syntax("Syntax: VRFY address"))
    );
    assert!(matches!(parse("EXPN"), Err(CommandError::Syntax(_))));
}

#[test]
fn bdat_takes_size_and_optional_last() {
    assert_eq!(
        parse("BDAT 100"),
        Ok(Command::Bdat {
            size: 100,
            last: false
        })
    );
    assert_eq!(
        parse("bdat 0 last"),
        Ok(Command::Bdat {
            size: 0,
            last: true
        })
    );
    let max = format!("BDAT {}", u64::MAX);
    assert_eq!(
        parse(&max),
        Ok(Command::Bdat {
            size: u64::MAX,
            last: false
        })
    );
    for bad in [
        "BDAT",
        "BDAT x",
        "BDAT -1",
        "BDAT +1",
        "BDAT 1 FIRST",
        "BDAT 1 LAST x",
        "BDAT 99999999999999999999",
    ] {
        assert!(matches!(parse(bad), Err(CommandError::Syntax(_))), "{bad}");
    }
}

#[test]
fn auth_takes_mechanism_and_initial_response() {
    assert_eq!(
        parse("AUTH plain dGVzdAB0ZXN0AHBhc3M="),
        Ok(Command::Auth {
            mechanism: "PLAIN".into(),
            initial_response: Some("dGVzdAB0ZXN0AHBhc3M=".into())
        })
    );
    assert_eq!(
        parse("AUTH LOGIN"),
        Ok(Command::Auth {
            mechanism: "LOGIN".into(),
            initial_response: None
        })
    );
    assert!(matches!(parse("AUTH"), Err(CommandError::Syntax(_))));
    assert!(matches!(
        parse("AUTH PLAIN a b"),
        Err(CommandError::Syntax(_))
    ));
    assert!(matches!(parse("AUTH PL@IN"), Err(CommandError::Syntax(_))));
}

#[test]
fn verb_names_each_command() {
    assert_eq!(parse("MAIL FROM:<>").unwrap().verb(), "MAIL");
    assert_eq!(parse("rcpt to:<a@b>").unwrap().verb(), "RCPT");
    assert_eq!(parse("starttls").unwrap().verb(), "STARTTLS");
}

/// RFC 5321 appendix D: the client side of each example scenario.
#[test]
fn rfc_5321_appendix_d_client_lines_parse() {
    let trace = [
        ("EHLO bar.com", Command::Ehlo("bar.com".into())),
        ("MAIL FROM:<Smith@bar.com>", mail("Smith", "bar.com")),
        ("RCPT TO:<Jones@foo.com>", rcpt("Jones", Some("foo.com"))),
        ("RCPT TO:<Green@foo.com>", rcpt("Green", Some("foo.com"))),
        ("RCPT TO:<Brown@foo.com>", rcpt("Brown", Some("foo.com"))),
        ("DATA", Command::Data),
        ("QUIT", Command::Quit),
        ("RSET", Command::Rset),
        ("MAIL FROM:<JQP@bar.com>", mail("JQP", "bar.com")),
        ("RCPT TO:<Jones@XYZ.COM>", rcpt("Jones", Some("XYZ.COM"))),
        ("VRFY Crispin", Command::Vrfy("Crispin".into())),
        ("MAIL FROM:<EAK@bar.com>", mail("EAK", "bar.com")),
        (
            "RCPT TO:<Admin.MRC@foo.com>",
            rcpt("Admin.MRC", Some("foo.com")),
        ),
    ];
    for (line, expected) in trace {
        assert_eq!(parse(line), Ok(expected), "{line}");
    }
}

/// RFC 821 appendix F examples, including SOML and a source route.
#[test]
fn rfc_821_examples_parse() {
    assert_eq!(
        parse("HELO USC-ISIF.ARPA"),
        Ok(Command::Helo("USC-ISIF.ARPA".into()))
    );
    assert_eq!(
        parse("SOML FROM:<Smith@Alpha.ARPA>"),
        Ok(Command::Soml(MailFrom {
            path: ReversePath::Path(path("Smith", Some("Alpha.ARPA"))),
            params: MailParams::default(),
        }))
    );
    assert_eq!(
        parse("RCPT TO:<@USC-ISIE.ARPA:Jones@XYZ.ARPA>"),
        Ok(rcpt("Jones", Some("XYZ.ARPA")))
    );
}

#[test]
fn commands_round_trip_through_to_line() {
    let commands = [
        "HELO mx.example.org",
        "EHLO [192.0.2.1]",
        "MAIL FROM:<>",
        "MAIL FROM:<a@b> SIZE=12345 BODY=BINARYMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1 AUTH=a+2Bb@c",
        "SEND FROM:<Smith@bar.com>",
        "SOML FROM:<x@[IPv6:2001:db8::1]>",
        "SAML FROM:<\"john doe\"@x>",
        "RCPT TO:<Postmaster>",
        "RCPT TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b",
        "RCPT TO:<jöran@bücher.de>",
        "DATA",
        "BDAT 0 LAST",
        "BDAT 1024",
        "RSET",
        "VRFY Alice Liddell",
        "EXPN staff",
        "HELP",
        "HELP MAIL",
        "NOOP",
        "QUIT",
        "STARTTLS",
        "AUTH PLAIN =",
        "AUTH SCRAM-SHA-256",
    ];
    for line in commands {
        let cmd = parse(line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
        assert_eq!(cmd.to_line(), line);
        assert_eq!(parse(&cmd.to_line()), Ok(cmd));
    }
    // Tolerated forms serialise to the canonical form.
    assert_eq!(
        parse("mail from: a@b size=1").unwrap().to_line(),
        "MAIL FROM:<a@b> SIZE=1"
    );
    assert_eq!(
        parse("RCPT TO:<@r:u@d>").unwrap().to_line(),
        "RCPT TO:<u@d>"
    );
}

#[test]
fn error_replies_carry_their_text() {
    let reply = CommandError::Syntax("Syntax: MAIL FROM:<address>").reply();
    assert_eq!(
        reply.to_bytes(),
        b"501 5.5.2 Syntax: MAIL FROM:<address>\r\n"
    );
    let reply = CommandError::UnknownParameter("FOO".into()).reply();
    assert_eq!(reply.to_bytes(), b"555 5.5.4 Unsupported option: FOO\r\n");
}

/// Deterministic xorshift64 so the property test needs no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn random_command_lines_never_panic_and_round_trip() {
    let pieces: [&[u8]; 24] = [
        b"MAIL",
        b"RCPT",
        b"FROM:",
        b"TO:",
        b"<",
        b">",
        b"@",
        b"a",
        b".",
        b" ",
        b"\"",
        b"\\",
        b"SIZE=",
        b"=",
        b"1",
        b"BDAT",
        b"LAST",
        b"[",
        b"]",
        b"IPv6:",
        b":",
        b",",
        b"\xc3\xa9",
        b"\xff",
    ];
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for _ in 0..20_000 {
        let count = (rng.next() % 12) as usize;
        let line: Vec<u8> = (0..count)
            .flat_map(|_| rng.pick(&pieces).iter().copied())
            .collect();
        // Whatever it is, a parsed command must survive serialisation.
        if let Ok(cmd) = parse_command(&line) {
            assert_eq!(
                parse(&cmd.to_line()),
                Ok(cmd.clone()),
                "{:?}",
                String::from_utf8_lossy(&line)
            );
        }
    }
    for _ in 0..5_000 {
        let len = (rng.next() % 64) as usize;
        let line: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = parse_command(&line).map_err(|e| e.reply().to_bytes());
    }
}
