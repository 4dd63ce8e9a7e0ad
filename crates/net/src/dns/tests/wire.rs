//! The name decoder on messages the question parser never sees: compression
//! pointers in later sections, and the loops a hostile message can build.

use crate::dns::wire::{HEADER_LEN, WireError, read_name};

/// A 12-byte dummy header followed by `body`.
fn message(body: &[u8]) -> Vec<u8> {
    [&[0u8; HEADER_LEN][..], body].concat()
}

#[test]
fn follows_backward_pointers() {
    // 12: dev.vm.  20: www -> 12   26: x -> 20 (pointer to a name that itself ends in a pointer)
    let msg = message(b"\x03dev\x02vm\x00\x03www\xC0\x0C\x01x\xC0\x14");
    let (name, end) = read_name(&msg, 20).unwrap();
    assert_eq!(name.to_string(), "www.dev.vm.");
    assert_eq!(end, 26, "the offset after the first pointer");
    let (name, end) = read_name(&msg, 26).unwrap();
    assert_eq!(name.to_string(), "x.www.dev.vm.");
    assert_eq!(end, msg.len());
    assert_eq!(name.label_count(), 4);
    assert_eq!(name.label_offset(3), 1 + 1 + 3 + 1 + 3 + 1);
}

#[test]
fn rejects_loops_and_forward_or_header_pointers() {
    let cases: &[(&str, &[u8], usize, WireError)] = &[
        ("self loop", b"\xC0\x0C", 0, WireError::BadPointer),
        // 12: "a", 14: pointer to 12, 16: "b", 18: pointer to 14. Each
        // pointer points below itself, yet 14 -> 12 -> "a" -> 14 loops; the
        // pointer at 14 re-enters the segment it is part of.
        (
            "loop through a label",
            b"\x01a\xC0\x0C\x01b\xC0\x0E",
            4,
            WireError::BadPointer,
        ),
        (
            "two pointers at each other",
            b"\xC0\x0E\xC0\x0C",
            2,
            WireError::BadPointer,
        ),
        ("forward", b"\xC0\x0E\x00", 0, WireError::BadPointer),
        ("into the header", b"\xC0\x05", 0, WireError::BadPointer),
        ("truncated pointer", b"\xC0", 0, WireError::Truncated),
        ("empty", b"", 0, WireError::Truncated),
    ];
    for (what, body, at, expected) in cases {
        let msg = message(body);
        assert_eq!(
            read_name(&msg, HEADER_LEN + at).unwrap_err(),
            *expected,
            "{what}"
        );
    }
}

#[test]
fn caps_pointer_chains() {
    // 12: root; then 40 pointers, each to the one before: 40 hops from the end.
    let mut body = vec![0u8];
    for i in 0..40 {
        let target = HEADER_LEN + if i == 0 { 0 } else { 1 + 2 * (i - 1) };
        body.extend_from_slice(&(0xC000u16 | target as u16).to_be_bytes());
    }
    let msg = message(&body);
    assert_eq!(
        read_name(&msg, msg.len() - 2).unwrap_err(),
        WireError::TooManyHops
    );
    // A short chain of the same shape is fine.
    assert_eq!(
        read_name(&msg, HEADER_LEN + 1 + 2 * 5)
            .unwrap()
            .0
            .to_string(),
        "."
    );
}

#[test]
fn names_longer_than_255_bytes_via_pointers_are_rejected() {
    // 12: a 63-byte label + root; then labels pointing back, growing the name.
    let label = [&[63u8][..], &[b'a'; 63]].concat();
    let mut body = [&label[..], &[0]].concat();
    let first = HEADER_LEN;
    let second = HEADER_LEN + body.len();
    body.extend_from_slice(&label);
    body.extend_from_slice(&(0xC000u16 | first as u16).to_be_bytes());
    let third = HEADER_LEN + body.len();
    body.extend_from_slice(&label);
    body.extend_from_slice(&(0xC000u16 | second as u16).to_be_bytes());
    let fourth = HEADER_LEN + body.len();
    body.extend_from_slice(&label);
    body.extend_from_slice(&(0xC000u16 | third as u16).to_be_bytes());
    let msg = message(&body);
    assert_eq!(read_name(&msg, third).unwrap().0.wire().len(), 3 * 64 + 1);
    assert_eq!(read_name(&msg, fourth).unwrap_err(), WireError::NameTooLong);
}

#[test]
fn names_print_escaped() {
    let msg = message(b"\x04a.b\\\x02\x01\xFF\x02Vm\x00");
    let (name, _) = read_name(&msg, HEADER_LEN).unwrap();
    assert_eq!(name.to_string(), "a\\.b\\\\.\\001\\255.Vm.");
    let (root, _) = read_name(&message(b"\x00"), HEADER_LEN).unwrap();
    assert_eq!(root.to_string(), ".");
}

#[test]
fn names_of_exactly_255_bytes_are_the_limit() {
    // Three 63-byte labels (192 bytes), one more label, the root byte.
    let name_with_last_label = |len: usize| {
        let mut body = [&[63u8][..], &[b'a'; 63]].concat().repeat(3);
        body.push(u8::try_from(len).unwrap());
        body.extend(std::iter::repeat_n(b'b', len));
        body.push(0);
        message(&body)
    };
    let (name, end) = read_name(&name_with_last_label(61), HEADER_LEN).unwrap();
    assert_eq!(name.wire().len(), 255);
    assert_eq!(end, HEADER_LEN + 255);
    assert_eq!(
        read_name(&name_with_last_label(62), HEADER_LEN).unwrap_err(),
        WireError::NameTooLong
    );
}
