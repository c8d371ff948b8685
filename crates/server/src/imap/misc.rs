//! ENABLE (RFC 5161, RFC 9051 6.3.1), ID (RFC 2971) and COMPRESS (RFC
//! 4978; the driver then compresses the connection).

use proto_imap::{Code, Data, Status, Tag};

use super::session::{CmdResult, Flow, Out, Session, done, tagged};

impl Session {
    pub(super) fn enable(&mut self, caps: &[String], out: &mut Out<'_>) -> CmdResult {
        let mut enabled = Vec::new();
        for cap in caps {
            if cap.eq_ignore_ascii_case("IMAP4rev2") && !self.rev2 {
                self.rev2 = true;
                enabled.push("IMAP4rev2".to_string());
            }
            // RFC 6855 3: UTF-8 names and strings from the next command.
            if cap.eq_ignore_ascii_case("UTF8=ACCEPT") && !self.utf8_accept {
                self.utf8_accept = true;
                enabled.push("UTF8=ACCEPT".to_string());
            }
            // RFC 7162 3.1, 3.2.3: QRESYNC implies CONDSTORE.
            if cap.eq_ignore_ascii_case("CONDSTORE") && !self.condstore {
                self.condstore = true;
                enabled.push("CONDSTORE".to_string());
            }
            if cap.eq_ignore_ascii_case("QRESYNC") && !self.qresync {
                self.qresync = true;
                self.condstore = true;
                enabled.push("QRESYNC".to_string());
            }
        }
        out.data(Data::Enabled(enabled));
        // Later responses use the new mode (UTF-8 names and strings).
        out.enc = self.encoder();
        done("ENABLE completed")
    }

    pub(super) fn id(&mut self, out: &mut Out<'_>) -> CmdResult {
        out.data(Data::Id(vec![
            ("name".into(), "mailroom".into()),
            ("version".into(), env!("CARGO_PKG_VERSION").into()),
        ]));
        done("ID completed")
    }

    /// RFC 4978 3: once on, compression stays on; DEFLATE is the only
    /// mechanism. The tagged OK goes out uncompressed ([`Flow::Compress`]).
    pub(super) fn compress(&mut self, tag: &Tag, mechanism: &str, out: &mut Out<'_>) -> Flow {
        if self.compressed {
            let text = "COMPRESS failed: DEFLATE is already active";
            tagged(out, tag, Status::No, Some(Code::CompressionActive), text);
            Flow::Continue
        } else if mechanism != "DEFLATE" {
            tagged(out, tag, Status::Bad, None, "Unknown compression mechanism");
            Flow::Continue
        } else {
            self.compressed = true;
            tagged(out, tag, Status::Ok, None, "DEFLATE active");
            Flow::Compress
        }
    }
}
