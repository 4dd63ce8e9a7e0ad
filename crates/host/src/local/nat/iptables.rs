//! The iptables backend, for hosts without `nft`: banger's own chains
//! `BANGER-FWD` (filter) and `BANGER-POSTROUTING` (nat), each reached by one
//! jump at the top of FORWARD / POSTROUTING, and three rules per guest
//! tagged `-m comment --comment "banger-nat <ip>"`, inserted at the top of
//! banger's chains.
//!
//! The bridge fence (input/forward part only; the per-guest source checks
//! need nftables) is appended after them, tagged `banger-fence <bridge>
//! <bridge ip>`: in `BANGER-FWD` drops of what comes from or goes to the
//! bridge through another interface, and in `BANGER-INPUT` (jumped to from
//! the top of INPUT) drops of what comes from the bridge to any address but
//! the bridge's own. Packets the fence lets through RETURN to INPUT, so the
//! host's own input rules still decide about them.
//!
//! Rules are added only after `-C` says they are missing. Removal selects a
//! guest's rules by their comment in banger's chains, so it also finds rules
//! written for another bridge. When a chain is empty its jump and the chain
//! itself go, so no trace of banger stays. Built-in chains only ever see
//! banger's jump added or deleted, never anything else.

use std::net::Ipv4Addr;

use banger_sys::{Cmd, Output, ProcessError};

use super::super::runner::{Runner, run};
use super::comment;
use crate::error::HostError;
use crate::validate::{BridgeName, Ipv4Cidr};

const HINT: &str =
    "NAT rules need root and iptables; `iptables -S BANGER-FWD` shows banger's rules";

/// Upper bound on deleting duplicated jumps, so a tool that keeps
/// reporting success cannot loop forever.
const MAX_JUMP_DELETES: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Chain {
    table: &'static str,
    name: &'static str,
    /// The built-in chain that jumps to it.
    parent: &'static str,
}

const FORWARD: Chain = Chain {
    table: "filter",
    name: "BANGER-FWD",
    parent: "FORWARD",
};

const INPUT: Chain = Chain {
    table: "filter",
    name: "BANGER-INPUT",
    parent: "INPUT",
};

const POSTROUTING: Chain = Chain {
    table: "nat",
    name: "BANGER-POSTROUTING",
    parent: "POSTROUTING",
};

fn iptables<I, S>(chain: Chain, args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    // -w: wait for the xtables lock instead of failing when another
    // firewall tool holds it.
    Cmd::new("iptables")
        .args(["-w", "-t", chain.table])
        .args(args)
}

fn guest_rules(guest: Ipv4Addr, bridge: &BridgeName) -> [(Chain, Vec<String>); 3] {
    let tag = comment(guest);
    // `matches` has no spaces inside an argument; the comment, which has
    // one, is appended as a single argument.
    let rule = |matches: String, target: &str| -> Vec<String> {
        let mut argv: Vec<String> = matches.split(' ').map(str::to_owned).collect();
        argv.extend(["-m", "comment", "--comment", &tag, "-j", target].map(str::to_owned));
        argv
    };
    [
        // The guest's own traffic out through the host.
        (FORWARD, rule(format!("-i {bridge} -s {guest}"), "ACCEPT")),
        // Only replies back in: nothing outside can open a connection to it.
        (
            FORWARD,
            rule(
                format!("-o {bridge} -d {guest} -m conntrack --ctstate ESTABLISHED,RELATED"),
                "ACCEPT",
            ),
        ),
        // Its address rewritten when leaving by any other interface.
        (
            POSTROUTING,
            rule(format!("-s {guest} ! -o {bridge}"), "MASQUERADE"),
        ),
    ]
}

/// Runs a check (`-C`, `-S`): a non-zero exit means "no", but a missing
/// `iptables` or a spawn failure is an error.
fn holds(runner: &dyn Runner, cmd: Cmd) -> Result<bool, HostError> {
    match runner.run(&cmd) {
        Ok(_) => Ok(true),
        Err(ProcessError::Failed { .. }) => Ok(false),
        Err(source) => Err(HostError::Command {
            action: format!("check iptables state with `{}`", cmd.argv()),
            hint: HINT,
            source,
        }),
    }
}

fn change(
    runner: &dyn Runner,
    cmd: Cmd,
    action: impl FnOnce() -> String,
) -> Result<Output, HostError> {
    run(runner, cmd, action, HINT)
}

fn ensure_chain(runner: &dyn Runner, chain: Chain) -> Result<(), HostError> {
    if !holds(runner, iptables(chain, ["-S", chain.name]))? {
        change(runner, iptables(chain, ["-N", chain.name]), || {
            format!(
                "create iptables chain {} in table {}",
                chain.name, chain.table
            )
        })?;
    }
    if !holds(
        runner,
        iptables(chain, ["-C", chain.parent, "-j", chain.name]),
    )? {
        // At the top, so a drop policy or an earlier drop rule of another
        // firewall does not hide banger's rules.
        change(
            runner,
            iptables(chain, ["-I", chain.parent, "1", "-j", chain.name]),
            || format!("jump from {} to {}", chain.parent, chain.name),
        )?;
    }
    Ok(())
}

pub(super) fn add(
    runner: &dyn Runner,
    guest: Ipv4Addr,
    bridge: &BridgeName,
) -> Result<(), HostError> {
    ensure_chain(runner, FORWARD)?;
    ensure_chain(runner, POSTROUTING)?;
    for (chain, spec) in guest_rules(guest, bridge) {
        let check = ["-C", chain.name]
            .into_iter()
            .map(str::to_owned)
            .chain(spec.clone());
        if !holds(runner, iptables(chain, check))? {
            // At the top: before the bridge fence's drops.
            let insert = ["-I", chain.name, "1"]
                .into_iter()
                .map(str::to_owned)
                .chain(spec);
            change(runner, iptables(chain, insert), || {
                format!(
                    "add NAT rule for guest {guest} on {bridge} to {}",
                    chain.name
                )
            })?;
        }
    }
    Ok(())
}

/// Whether an `iptables -S` line carries a comment starting with `prefix`.
fn comment_starts(line: &str, prefix: &str) -> bool {
    line.contains(&format!("--comment \"{prefix}"))
}

/// Whether an `iptables -S` line carries exactly this comment (so
/// `banger-nat 10.0.0.2` does not match `banger-nat 10.0.0.20`).
fn has_comment(line: &str, tag: &str) -> bool {
    let needle = format!("--comment \"{tag}\"");
    line.match_indices(&needle).any(|(at, _)| {
        let rest = &line[at + needle.len()..];
        rest.is_empty() || rest.starts_with(' ')
    })
}

/// 1-based positions of the rules in `listing` (an `iptables -S CHAIN`
/// output) carrying `tag`, and the number of rules in the chain.
fn positions(listing: &str, chain: &str, tag: &str) -> (Vec<usize>, usize) {
    positions_where(listing, chain, |l| has_comment(l, tag))
}

fn positions_where(listing: &str, chain: &str, ours: impl Fn(&str) -> bool) -> (Vec<usize>, usize) {
    let prefix = format!("-A {chain} ");
    let rules: Vec<&str> = listing.lines().filter(|l| l.starts_with(&prefix)).collect();
    let ours = rules
        .iter()
        .enumerate()
        .filter(|(_, l)| ours(l))
        .map(|(i, _)| i + 1)
        .collect();
    (ours, rules.len())
}

/// `iptables -S <chain>`, or `None` when the chain does not exist.
fn listing(runner: &dyn Runner, chain: Chain) -> Result<Option<String>, HostError> {
    match runner.run(&iptables(chain, ["-S", chain.name])) {
        Ok(out) => Ok(Some(out.stdout_str())),
        Err(ProcessError::Failed { .. }) => Ok(None),
        Err(source) => Err(HostError::Command {
            action: format!("list iptables chain {}", chain.name),
            hint: HINT,
            source,
        }),
    }
}

/// Deletes the rules of `chain` that `ours` selects (highest position
/// first, so the others stay valid), and the chain when nothing else is
/// left in it.
fn delete_where(
    runner: &dyn Runner,
    chain: Chain,
    ours: impl Fn(&str) -> bool,
    what: &dyn Fn() -> String,
) -> Result<(), HostError> {
    let Some(listing) = listing(runner, chain)? else {
        return Ok(());
    };
    let (ours, total) = positions_where(&listing, chain.name, ours);
    for pos in ours.iter().rev() {
        change(
            runner,
            iptables(chain, ["-D", chain.name, &pos.to_string()]),
            || format!("remove {} from {}", what(), chain.name),
        )?;
    }
    if total == ours.len() {
        drop_chain(runner, chain)?;
    }
    Ok(())
}

fn fence_tag(bridge: &BridgeName, address: Ipv4Cidr) -> String {
    format!("banger-fence {bridge} {}", address.addr())
}

fn fence_rules(bridge: &BridgeName, address: Ipv4Cidr) -> [(Chain, Vec<String>); 5] {
    let tag = fence_tag(bridge, address);
    let rule = |matches: String, target: &str| -> Vec<String> {
        let mut argv: Vec<String> = matches.split(' ').map(str::to_owned).collect();
        argv.extend(["-m", "comment", "--comment", &tag, "-j", target].map(str::to_owned));
        argv
    };
    let ip = address.addr();
    [
        (
            INPUT,
            rule(
                format!("-i {bridge} -m conntrack --ctstate ESTABLISHED,RELATED"),
                "RETURN",
            ),
        ),
        (INPUT, rule(format!("-i {bridge} -d {ip}"), "RETURN")),
        (INPUT, rule(format!("-i {bridge}"), "DROP")),
        (FORWARD, rule(format!("-i {bridge} ! -o {bridge}"), "DROP")),
        (FORWARD, rule(format!("-o {bridge} ! -i {bridge}"), "DROP")),
    ]
}

/// The bridge's input/forward fence, appended after the NAT rules. Rules
/// for another address of the same bridge are replaced.
pub(super) fn ensure_fence(
    runner: &dyn Runner,
    bridge: &BridgeName,
    address: Ipv4Cidr,
) -> Result<(), HostError> {
    let prefix = format!("banger-fence {bridge} ");
    let tag = fence_tag(bridge, address);
    for chain in [FORWARD, INPUT] {
        if let Some(listing) = listing(runner, chain)? {
            let (stale, _) = positions_where(&listing, chain.name, |l| {
                comment_starts(l, &prefix) && !has_comment(l, &tag)
            });
            for pos in stale.iter().rev() {
                change(
                    runner,
                    iptables(chain, ["-D", chain.name, &pos.to_string()]),
                    || format!("remove a stale fence rule of {bridge} from {}", chain.name),
                )?;
            }
        }
        ensure_chain(runner, chain)?;
    }
    for (chain, spec) in fence_rules(bridge, address) {
        let check = ["-C", chain.name]
            .into_iter()
            .map(str::to_owned)
            .chain(spec.clone());
        if !holds(runner, iptables(chain, check))? {
            let append = ["-A", chain.name]
                .into_iter()
                .map(str::to_owned)
                .chain(spec);
            change(runner, iptables(chain, append), || {
                format!("add a fence rule of bridge {bridge} to {}", chain.name)
            })?;
        }
    }
    Ok(())
}

pub(super) fn remove_fence(runner: &dyn Runner, bridge: &BridgeName) -> Result<(), HostError> {
    let prefix = format!("banger-fence {bridge} ");
    for chain in [FORWARD, INPUT] {
        delete_where(runner, chain, |l| comment_starts(l, &prefix), &|| {
            format!("the fence of bridge {bridge}")
        })?;
    }
    Ok(())
}

/// Removes the guest's rules; answers whether another NAT guest is left
/// (its masquerade rule is in `BANGER-POSTROUTING`, which holds nothing
/// else).
pub(super) fn remove(
    runner: &dyn Runner,
    guest: Ipv4Addr,
    bridge: &BridgeName,
) -> Result<bool, HostError> {
    let tag = comment(guest);
    let mut others = false;
    for chain in [FORWARD, POSTROUTING] {
        let list = iptables(chain, ["-S", chain.name]);
        let listing = match runner.run(&list) {
            Ok(out) => out.stdout_str(),
            // No chain, no rules: already gone.
            Err(ProcessError::Failed { .. }) => continue,
            Err(source) => {
                return Err(HostError::Command {
                    action: format!("list iptables chain {}", chain.name),
                    hint: HINT,
                    source,
                });
            }
        };
        let (ours, total) = positions(&listing, chain.name, &tag);
        if chain.name == POSTROUTING.name {
            others = total > ours.len();
        }
        // Highest first, so the remaining positions stay valid.
        for pos in ours.iter().rev() {
            change(
                runner,
                iptables(chain, ["-D", chain.name, &pos.to_string()]),
                || {
                    format!(
                        "remove NAT rule for guest {guest} ({bridge}) from {}",
                        chain.name
                    )
                },
            )?;
        }
        if total == ours.len() {
            drop_chain(runner, chain)?;
        }
    }
    Ok(others)
}

/// Removes banger's jump(s) to an empty chain, then the chain.
fn drop_chain(runner: &dyn Runner, chain: Chain) -> Result<(), HostError> {
    for _ in 0..MAX_JUMP_DELETES {
        if !holds(
            runner,
            iptables(chain, ["-C", chain.parent, "-j", chain.name]),
        )? {
            break;
        }
        change(
            runner,
            iptables(chain, ["-D", chain.parent, "-j", chain.name]),
            || format!("remove the jump from {} to {}", chain.parent, chain.name),
        )?;
    }
    change(runner, iptables(chain, ["-X", chain.name]), || {
        format!("delete iptables chain {}", chain.name)
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::super::super::runner::scripted::{Reply, ScriptedRunner};
    use super::*;

    const G: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn br() -> BridgeName {
        BridgeName::new("br-fc").unwrap()
    }

    /// `iptables -S BANGER-FWD` as iptables 1.8.9 prints it, with a second
    /// guest (10.0.0.20, whose comment starts like 10.0.0.2's).
    const FWD_LISTING: &str = "-N BANGER-FWD\n\
        -A BANGER-FWD -s 10.0.0.2/32 -i br-fc -m comment --comment \"banger-nat 10.0.0.2\" -j ACCEPT\n\
        -A BANGER-FWD -s 10.0.0.20/32 -i br-fc -m comment --comment \"banger-nat 10.0.0.20\" -j ACCEPT\n\
        -A BANGER-FWD -d 10.0.0.2/32 -o br-fc -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"banger-nat 10.0.0.2\" -j ACCEPT\n";
    const NAT_LISTING: &str = "-N BANGER-POSTROUTING\n\
        -A BANGER-POSTROUTING -s 10.0.0.2/32 ! -o br-fc -m comment --comment \"banger-nat 10.0.0.2\" -j MASQUERADE\n";

    #[test]
    fn a_fresh_host_gets_chains_jumps_and_three_rules() {
        let r = ScriptedRunner::default();
        r.on(
            "iptables -w -t filter -S",
            Reply::Fail("No chain/target/match by that name.".into()),
        );
        r.on(
            "iptables -w -t nat -S",
            Reply::Fail("No chain/target/match by that name.".into()),
        );
        r.on("iptables -w -t filter -C", Reply::Fail("Bad rule".into()));
        r.on("iptables -w -t nat -C", Reply::Fail("Bad rule".into()));
        add(&r, G, &br()).unwrap();
        assert_eq!(
            r.argv(),
            [
                "iptables -w -t filter -S BANGER-FWD",
                "iptables -w -t filter -N BANGER-FWD",
                "iptables -w -t filter -C FORWARD -j BANGER-FWD",
                "iptables -w -t filter -I FORWARD 1 -j BANGER-FWD",
                "iptables -w -t nat -S BANGER-POSTROUTING",
                "iptables -w -t nat -N BANGER-POSTROUTING",
                "iptables -w -t nat -C POSTROUTING -j BANGER-POSTROUTING",
                "iptables -w -t nat -I POSTROUTING 1 -j BANGER-POSTROUTING",
                "iptables -w -t filter -C BANGER-FWD -i br-fc -s 10.0.0.2 -m comment --comment banger-nat 10.0.0.2 -j ACCEPT",
                "iptables -w -t filter -I BANGER-FWD 1 -i br-fc -s 10.0.0.2 -m comment --comment banger-nat 10.0.0.2 -j ACCEPT",
                "iptables -w -t filter -C BANGER-FWD -o br-fc -d 10.0.0.2 -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment banger-nat 10.0.0.2 -j ACCEPT",
                "iptables -w -t filter -I BANGER-FWD 1 -o br-fc -d 10.0.0.2 -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment banger-nat 10.0.0.2 -j ACCEPT",
                "iptables -w -t nat -C BANGER-POSTROUTING -s 10.0.0.2 ! -o br-fc -m comment --comment banger-nat 10.0.0.2 -j MASQUERADE",
                "iptables -w -t nat -I BANGER-POSTROUTING 1 -s 10.0.0.2 ! -o br-fc -m comment --comment banger-nat 10.0.0.2 -j MASQUERADE",
            ]
        );
    }

    #[test]
    fn present_rules_are_only_checked() {
        let r = ScriptedRunner::default();
        add(&r, G, &br()).unwrap();
        assert!(
            r.argv()
                .iter()
                .all(|a| a.contains(" -S ") || a.contains(" -C ")),
            "{:?}",
            r.argv()
        );
    }

    #[test]
    fn comments_match_exactly() {
        assert!(has_comment(
            "-A X -m comment --comment \"banger-nat 10.0.0.2\" -j ACCEPT",
            "banger-nat 10.0.0.2"
        ));
        assert!(!has_comment(
            "-A X -m comment --comment \"banger-nat 10.0.0.20\" -j ACCEPT",
            "banger-nat 10.0.0.2"
        ));
        assert_eq!(
            positions(FWD_LISTING, "BANGER-FWD", "banger-nat 10.0.0.2"),
            (vec![1, 3], 3)
        );
    }

    #[test]
    fn removal_deletes_by_position_and_keeps_a_chain_still_in_use() {
        let r = ScriptedRunner::default();
        r.on(
            "iptables -w -t filter -S BANGER-FWD",
            Reply::Out(FWD_LISTING.into()),
        );
        r.on(
            "iptables -w -t nat -S BANGER-POSTROUTING",
            Reply::Out(NAT_LISTING.into()),
        );
        r.once(
            "iptables -w -t nat -C POSTROUTING",
            Reply::Out(String::new()),
        );
        r.on(
            "iptables -w -t nat -C POSTROUTING",
            Reply::Fail("Bad rule".into()),
        );
        assert!(!remove(&r, G, &br()).unwrap(), "no NAT guest is left");
        assert_eq!(
            r.argv(),
            [
                "iptables -w -t filter -S BANGER-FWD",
                "iptables -w -t filter -D BANGER-FWD 3",
                "iptables -w -t filter -D BANGER-FWD 1",
                "iptables -w -t nat -S BANGER-POSTROUTING",
                "iptables -w -t nat -D BANGER-POSTROUTING 1",
                "iptables -w -t nat -C POSTROUTING -j BANGER-POSTROUTING",
                "iptables -w -t nat -D POSTROUTING -j BANGER-POSTROUTING",
                "iptables -w -t nat -C POSTROUTING -j BANGER-POSTROUTING",
                "iptables -w -t nat -X BANGER-POSTROUTING",
            ]
        );
    }

    #[test]
    fn removal_without_chains_succeeds_and_a_missing_tool_does_not() {
        let r = ScriptedRunner::default();
        r.on(
            "iptables -w -t",
            Reply::Fail("No chain/target/match by that name.".into()),
        );
        remove(&r, G, &br()).unwrap();
        assert_eq!(r.argv().len(), 2);

        let r = ScriptedRunner::default();
        r.on("iptables", Reply::Missing);
        let err = remove(&r, G, &br()).unwrap_err();
        assert!(err.to_string().contains("BANGER-FWD"), "{err}");
        assert!(add(&r, G, &br()).is_err());
    }
}
