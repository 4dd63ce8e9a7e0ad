//! Host plumbing end to end (issue: bridge, taps, leases, NAT, DNS), as root,
//! inside a network namespace this test creates and deletes: the host's own
//! interfaces and rules are never touched.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

use banger_api::model::VmName;
use banger_host::{BridgeName, HostOps, Ipv4Cidr, LocalHost};
use banger_net::dns::{DnsRecords, DnsServer};
use banger_net::subnet::GuestSubnet;
use banger_net::tap_pool::TapPool;
use banger_store::Store;
use banger_sys::Cmd;
use banger_sys::netns::Netns;

fn run(program: &str, args: &[&str]) -> String {
    Cmd::new(program)
        .args(args)
        .run()
        .unwrap_or_else(|e| panic!("{e}"))
        .stdout_str()
}

/// Runs a blocking command off the runtime's only thread, so the DNS server
/// keeps answering meanwhile. Threads started here inherit the namespace.
async fn run_blocking(program: &'static str, args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        run(
            program,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    })
    .await
    .unwrap()
}

#[test]
fn bridge_taps_leases_nat_and_dns_come_up_and_go_away() {
    if !banger_sys::os::is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let host_links_before = run("ip", &["-o", "link"]);
    let ns = Netns::create("plumbing").unwrap();
    let ns_name = ns.name().to_owned();
    {
        let _inside = ns.enter().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(scenario());
    }
    assert_eq!(
        run("ip", &["-o", "link"]),
        host_links_before,
        "the host's interfaces are untouched"
    );
    drop(ns);
    assert!(
        !std::path::Path::new(&format!("/run/netns/{ns_name}")).exists(),
        "namespace deleted"
    );
}

async fn scenario() {
    let state = tempfile::tempdir().unwrap();
    let store = Store::open(&state.path().join("banger.db")).unwrap();
    let host: Arc<dyn HostOps> = Arc::new(LocalHost::new());
    let bridge = BridgeName::from_str("br-fc").unwrap();
    let subnet = GuestSubnet::new(Ipv4Addr::new(172, 16, 0, 1), 24).unwrap();

    // Bridge.
    host.ensure_bridge(&bridge, Ipv4Cidr::from_str("172.16.0.1/24").unwrap())
        .unwrap();
    let addr = run("ip", &["-o", "-4", "addr", "show", "dev", "br-fc"]);
    assert!(addr.contains("inet 172.16.0.1/24"), "{addr}");

    // Three taps from the warm pool, attached to the bridge.
    let pool = TapPool::new(host.clone(), bridge.clone(), 0, 3);
    pool.fill().await.unwrap();
    assert_eq!(pool.ready().await, 3);
    let mut taps = Vec::new();
    for _ in 0..3 {
        taps.push(pool.take().await.unwrap());
    }
    let enslaved = run("ip", &["-o", "link", "show", "master", "br-fc"]);
    for tap in &taps {
        assert!(
            enslaved.contains(&format!(" {tap}:")),
            "{tap} on the bridge: {enslaved}"
        );
    }

    // Three leases: the lowest free addresses, never .0, .1 or .255.
    let names = ["alpha", "bravo", "charlie"].map(|n| VmName::new(n).unwrap());
    let ips: Vec<Ipv4Addr> = names
        .iter()
        .map(|n| {
            store
                .lease_ip(n.as_str(), subnet.guest_addresses())
                .unwrap()
        })
        .collect();
    assert_eq!(ips, [2, 3, 4].map(|h| Ipv4Addr::new(172, 16, 0, h)));

    // NAT for one guest only.
    host.add_nat(ips[0], &bridge).unwrap();
    let ruleset = run("nft", &["list", "ruleset"]);
    assert!(ruleset.contains("table ip banger"), "{ruleset}");
    assert!(
        ruleset.contains(&format!("ip saddr {}", ips[0])) && ruleset.contains("masquerade"),
        "{ruleset}"
    );
    assert!(
        !ruleset.contains(&ips[1].to_string()),
        "only the guest that asked: {ruleset}"
    );
    println!("nft list ruleset with NAT for {}:\n{ruleset}", ips[0]);

    // DNS on the real port, inside the namespace.
    let records = DnsRecords::new();
    for (name, ip) in names.iter().zip(&ips) {
        records.set(name, *ip);
    }
    let server = DnsServer::bind("127.0.0.1:42069".parse().unwrap(), records.clone())
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(server.serve(stop.clone()));
    let dig = |args: &[&str]| {
        let mut all = vec![
            "@127.0.0.1".to_owned(),
            "-p".into(),
            "42069".into(),
            "+time=2".into(),
            "+tries=1".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        run_blocking("dig", all)
    };
    assert_eq!(
        dig(&["bravo.vm", "+short"]).await.trim(),
        ips[1].to_string()
    );
    assert_eq!(
        dig(&["BRAVO.vm", "+short", "+tcp"]).await.trim(),
        ips[1].to_string()
    );
    let unknown = dig(&["nobody.vm"]).await;
    assert!(
        unknown.contains("status: NXDOMAIN") && unknown.contains(" aa"),
        "{unknown}"
    );

    // Teardown, then look for leftovers on the host side of things, not in
    // banger's own bookkeeping.
    stop.cancel();
    serving.await.unwrap();
    host.remove_nat(ips[0], &bridge).unwrap();
    for tap in taps {
        pool.release(tap).await.unwrap();
    }
    pool.drain().await.unwrap();
    host.delete_bridge(&bridge).unwrap();
    for name in &names {
        store.release_ip(name.as_str()).unwrap();
    }

    let links = run("ip", &["-o", "link"]);
    assert_eq!(links.lines().count(), 1, "only lo is left: {links}");
    let ruleset = run("nft", &["list", "ruleset"]);
    assert!(!ruleset.contains("banger"), "no rule left: {ruleset}");
    assert!(store.list_leases().unwrap().is_empty(), "no lease left");
    // Teardown is idempotent: all of it again succeeds.
    host.remove_nat(ips[0], &bridge).unwrap();
    host.delete_bridge(&bridge).unwrap();
    assert!(!store.release_ip("alpha").unwrap());
}
