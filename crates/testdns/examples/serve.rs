//! The test DNS server as a process, for bench scripts (bench/auth.sh):
//! `serve txt NAME TEXT [a NAME IP]...` prints `listening IP:PORT` and
//! answers until killed (or testdns::MAX_LIFETIME).
#![forbid(unsafe_code)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut zone = testdns::Zone::new();
    let mut rest = args.as_slice();
    while let [kind, name, value, tail @ ..] = rest {
        match kind.as_str() {
            "txt" => {
                zone.txt(name, value);
            }
            "a" => match value.parse() {
                Ok(ip) => {
                    zone.a(name, ip);
                }
                Err(e) => return eprintln!("a {name} {value}: {e}"),
            },
            other => return eprintln!("unknown record kind {other:?} (txt or a)"),
        }
        rest = tail;
    }
    let dns = match testdns::DnsServer::start(zone) {
        Ok(d) => d,
        Err(e) => return eprintln!("cannot start: {e}"),
    };
    println!("listening {}", dns.addr());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
