//! The nftables backend: table `ip banger` with `forward` and `input`
//! filter chains and a `postrouting` nat chain, three rules per NAT guest.
//! NAT rules are inserted at the top of their chains, so they come before
//! the bridge fence's drops, which are appended (see `fence.rs`); every
//! base chain keeps policy accept, so traffic not involving banger's bridge
//! is never affected.
//!
//! Changes go to `nft` as argv tokens that nft joins into one script
//! (`add ... ; add ...`), which it applies as one transaction: a guest's
//! rules appear, or are replaced, all at once. Only validated values reach
//! the script (a bridge name of `[a-z0-9-]`, a formatted IPv4 address), so
//! nothing can inject nft syntax. State is read back with `nft -j` and
//! parsed, not scraped from the human format.

use std::net::Ipv4Addr;

use banger_sys::{Cmd, Output};
use serde::Deserialize;

use super::super::runner::{Runner, run};
use super::comment;
use crate::error::HostError;
use crate::validate::BridgeName;

pub(super) const FAMILY: &str = "ip";
pub(super) const TABLE: &str = "banger";
/// The comment prefix of every NAT rule.
const NAT_TAG: &str = "banger-nat ";
const HINT: &str =
    "NAT rules need root and nftables; `nft list table ip banger` shows banger's rules";

/// One rule of a guest, as rendered and as recognised when read back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Shape {
    chain: String,
    /// `(iifname|oifname, ==|!=, interface)` matches.
    interfaces: Vec<(String, String, String)>,
    verdict: String,
}

struct GuestRule {
    shape: Shape,
    matches: Vec<String>,
}

pub(super) fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

fn guest_rules(guest: Ipv4Addr, bridge: &BridgeName) -> [GuestRule; 3] {
    let rule = |chain: &str, (key, op): (&str, &str), verdict: &str, matches: String| GuestRule {
        shape: Shape {
            chain: chain.to_owned(),
            interfaces: vec![(key.to_owned(), op.to_owned(), bridge.to_string())],
            verdict: verdict.to_owned(),
        },
        matches: words(&matches).collect(),
    };
    let br = quoted(bridge.as_str());
    [
        // The guest's own traffic out through the host.
        rule(
            "forward",
            ("iifname", "=="),
            "accept",
            format!("iifname {br} ip saddr {guest}"),
        ),
        // Only replies back in: nothing outside can open a connection to it.
        rule(
            "forward",
            ("oifname", "=="),
            "accept",
            format!("oifname {br} ip daddr {guest} ct state established,related"),
        ),
        // Its address rewritten when leaving by any other interface.
        rule(
            "postrouting",
            ("oifname", "!="),
            "masquerade",
            format!("ip saddr {guest} oifname != {br}"),
        ),
    ]
}

pub(super) fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(' ').map(str::to_owned)
}

/// Creates the table and chains if missing (`add` is idempotent in nft).
pub(super) fn prelude() -> Vec<String> {
    let mut argv: Vec<String> = words("add table ip banger ;").collect();
    argv.extend(words(
        "add chain ip banger forward { type filter hook forward priority 0 ; policy accept ; } ;",
    ));
    argv.extend(words(
        "add chain ip banger input { type filter hook input priority 0 ; policy accept ; } ;",
    ));
    argv.extend(words(
        "add chain ip banger postrouting { type nat hook postrouting priority 100 ; policy accept ; }",
    ));
    argv
}

/// One transaction: the table and chains, minus `stale` rules, plus the
/// guest's rules.
fn add_script(guest: Ipv4Addr, bridge: &BridgeName, stale: &[&RuleJson]) -> Vec<String> {
    let mut argv = prelude();
    for rule in stale {
        argv.extend(words(&format!(
            "; delete rule {FAMILY} {TABLE} {} handle {}",
            rule.chain, rule.handle
        )));
    }
    for rule in guest_rules(guest, bridge) {
        argv.extend(words(&format!(
            "; insert rule {FAMILY} {TABLE} {}",
            rule.shape.chain
        )));
        argv.extend(rule.matches);
        argv.push(rule.shape.verdict);
        argv.push("comment".to_owned());
        argv.push(quoted(&comment(guest)));
    }
    argv
}

#[derive(Debug, Deserialize)]
pub(super) struct Listing {
    nftables: Vec<Item>,
}

/// One element of nft's JSON array; only tables and rules matter here.
#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default)]
    table: Option<TableJson>,
    #[serde(default)]
    rule: Option<RuleJson>,
}

#[derive(Debug, Deserialize)]
struct TableJson {
    family: String,
    name: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct RuleJson {
    family: String,
    table: String,
    pub(super) chain: String,
    pub(super) handle: u64,
    #[serde(default)]
    pub(super) comment: Option<String>,
    #[serde(default)]
    expr: Vec<serde_json::Value>,
}

impl RuleJson {
    /// The rule's comment, or "" when it has none.
    pub(super) fn tag(&self) -> &str {
        self.comment.as_deref().unwrap_or("")
    }

    /// `delete rule <family> <table> <chain> handle <n>` as argv words.
    pub(super) fn delete(&self) -> Vec<String> {
        words(&format!(
            "delete rule {} {} {} handle {}",
            self.family, self.table, self.chain, self.handle
        ))
        .collect()
    }

    fn shape(&self) -> Shape {
        let interfaces = self
            .expr
            .iter()
            .filter_map(|e| {
                let m = e.get("match")?;
                let key = m.pointer("/left/meta/key")?.as_str()?;
                if key != "iifname" && key != "oifname" {
                    return None;
                }
                let op = m.get("op")?.as_str()?;
                let right = m.get("right")?.as_str()?;
                Some((key.to_owned(), op.to_owned(), right.to_owned()))
            })
            .collect();
        let verdict = self
            .expr
            .last()
            .and_then(|e| e.as_object())
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default();
        Shape {
            chain: self.chain.clone(),
            interfaces,
            verdict,
        }
    }
}

pub(super) fn nft(
    runner: &dyn Runner,
    argv: Vec<String>,
    action: impl FnOnce() -> String,
) -> Result<Output, HostError> {
    run(runner, Cmd::new("nft").args(argv), action, HINT)
}

/// Runs `nft -j list <what>` and parses the answer.
fn list(runner: &dyn Runner, what: &str) -> Result<Listing, HostError> {
    let cmd = Cmd::new("nft").args(["-j", "list"]).args(what.split(' '));
    let argv = cmd.argv();
    let out = run(runner, cmd, || format!("list nftables {what}"), HINT)?;
    serde_json::from_slice(&out.stdout).map_err(|source| HostError::Json { argv, source })
}

/// banger's rules, or `None` when its table does not exist.
fn banger_rules(runner: &dyn Runner) -> Result<Option<Vec<RuleJson>>, HostError> {
    table_rules(runner, FAMILY)
}

/// The rules of table `<family> banger`, or `None` when it does not exist.
/// Asks for the list of tables first so a missing table is a fact, not an
/// error message.
pub(super) fn table_rules(
    runner: &dyn Runner,
    family: &str,
) -> Result<Option<Vec<RuleJson>>, HostError> {
    let exists = list(runner, &format!("tables {family}"))?
        .nftables
        .iter()
        .filter_map(|i| i.table.as_ref())
        .any(|t| t.family == family && t.name == TABLE);
    if !exists {
        return Ok(None);
    }
    Ok(Some(rules_of(
        list(runner, &format!("table {family} {TABLE}"))?,
        family,
    )))
}

fn rules_of(listing: Listing, family: &str) -> Vec<RuleJson> {
    listing
        .nftables
        .into_iter()
        .filter_map(|i| i.rule)
        .filter(|r| r.family == family && r.table == TABLE)
        .collect()
}

pub(super) fn add(
    runner: &dyn Runner,
    guest: Ipv4Addr,
    bridge: &BridgeName,
) -> Result<(), HostError> {
    let rules = banger_rules(runner)?.unwrap_or_default();
    let tag = comment(guest);
    let ours: Vec<&RuleJson> = rules
        .iter()
        .filter(|r| r.comment.as_deref() == Some(tag.as_str()))
        .collect();
    let mut have: Vec<Shape> = ours.iter().map(|r| r.shape()).collect();
    let mut want: Vec<Shape> = guest_rules(guest, bridge)
        .into_iter()
        .map(|r| r.shape)
        .collect();
    have.sort();
    want.sort();
    if have == want {
        return Ok(());
    }
    // Missing, partial or for another bridge: replace them in one go.
    nft(runner, add_script(guest, bridge, &ours), || {
        format!("add NAT rules for guest {guest} on {bridge}")
    })
    .map(drop)
}

/// Removes the guest's rules; answers whether another NAT guest is left.
pub(super) fn remove(runner: &dyn Runner, guest: Ipv4Addr) -> Result<bool, HostError> {
    let Some(rules) = banger_rules(runner)? else {
        return Ok(false);
    };
    let tag = comment(guest);
    let ours: Vec<&RuleJson> = rules
        .iter()
        .filter(|r| r.comment.as_deref() == Some(tag.as_str()))
        .collect();
    let others = rules
        .iter()
        .any(|r| r.tag().starts_with(NAT_TAG) && r.tag() != tag);
    let argv: Vec<String> = if ours.len() == rules.len() {
        // Nothing else left (no other guest, no bridge fence): the whole
        // table goes, so nothing of banger's stays in the ruleset.
        words("delete table ip banger").collect()
    } else if ours.is_empty() {
        return Ok(others);
    } else {
        ours.iter()
            .enumerate()
            .flat_map(|(i, r)| {
                let sep = if i == 0 { "" } else { "; " };
                words(&format!(
                    "{sep}delete rule {FAMILY} {TABLE} {} handle {}",
                    r.chain, r.handle
                ))
                .collect::<Vec<_>>()
            })
            .collect()
    };
    nft(runner, argv, || {
        format!("remove NAT rules for guest {guest}")
    })?;
    Ok(others)
}

#[cfg(test)]
mod tests {
    use super::super::super::runner::scripted::{Reply, ScriptedRunner};
    use super::*;

    /// Captured with `nft -j list table ip banger` (nftables 1.0.6) after
    /// adding NAT for 172.16.0.2 on br-fc, plus one rule for 172.16.0.3.
    const TABLE_JSON: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "banger", "handle": 1}}, {"chain": {"family": "ip", "table": "banger", "name": "forward", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}, {"chain": {"family": "ip", "table": "banger", "name": "postrouting", "handle": 2, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}, {"rule": {"family": "ip", "table": "banger", "chain": "forward", "handle": 3, "comment": "banger-nat 172.16.0.2", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br-fc"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "172.16.0.2"}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": "banger", "chain": "forward", "handle": 4, "comment": "banger-nat 172.16.0.2", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br-fc"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "172.16.0.2"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": "banger", "chain": "postrouting", "handle": 5, "comment": "banger-nat 172.16.0.2", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "172.16.0.2"}}, {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "br-fc"}}, {"masquerade": null}]}}, {"rule": {"family": "ip", "table": "banger", "chain": "postrouting", "handle": 9, "comment": "banger-nat 172.16.0.3", "expr": [{"masquerade": null}]}}]}"#;

    const TABLES_WITH_BANGER: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "filter", "handle": 3}}, {"table": {"family": "ip", "name": "banger", "handle": 1}}]}"#;
    const TABLES_WITHOUT_BANGER: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "filter", "handle": 3}}]}"#;

    fn guest(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(172, 16, 0, last)
    }

    fn br(name: &str) -> BridgeName {
        BridgeName::new(name).unwrap()
    }

    fn with_table(table: &str) -> ScriptedRunner {
        let r = ScriptedRunner::default();
        r.on(
            "nft -j list tables",
            Reply::Out(TABLES_WITH_BANGER.to_owned()),
        );
        r.on("nft -j list table ip banger", Reply::Out(table.to_owned()));
        r
    }

    /// The writes only, without the two listing commands.
    fn writes(r: &ScriptedRunner) -> Vec<String> {
        r.argv()
            .into_iter()
            .filter(|a| !a.starts_with("nft -j"))
            .collect()
    }

    #[test]
    fn rules_render_as_one_transaction() {
        let argv = add_script(guest(2), &br("br-fc"), &[]).join(" ");
        assert_eq!(
            argv,
            "add table ip banger ; \
             add chain ip banger forward { type filter hook forward priority 0 ; policy accept ; } ; \
             add chain ip banger input { type filter hook input priority 0 ; policy accept ; } ; \
             add chain ip banger postrouting { type nat hook postrouting priority 100 ; policy accept ; } ; \
             insert rule ip banger forward iifname \"br-fc\" ip saddr 172.16.0.2 accept comment \"banger-nat 172.16.0.2\" ; \
             insert rule ip banger forward oifname \"br-fc\" ip daddr 172.16.0.2 ct state established,related accept comment \"banger-nat 172.16.0.2\" ; \
             insert rule ip banger postrouting ip saddr 172.16.0.2 oifname != \"br-fc\" masquerade comment \"banger-nat 172.16.0.2\""
        );
    }

    #[test]
    fn captured_json_parses_into_banger_rules_with_shapes() {
        let listing: Listing = serde_json::from_str(TABLE_JSON).unwrap();
        let rules = rules_of(listing, FAMILY);
        assert_eq!(
            rules.iter().map(|r| r.handle).collect::<Vec<_>>(),
            [3, 4, 5, 9]
        );
        let shapes: Vec<Shape> = rules[..3].iter().map(RuleJson::shape).collect();
        let rendered: Vec<Shape> = guest_rules(guest(2), &br("br-fc"))
            .into_iter()
            .map(|r| r.shape)
            .collect();
        assert_eq!(
            shapes, rendered,
            "what banger writes is what it recognises when reading back"
        );
        assert_eq!(rules[3].comment.as_deref(), Some("banger-nat 172.16.0.3"));
    }

    #[test]
    fn adding_twice_writes_nothing_the_second_time() {
        let r = with_table(TABLE_JSON);
        add(&r, guest(2), &br("br-fc")).unwrap();
        assert!(writes(&r).is_empty(), "{:?}", r.argv());
    }

    #[test]
    fn a_missing_table_gets_the_whole_script() {
        let r = ScriptedRunner::default();
        r.on(
            "nft -j list tables",
            Reply::Out(TABLES_WITHOUT_BANGER.to_owned()),
        );
        add(&r, guest(7), &br("br-fc")).unwrap();
        assert_eq!(
            r.argv().len(),
            2,
            "never lists a table that is not there: {:?}",
            r.argv()
        );
        assert_eq!(
            writes(&r),
            [format!(
                "nft {}",
                add_script(guest(7), &br("br-fc"), &[]).join(" ")
            )]
        );
    }

    #[test]
    fn rules_for_another_bridge_or_partial_are_replaced_atomically() {
        // 172.16.0.3 has one rule only; and .2 moves to another bridge.
        for (ip, bridge, stale) in [(3, "br-fc", vec![9]), (2, "br-fc-2", vec![3, 4, 5])] {
            let r = with_table(TABLE_JSON);
            add(&r, guest(ip), &br(bridge)).unwrap();
            let w = writes(&r);
            assert_eq!(w.len(), 1, "{w:?}");
            for handle in stale {
                assert!(w[0].contains(&format!("handle {handle} ;")), "{}", w[0]);
            }
            assert!(w[0].contains(&format!("masquerade comment \"banger-nat 172.16.0.{ip}\"")));
        }
    }

    #[test]
    fn removing_one_guest_deletes_its_handles_only() {
        let r = with_table(TABLE_JSON);
        assert!(remove(&r, guest(2)).unwrap(), "172.16.0.3 is left");
        assert_eq!(
            writes(&r),
            [
                "nft delete rule ip banger forward handle 3 ; delete rule ip banger forward handle 4 ; delete rule ip banger postrouting handle 5"
            ]
        );
    }

    #[test]
    fn removing_the_last_guest_deletes_the_table() {
        let only_three = TABLE_JSON.replace("banger-nat 172.16.0.2", "banger-nat 172.16.0.3");
        let r = with_table(&only_three);
        assert!(!remove(&r, guest(3)).unwrap());
        assert_eq!(writes(&r), ["nft delete table ip banger"]);
    }

    #[test]
    fn removing_what_is_not_there_succeeds_without_writing() {
        let r = with_table(TABLE_JSON);
        remove(&r, guest(99)).unwrap();
        assert!(writes(&r).is_empty());
        let r = ScriptedRunner::default();
        r.on(
            "nft -j list tables",
            Reply::Out(TABLES_WITHOUT_BANGER.to_owned()),
        );
        remove(&r, guest(2)).unwrap();
        assert_eq!(r.argv(), ["nft -j list tables ip"]);
    }

    #[test]
    fn garbage_from_nft_is_a_json_error_naming_the_argv() {
        let r = ScriptedRunner::default();
        r.on(
            "nft -j list tables",
            Reply::Out("table ip banger {".to_owned()),
        );
        let err = add(&r, guest(2), &br("br-fc")).unwrap_err();
        assert!(
            matches!(&err, HostError::Json { argv, .. } if argv == "nft -j list tables ip"),
            "{err:?}"
        );
    }
}
