//! The real server as the real `dig` sees it (bind9-dnsutils): if dig is
//! happy with our wire format, so are other stub resolvers.

use banger_sys::Cmd;

use super::harness::{DEV_IP, TestServer};

/// Runs dig against the server with bounded retries, returning its stdout.
fn dig(server: &TestServer, args: &[&str]) -> String {
    let port = server.addr.port().to_string();
    let out = Cmd::new("dig")
        .args(["@127.0.0.1", "-p", &port, "+time=3", "+tries=2"])
        .args(args)
        .run()
        .unwrap_or_else(|e| panic!("dig failed: {e}"));
    out.stdout_str()
}

/// What dig printed about one message: its `->>HEADER<<-` line and flags line.
#[derive(Debug)]
struct Shown {
    status: String,
    id: u16,
    flags: Vec<String>,
    authority: u32,
}

/// The headers dig printed, in order (with `+qr`, the query's comes first).
fn headers(output: &str) -> Vec<Shown> {
    let mut shown = Vec::new();
    let mut lines = output.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.split_once("->>HEADER<<-").map(|(_, r)| r) else {
            continue;
        };
        let field = |key: &str| {
            rest.split(',')
                .find_map(|part| part.trim().strip_prefix(key).map(str::trim))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .to_owned()
        };
        let flags_line = lines.next().expect("dig prints flags after the header");
        let (flags, counts) = flags_line
            .trim_start_matches(";; flags:")
            .split_once(';')
            .unwrap_or_else(|| panic!("unexpected flags line {flags_line:?}"));
        let authority = counts
            .split(',')
            .find_map(|c| c.trim().strip_prefix("AUTHORITY:"))
            .unwrap_or_else(|| panic!("no AUTHORITY count in {flags_line:?}"))
            .trim()
            .parse()
            .unwrap();
        shown.push(Shown {
            status: field("status:"),
            id: field("id:").parse().unwrap(),
            flags: flags.split_whitespace().map(str::to_owned).collect(),
            authority,
        });
    }
    shown
}

/// The query and response headers of one `dig +qr` run.
fn exchange(server: &TestServer, args: &[&str]) -> (Shown, Shown, String) {
    let output = dig(server, &[args, &["+qr"]].concat());
    let mut shown = headers(&output).into_iter();
    let (Some(query), Some(response)) = (shown.next(), shown.next()) else {
        panic!("dig printed no query and response headers:\n{output}");
    };
    (query, response, output)
}

#[test]
fn dig_short_gets_the_ip_over_udp() {
    let server = TestServer::start();
    assert_eq!(
        dig(&server, &["dev.vm", "A", "+short"]).trim(),
        DEV_IP.to_string()
    );
}

#[test]
fn dig_short_gets_the_ip_over_tcp() {
    let server = TestServer::start();
    let out = dig(&server, &["dev.vm", "A", "+short", "+tcp"]);
    assert_eq!(out.trim(), DEV_IP.to_string());
}

#[test]
fn dig_matches_names_in_any_case() {
    let server = TestServer::start();
    assert_eq!(
        dig(&server, &["DeV.vM", "+short"]).trim(),
        DEV_IP.to_string()
    );
}

#[test]
fn dig_sees_an_authoritative_answer_with_its_id() {
    let server = TestServer::start();
    let (query, response, output) = exchange(&server, &["dev.vm", "A"]);
    assert_eq!(response.id, query.id, "{output}");
    assert_eq!(response.status, "NOERROR");
    assert_eq!(response.flags, ["qr", "aa", "rd"], "{output}");
    assert!(
        output.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f == ["dev.vm.", "5", "IN", "A", "172.16.0.2"]
        }),
        "answer line with TTL 5:\n{output}"
    );
}

#[test]
fn dig_sees_nxdomain_with_aa_and_the_soa() {
    let server = TestServer::start();
    for tcp in [false, true] {
        let transport: &[&str] = if tcp { &["+tcp"] } else { &[] };
        let (query, response, output) = exchange(&server, &[&["nope.vm"], transport].concat());
        assert_eq!(response.id, query.id, "{output}");
        assert_eq!(response.status, "NXDOMAIN", "{output}");
        assert!(response.flags.iter().any(|f| f == "aa"), "{output}");
        assert_eq!(response.authority, 1, "{output}");
        assert!(output.contains("ns.vm. hostmaster.vm. 1"), "{output}");
        let via = if tcp { "(TCP)" } else { "(UDP)" };
        assert!(output.contains(via), "answered over {via}:\n{output}");
    }
}

#[test]
fn dig_sees_nodata_for_aaaa() {
    let server = TestServer::start();
    let (_, response, output) = exchange(&server, &["dev.vm", "AAAA"]);
    assert_eq!(response.status, "NOERROR", "{output}");
    assert!(output.contains("ANSWER: 0"), "{output}");
    assert_eq!(response.authority, 1, "{output}");
}

#[test]
fn dig_is_refused_outside_the_zone() {
    let server = TestServer::start();
    let (query, response, output) = exchange(&server, &["example.com", "A"]);
    assert_eq!(response.id, query.id);
    assert_eq!(response.status, "REFUSED", "{output}");
    assert!(!response.flags.iter().any(|f| f == "aa"), "{output}");
}

#[test]
fn dig_without_recursion_desired_gets_no_rd() {
    let server = TestServer::start();
    let (_, response, output) = exchange(&server, &["dev.vm", "+norecurse"]);
    assert_eq!(response.flags, ["qr", "aa"], "{output}");
}

#[test]
fn dig_gets_the_apex_soa_and_ns() {
    let server = TestServer::start();
    let soa = dig(&server, &["vm", "SOA", "+short"]);
    assert_eq!(soa.trim(), "ns.vm. hostmaster.vm. 1 3600 600 86400 5");
    assert_eq!(dig(&server, &["vm", "NS", "+short"]).trim(), "ns.vm.");
}
