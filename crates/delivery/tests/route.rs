//! Routing (RFC 5321 5.1, RFC 7505) through real DNS packets: a `testdns`
//! server on loopback serves the zone below, and `Router` asks it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use delivery::route::{Hop, RouteError, Router, RouterConfig};
use testdns::{DnsServer, Zone};

/// The SMTP port tests route to (`[relay] port`).
const PORT: u16 = 2525;
/// Bound on one route in these tests.
const TIMEOUT: Duration = Duration::from_secs(2);

fn zone() -> Zone {
    let mut z = Zone::new();
    // Three preferences, two hosts at the middle one.
    z.mx("pref.test", 20, "mx2a.pref.test")
        .mx("pref.test", 10, "mx1.pref.test")
        .mx("pref.test", 30, "mx3.pref.test")
        .mx("pref.test", 20, "mx2b.pref.test")
        .a("mx1.pref.test", "127.0.0.11".parse().unwrap())
        .aaaa("mx1.pref.test", "::1".parse().unwrap())
        .a("mx2a.pref.test", "127.0.0.21".parse().unwrap())
        .a("mx2b.pref.test", "127.0.0.22".parse().unwrap())
        .a("mx3.pref.test", "127.0.0.31".parse().unwrap());
    // No MX: the domain's own addresses (implicit MX).
    z.a("implicit.test", "127.0.0.5".parse().unwrap())
        .aaaa("implicit.test", "2001:db8::5".parse().unwrap())
        .txt("implicit.test", "v=spf1 -all");
    // An MX host with AAAA only.
    z.mx("v6.test", 10, "mx.v6.test")
        .aaaa("mx.v6.test", "2001:db8::6".parse().unwrap());
    // Exists, but neither MX nor A/AAAA.
    z.txt("empty.test", "nothing here");
    z.null_mx("nullmx.test");
    // MX hosts: one SERVFAILs, one works.
    z.mx("partial.test", 10, "broken.partial.test")
        .mx("partial.test", 20, "ok.partial.test")
        .servfail("broken.partial.test")
        .a("ok.partial.test", "127.0.0.40".parse().unwrap());
    // The only MX host SERVFAILs: retry later.
    z.mx("allbroken.test", 10, "broken.allbroken.test")
        .servfail("broken.allbroken.test");
    // The only MX host does not exist: no route.
    z.mx("deadmx.test", 10, "nowhere.deadmx.test");
    z.servfail("servfail.test");
    z.silent("silent.test");
    // More MX records than fit in 512 octets: TC, then TCP.
    for i in 0..15u8 {
        let host = format!("mx{i:02}-with-a-rather-long-name.many.test");
        z.mx("many.test", u16::from(i), &host)
            .a(&host, std::net::Ipv4Addr::new(127, 0, 1, i));
    }
    // An internationalized domain, in its A-label form (RFC 5890).
    z.mx("xn--bcher-kva.test", 10, "mx.xn--bcher-kva.test")
        .a("mx.xn--bcher-kva.test", "127.0.0.50".parse().unwrap());
    z.a("relay.test", "127.0.0.60".parse().unwrap());
    z
}

fn router(dns: &DnsServer, smarthost: Option<(&str, u16)>) -> Router {
    Router::new(RouterConfig {
        resolver: Some(dns.addr()),
        port: PORT,
        smarthost: smarthost.map(|(h, p)| (h.to_string(), p)),
        timeout: TIMEOUT,
        ours: vec!["mail.us.test".to_string()],
    })
    .unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn hosts(hops: &[Hop]) -> Vec<&str> {
    hops.iter().map(|h| h.host.as_str()).collect()
}

#[tokio::test]
async fn mx_hosts_come_in_preference_order_with_their_addresses() {
    let dns = DnsServer::start(zone()).unwrap();
    let hops = router(&dns, None).route("pref.test").await.unwrap();
    assert_eq!(hops.len(), 4);
    assert_eq!(hops[0].host, "mx1.pref.test");
    // A then AAAA, both with the configured port.
    assert_eq!(hops[0].addrs, [sa("127.0.0.11:2525"), sa("[::1]:2525")]);
    let middle: HashSet<&str> = hosts(&hops[1..3]).into_iter().collect();
    assert_eq!(middle, HashSet::from(["mx2a.pref.test", "mx2b.pref.test"]));
    assert_eq!(hops[3].host, "mx3.pref.test");
    assert_eq!(hops[3].addrs, [sa("127.0.0.31:2525")]);
}

#[tokio::test]
async fn hosts_of_one_preference_come_in_random_order() {
    let dns = DnsServer::start(zone()).unwrap();
    let r = router(&dns, None);
    let mut firsts = HashSet::new();
    // Each order has probability 1/2; both are seen within 64 routes
    // unless the shuffle is broken (a false failure: 2^-63).
    for _ in 0..64 {
        let hops = r.route("pref.test").await.unwrap();
        assert_eq!(hops[0].host, "mx1.pref.test");
        assert_eq!(hops[3].host, "mx3.pref.test");
        firsts.insert(hops[1].host.clone());
        if firsts.len() == 2 {
            break;
        }
    }
    assert_eq!(firsts.len(), 2, "one preference was never shuffled");
}

#[tokio::test]
async fn no_mx_falls_back_to_the_domains_a_and_aaaa() {
    let dns = DnsServer::start(zone()).unwrap();
    let hops = router(&dns, None).route("Implicit.TEST.").await.unwrap();
    assert_eq!(
        hops,
        [Hop {
            host: "implicit.test".into(),
            addrs: vec![sa("127.0.0.5:2525"), sa("[2001:db8::5]:2525")],
        }]
    );
}

#[tokio::test]
async fn an_mx_host_with_aaaa_only_is_routed_over_ipv6() {
    let dns = DnsServer::start(zone()).unwrap();
    let hops = router(&dns, None).route("v6.test").await.unwrap();
    assert_eq!(hosts(&hops), ["mx.v6.test"]);
    assert_eq!(hops[0].addrs, [sa("[2001:db8::6]:2525")]);
}

#[tokio::test]
async fn null_mx_is_permanent_5_1_10() {
    let dns = DnsServer::start(zone()).unwrap();
    let e = router(&dns, None).route("nullmx.test").await.unwrap_err();
    assert_eq!(e, RouteError::NullMx);
    assert!(e.is_permanent());
    assert_eq!(e.status(), "5.1.10");
    assert_eq!(e.reply_code(), 556);
    // RFC 7505 4.1: no address lookup for a null MX domain.
    assert!(dns.asked().iter().all(|q| q.rtype == "MX"));
}

#[tokio::test]
async fn nxdomain_is_permanent_5_1_2() {
    let dns = DnsServer::start(zone()).unwrap();
    let r = router(&dns, None);
    let e = r.route("nowhere.test").await.unwrap_err();
    assert_eq!(e, RouteError::NoSuchDomain);
    assert!(e.is_permanent());
    assert_eq!(e.status(), "5.1.2");
    // NXDOMAIN on MX fails at once, without asking for addresses.
    assert!(dns.asked().iter().all(|q| q.rtype == "MX"));
}

#[tokio::test]
async fn neither_mx_nor_address_is_permanent() {
    let dns = DnsServer::start(zone()).unwrap();
    let e = router(&dns, None).route("empty.test").await.unwrap_err();
    assert_eq!(e, RouteError::NoSuchDomain);
}

#[tokio::test]
async fn mx_hosts_without_addresses_are_permanent() {
    let dns = DnsServer::start(zone()).unwrap();
    let e = router(&dns, None).route("deadmx.test").await.unwrap_err();
    assert_eq!(e, RouteError::NoSuchDomain);
}

#[tokio::test]
async fn servfail_is_temporary_and_fast() {
    let dns = DnsServer::start(zone()).unwrap();
    let t = Instant::now();
    let e = router(&dns, None).route("servfail.test").await.unwrap_err();
    assert!(matches!(e, RouteError::Temporary(_)), "{e:?}");
    assert!(!e.is_permanent());
    assert_eq!(e.status(), "4.4.3");
    assert!(t.elapsed() < TIMEOUT, "SERVFAIL waited for the timeout");
}

#[tokio::test]
async fn a_silent_server_is_temporary_within_the_timeout() {
    let dns = DnsServer::start(zone()).unwrap();
    let t = Instant::now();
    let e = router(&dns, None).route("silent.test").await.unwrap_err();
    assert!(matches!(e, RouteError::Temporary(_)), "{e:?}");
    assert!(
        t.elapsed() < TIMEOUT + Duration::from_millis(500),
        "took {:?}",
        t.elapsed()
    );
    assert!(dns.queries() >= 1);
}

#[tokio::test]
async fn one_mx_host_failing_leaves_the_others() {
    let dns = DnsServer::start(zone()).unwrap();
    let r = router(&dns, None);
    let hops = r.route("partial.test").await.unwrap();
    assert_eq!(hosts(&hops), ["ok.partial.test"]);
    let e = r.route("allbroken.test").await.unwrap_err();
    assert!(matches!(e, RouteError::Temporary(_)), "{e:?}");
}

#[tokio::test]
async fn a_big_mx_answer_comes_over_tcp_and_is_capped() {
    let dns = DnsServer::start(zone()).unwrap();
    let hops = router(&dns, None).route("many.test").await.unwrap();
    assert_eq!(hops.len(), delivery::route::MAX_MX_HOSTS);
    assert_eq!(hops[0].host, "mx00-with-a-rather-long-name.many.test");
    assert_eq!(hops[0].addrs, [sa("127.0.1.0:2525")]);
    assert!(
        dns.asked()
            .iter()
            .any(|q| q.name == "many.test" && q.rtype == "MX" && q.tcp),
        "the truncated answer was not asked again over TCP: {:?}",
        dns.asked()
    );
}

#[tokio::test]
async fn an_idn_is_looked_up_by_its_a_label() {
    let dns = DnsServer::start(zone()).unwrap();
    let hops = router(&dns, None).route("bücher.test").await.unwrap();
    assert_eq!(hosts(&hops), ["mx.xn--bcher-kva.test"]);
}

#[tokio::test]
async fn a_smarthost_ip_takes_everything_without_dns() {
    let dns = DnsServer::start(zone()).unwrap();
    let r = router(&dns, Some(("127.0.0.1", 2600)));
    for domain in ["pref.test", "nowhere.test", "nullmx.test", "[192.0.2.1]"] {
        let hops = r.route(domain).await.unwrap();
        assert_eq!(
            hops,
            [Hop {
                host: "127.0.0.1".into(),
                addrs: vec![sa("127.0.0.1:2600")],
            }],
            "{domain}"
        );
    }
    let r = router(&dns, Some(("[::1]", 2601)));
    assert_eq!(
        r.route("pref.test").await.unwrap()[0].addrs,
        [sa("[::1]:2601")]
    );
    assert_eq!(dns.queries(), 0);
}

#[tokio::test]
async fn a_smarthost_name_is_resolved_without_mx() {
    let dns = DnsServer::start(zone()).unwrap();
    let hops = router(&dns, Some(("relay.test", 587)))
        .route("pref.test")
        .await
        .unwrap();
    assert_eq!(
        hops,
        [Hop {
            host: "relay.test".into(),
            addrs: vec![sa("127.0.0.60:587")],
        }]
    );
    let asked = dns.asked();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|q| q.name == "relay.test" && q.rtype != "MX")
    );
}

#[tokio::test]
async fn an_unresolvable_smarthost_is_temporary() {
    let dns = DnsServer::start(zone()).unwrap();
    for host in ["nowhere.test", "servfail.test"] {
        let e = router(&dns, Some((host, 25)))
            .route("pref.test")
            .await
            .unwrap_err();
        assert!(matches!(e, RouteError::Temporary(_)), "{host}: {e:?}");
    }
}

#[tokio::test]
async fn address_literals_route_to_themselves() {
    let dns = DnsServer::start(zone()).unwrap();
    let r = router(&dns, None);
    assert_eq!(
        r.route("[127.0.0.7]").await.unwrap(),
        [Hop {
            host: "[127.0.0.7]".into(),
            addrs: vec![sa("127.0.0.7:2525")],
        }]
    );
    assert_eq!(
        r.route("[IPv6:::1]").await.unwrap()[0].addrs,
        [sa("[::1]:2525")]
    );
    for bad in ["[::1]", "[999.0.0.1]", "[x-tag:foo]", "[127.0.0.1"] {
        assert_eq!(r.route(bad).await, Err(RouteError::NoSuchDomain), "{bad}");
    }
    assert_eq!(dns.queries(), 0);
}

#[tokio::test]
async fn a_server_that_is_gone_is_temporary() {
    let dns = DnsServer::start(zone()).unwrap();
    let r = router(&dns, None);
    drop(dns);
    let e = r.route("pref.test").await.unwrap_err();
    assert!(matches!(e, RouteError::Temporary(_)), "{e:?}");
}

#[tokio::test]
async fn an_mx_list_naming_us_is_cut_there_and_us_first_is_a_loop() {
    let mut z = Zone::new();
    z.mx("backup.test", 10, "mx1.backup.test")
        .mx("backup.test", 20, "mail.us.test")
        .mx("backup.test", 30, "mx3.backup.test")
        .a("mx1.backup.test", "127.0.0.41".parse().unwrap())
        .a("mx3.backup.test", "127.0.0.43".parse().unwrap())
        .a("mail.us.test", "127.0.0.42".parse().unwrap())
        .mx("usfirst.test", 5, "mail.us.test")
        .mx("usfirst.test", 10, "mx1.backup.test");
    let dns = DnsServer::start(z).unwrap();
    let r = router(&dns, None);
    // RFC 5321 5.1: ours (20) and worse (30) are dropped.
    let hops = r.route("backup.test").await.unwrap();
    assert_eq!(hosts(&hops), ["mx1.backup.test"]);
    let e = r.route("usfirst.test").await.unwrap_err();
    assert_eq!((e.is_permanent(), e.status()), (true, "5.4.6"));
}
