//! Who may talk to the daemon: root and the owner, decided by the peer
//! credentials the kernel reports for the socket (`SO_PEERCRED`), never by
//! anything the client says.

#[derive(Debug, Clone, Copy)]
pub struct Authorizer {
    owner_uid: u32,
}

impl Authorizer {
    pub fn new(owner_uid: u32) -> Self {
        Self { owner_uid }
    }

    pub fn allows(&self, peer_uid: u32) -> bool {
        peer_uid == 0 || peer_uid == self.owner_uid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_owner() {
        let auth = Authorizer::new(1000);
        assert!(auth.allows(0));
        assert!(auth.allows(1000));
        assert!(!auth.allows(1001));
        assert!(!auth.allows(65534));
    }
}
