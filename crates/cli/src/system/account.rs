//! The owner account and the kvm group, looked up through NSS (`getent`),
//! so accounts from a directory service work as well as local ones.

use std::path::PathBuf;

use banger_config::InstallOwner;
use banger_sys::Cmd;

use super::SystemError;

/// The passwd entry of `user` (a name or a numeric uid).
pub fn owner(user: &str) -> Result<InstallOwner, SystemError> {
    let out = Cmd::new("getent")
        .args(["passwd", user])
        .run()
        .map_err(|_| SystemError::NoSuchUser(user.to_owned()))?;
    parse_passwd_line(out.stdout_str().lines().next().unwrap_or_default())
        .ok_or_else(|| SystemError::NoSuchUser(user.to_owned()))
}

/// `name:password:uid:gid:gecos:home:shell`.
fn parse_passwd_line(line: &str) -> Option<InstallOwner> {
    let fields: Vec<&str> = line.trim_end().split(':').collect();
    let [name, _, uid, gid, _, home, _] = fields.as_slice() else {
        return None;
    };
    Some(InstallOwner {
        user: (*name).to_owned(),
        uid: uid.parse().ok()?,
        gid: gid.parse().ok()?,
        home: PathBuf::from(home),
    })
}

/// The group that owns `/dev/kvm` on this host, when there is one.
pub fn kvm_group() -> Option<String> {
    let out = Cmd::new("getent").args(["group", "kvm"]).run().ok()?;
    let line = out.stdout_str();
    let name = line.split(':').next()?.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_parse() {
        let o = parse_passwd_line("alice:x:1000:1001:Alice,,,:/home/alice:/bin/bash\n").unwrap();
        assert_eq!((o.user.as_str(), o.uid, o.gid), ("alice", 1000, 1001));
        assert_eq!(o.home, PathBuf::from("/home/alice"));
        assert!(parse_passwd_line("alice:x:notanumber:1:::").is_none());
        assert!(parse_passwd_line("").is_none());
    }
}
