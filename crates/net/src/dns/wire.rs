//! The DNS wire format (RFC 1035 §4): the fixed header, domain names and the
//! question, parsed from untrusted bytes and encoded for responses.
//!
//! Parsing never panics and never allocates more than a name's 255 bytes: every
//! read is bounds-checked, labels are at most 63 bytes, names at most 255, and
//! compression pointers must point strictly before the segment that contains
//! them, which makes a pointer loop impossible (and the hop count is capped on
//! top of that).

use std::fmt;

/// Size of the fixed header.
pub(crate) const HEADER_LEN: usize = 12;
/// Longest name on the wire, length bytes and the final zero included (RFC 1035 §3.1).
pub(crate) const MAX_NAME_LEN: usize = 255;
/// Longest label (the two high bits of a length byte are the label type).
pub(crate) const MAX_LABEL_LEN: usize = 63;
/// Pointers strictly decrease, so a chain ends anyway; the cap just keeps a
/// hostile chain of thousands of two-byte pointers cheap.
const MAX_POINTER_HOPS: usize = 32;

/// Resource record types this server knows about.
pub(crate) mod rtype {
    pub(crate) const A: u16 = 1;
    pub(crate) const NS: u16 = 2;
    pub(crate) const SOA: u16 = 6;
    pub(crate) const AAAA: u16 = 28;
    pub(crate) const OPT: u16 = 41;
    pub(crate) const ANY: u16 = 255;
}

/// Classes: Internet, and the query-only "any class".
pub(crate) const CLASS_IN: u16 = 1;
pub(crate) const CLASS_ANY: u16 = 255;

/// The only opcode served (standard query).
pub(crate) const OPCODE_QUERY: u8 = 0;

const FLAG_QR: u16 = 1 << 15;
const FLAG_AA: u16 = 1 << 10;
#[cfg(test)]
const FLAG_TC: u16 = 1 << 9;
const FLAG_RD: u16 = 1 << 8;
#[cfg(test)]
const FLAG_RA: u16 = 1 << 7;
const OPCODE_SHIFT: u16 = 11;
const OPCODE_MASK: u16 = 0xF;
#[cfg(test)]
const RCODE_MASK: u16 = 0xF;

/// Response codes (RFC 1035 §4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rcode {
    NoError = 0,
    FormErr = 1,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

impl Rcode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NoError => "NOERROR",
            Self::FormErr => "FORMERR",
            Self::NxDomain => "NXDOMAIN",
            Self::NotImp => "NOTIMP",
            Self::Refused => "REFUSED",
        }
    }
}

/// Why a name or question could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    #[error("the message ends inside a name or question")]
    Truncated,
    #[error("a label uses the reserved type bits 01 or 10")]
    ReservedLabelType,
    #[error("a name is longer than 255 bytes")]
    NameTooLong,
    #[error("a compression pointer does not point strictly backwards past the header")]
    BadPointer,
    #[error("a name follows more than {MAX_POINTER_HOPS} compression pointers")]
    TooManyHops,
}

/// The fixed 12-byte header. Flags stay a raw `u16` with accessors, so bits
/// this server does not interpret survive a parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) id: u16,
    pub(crate) flags: u16,
    pub(crate) qdcount: u16,
    pub(crate) ancount: u16,
    pub(crate) nscount: u16,
    pub(crate) arcount: u16,
}

impl Header {
    /// `None` when fewer than 12 bytes are available.
    pub(crate) fn parse(msg: &[u8]) -> Option<Self> {
        let h = msg.get(..HEADER_LEN)?;
        let word = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        Some(Self {
            id: word(0),
            flags: word(2),
            qdcount: word(4),
            ancount: word(6),
            nscount: word(8),
            arcount: word(10),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        for word in [
            self.id,
            self.flags,
            self.qdcount,
            self.ancount,
            self.nscount,
            self.arcount,
        ] {
            out.extend_from_slice(&word.to_be_bytes());
        }
    }

    pub(crate) fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    pub(crate) fn opcode(&self) -> u8 {
        // Masked to four bits, so the cast cannot truncate.
        ((self.flags >> OPCODE_SHIFT) & OPCODE_MASK) as u8
    }

    /// Response flags for `query`: QR set, opcode and RD copied, RA and TC
    /// clear (no recursion, and every answer fits in 512 bytes), AA as given.
    pub(crate) fn response_flags(query: &Header, authoritative: bool, rcode: Rcode) -> u16 {
        let mut flags = FLAG_QR | (query.flags & ((OPCODE_MASK << OPCODE_SHIFT) | FLAG_RD));
        if authoritative {
            flags |= FLAG_AA;
        }
        flags | rcode as u16
    }
}

/// Flag accessors only the tests read: the server copies or sets these bits
/// without looking at them.
#[cfg(test)]
impl Header {
    pub(crate) fn recursion_desired(&self) -> bool {
        self.flags & FLAG_RD != 0
    }

    pub(crate) fn authoritative(&self) -> bool {
        self.flags & FLAG_AA != 0
    }

    pub(crate) fn truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }

    pub(crate) fn recursion_available(&self) -> bool {
        self.flags & FLAG_RA != 0
    }

    pub(crate) fn rcode(&self) -> u8 {
        (self.flags & RCODE_MASK) as u8
    }
}

/// A domain name in uncompressed wire form (length-prefixed labels ending with
/// the zero-length root label). Label bytes are kept as sent, letter case
/// included, so the question can be echoed exactly (0x20 randomisation).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Name {
    wire: Vec<u8>,
}

impl Name {
    /// The labels, without the root label.
    pub(crate) fn labels(&self) -> Labels<'_> {
        Labels { rest: &self.wire }
    }

    pub(crate) fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// The uncompressed encoding, ready to copy into a message.
    pub(crate) fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Offset of the `index`th label within [`wire`](Self::wire), so a
    /// response can point at a suffix of the question name.
    pub(crate) fn label_offset(&self, index: usize) -> usize {
        self.labels().take(index).map(|label| 1 + label.len()).sum()
    }
}

impl fmt::Display for Name {
    /// Presentation format, escaping anything that is not a plain printable
    /// character the way dig does, so log lines cannot be forged with control
    /// bytes from a query.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for label in self.labels() {
            for &b in label {
                match b {
                    b'.' | b'\\' => write!(f, "\\{}", b as char)?,
                    0x21..=0x7E => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
            any = true;
        }
        if !any {
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// Iterator over the labels of a [`Name`].
pub(crate) struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // A `Name` is only built by `read_name`, so its wire form is well
        // formed; the `get`s merely keep this panic-free regardless.
        let len = usize::from(*self.rest.first()?);
        if len == 0 {
            return None;
        }
        let label = self.rest.get(1..1 + len)?;
        self.rest = &self.rest[1 + len..];
        Some(label)
    }
}

/// Reads the name starting at `start`, following compression pointers.
/// Returns the name and the offset just past it in the original byte stream
/// (past the first pointer, if there was one).
pub(crate) fn read_name(msg: &[u8], start: usize) -> Result<(Name, usize), WireError> {
    let mut wire = Vec::with_capacity(32);
    let mut pos = start;
    // Lowest offset read so far: a pointer must target strictly below it, so
    // each jump lands on bytes never read before and the walk must end.
    let mut floor = start;
    let mut end = None;
    let mut hops = 0;
    loop {
        let len_byte = *msg.get(pos).ok_or(WireError::Truncated)?;
        match len_byte >> 6 {
            0b00 => {
                let len = usize::from(len_byte);
                if len == 0 {
                    wire.push(0);
                    return Ok((Name { wire }, end.unwrap_or(pos + 1)));
                }
                let label = msg
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(WireError::Truncated)?;
                // Room for this label and the final zero byte.
                if wire.len() + 1 + len + 1 > MAX_NAME_LEN {
                    return Err(WireError::NameTooLong);
                }
                wire.push(len_byte);
                wire.extend_from_slice(label);
                pos += 1 + len;
            }
            0b11 => {
                let low = *msg.get(pos + 1).ok_or(WireError::Truncated)?;
                let target = usize::from(u16::from_be_bytes([len_byte & 0x3F, low]));
                if target < HEADER_LEN || target >= floor {
                    return Err(WireError::BadPointer);
                }
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(WireError::TooManyHops);
                }
                end.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            _ => return Err(WireError::ReservedLabelType),
        }
    }
}

/// The one question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    pub(crate) name: Name,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
}

impl Question {
    /// Reads a question at `start`; returns it and the offset just past it.
    pub(crate) fn parse(msg: &[u8], start: usize) -> Result<(Self, usize), WireError> {
        let (name, pos) = read_name(msg, start)?;
        let qtype = read_u16(msg, pos).ok_or(WireError::Truncated)?;
        let qclass = read_u16(msg, pos + 2).ok_or(WireError::Truncated)?;
        Ok((
            Self {
                name,
                qtype,
                qclass,
            },
            pos + 4,
        ))
    }

    /// Writes the question uncompressed: exactly the bytes a well-formed query
    /// carried, case included.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name.wire());
        out.extend_from_slice(&self.qtype.to_be_bytes());
        out.extend_from_slice(&self.qclass.to_be_bytes());
    }
}

pub(crate) fn read_u16(msg: &[u8], pos: usize) -> Option<u16> {
    let bytes = msg.get(pos..pos + 2)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

#[cfg(test)]
pub(crate) fn read_u32(msg: &[u8], pos: usize) -> Option<u32> {
    let bytes = msg.get(pos..pos + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Encodes a compression pointer to `offset` (which must be below 0x4000).
pub(crate) fn pointer(offset: usize) -> [u8; 2] {
    debug_assert!(offset < 0x4000, "pointer offset {offset} out of range");
    // The mask keeps the 14-bit offset; the top two bits mark a pointer.
    (0xC000 | (offset as u16 & 0x3FFF)).to_be_bytes()
}

/// A human name for a record type, for logs.
pub(crate) fn type_name(qtype: u16) -> TypeName {
    TypeName(qtype)
}

pub(crate) struct TypeName(u16);

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            rtype::A => f.write_str("A"),
            rtype::NS => f.write_str("NS"),
            rtype::SOA => f.write_str("SOA"),
            rtype::AAAA => f.write_str("AAAA"),
            rtype::OPT => f.write_str("OPT"),
            rtype::ANY => f.write_str("ANY"),
            other => write!(f, "TYPE{other}"),
        }
    }
}
