//! The test DNS server as a process, for bench scripts (bench/auth.sh):
//! `serve txt NAME TEXT [a NAME IP]...` prints `listening IP:PORT` and
//! answers until killed (or testdns::MAX_LIFETIME), printing on standard
//! error how many queries it has answered.
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
    // The number of queries answered so far, each second it changes: how
    // much the client's cache saved.
    let mut last = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let n = dns.queries();
        if n != last {
            let mut by_name = std::collections::BTreeMap::new();
            for q in dns.asked() {
                *by_name
                    .entry(format!("{} {}", q.rtype, q.name))
                    .or_insert(0) += 1;
            }
            eprintln!("queries {n}: {by_name:?}");
            last = n;
        }
    }
}
