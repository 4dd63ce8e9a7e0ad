//! Test-only DNS messages: a query builder, and a strict parser of whole
//! messages used to check that every response is well formed.

use std::net::Ipv4Addr;

use crate::dns::wire::{HEADER_LEN, Header, Name, Question, read_name, read_u16, read_u32, rtype};

pub(super) const CLASS_IN: u16 = 1;
pub(super) const CLASS_CH: u16 = 3;
pub(super) const TYPE_MX: u16 = 15;
pub(super) const TYPE_TXT: u16 = 16;

/// Builds a query. Defaults: id 0x1234, RD set, opcode QUERY, class IN, one
/// question, no EDNS.
#[derive(Debug, Clone)]
pub(super) struct QueryBuilder {
    id: u16,
    opcode: u8,
    rd: bool,
    qr: bool,
    qdcount: u16,
    name: String,
    qtype: u16,
    qclass: u16,
    edns: bool,
}

pub(super) fn query(name: &str, qtype: u16) -> QueryBuilder {
    QueryBuilder {
        id: 0x1234,
        opcode: 0,
        rd: true,
        qr: false,
        qdcount: 1,
        name: name.to_owned(),
        qtype,
        qclass: CLASS_IN,
        edns: false,
    }
}

impl QueryBuilder {
    pub(super) fn id(mut self, id: u16) -> Self {
        self.id = id;
        self
    }
    pub(super) fn opcode(mut self, opcode: u8) -> Self {
        self.opcode = opcode;
        self
    }
    pub(super) fn rd(mut self, rd: bool) -> Self {
        self.rd = rd;
        self
    }
    pub(super) fn qr(mut self, qr: bool) -> Self {
        self.qr = qr;
        self
    }
    pub(super) fn qdcount(mut self, qdcount: u16) -> Self {
        self.qdcount = qdcount;
        self
    }
    pub(super) fn class(mut self, qclass: u16) -> Self {
        self.qclass = qclass;
        self
    }
    /// Appends an EDNS OPT record (4096-byte payload) in the additional section.
    pub(super) fn edns(mut self) -> Self {
        self.edns = true;
        self
    }

    pub(super) fn build(&self) -> Vec<u8> {
        let mut flags = u16::from(self.opcode & 0xF) << 11;
        if self.rd {
            flags |= 1 << 8;
        }
        if self.qr {
            flags |= 1 << 15;
        }
        let mut out = Vec::new();
        Header {
            id: self.id,
            flags,
            qdcount: self.qdcount,
            ancount: 0,
            nscount: 0,
            arcount: u16::from(self.edns),
        }
        .write(&mut out);
        out.extend_from_slice(&encode_name(&self.name));
        out.extend_from_slice(&self.qtype.to_be_bytes());
        out.extend_from_slice(&self.qclass.to_be_bytes());
        if self.edns {
            out.push(0); // root owner
            out.extend_from_slice(&rtype::OPT.to_be_bytes());
            out.extend_from_slice(&4096u16.to_be_bytes()); // UDP payload size
            out.extend_from_slice(&0u32.to_be_bytes()); // extended rcode, version, flags
            out.extend_from_slice(&0u16.to_be_bytes()); // no options
        }
        out
    }
}

/// Uncompressed wire form of a dotted name; "" and "." are the root.
pub(super) fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(u8::try_from(label.len()).expect("test labels are short"));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rdata {
    A(Ipv4Addr),
    Ns(String),
    Soa {
        mname: String,
        rname: String,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
    Other(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) name: String,
    pub(super) rtype: u16,
    pub(super) class: u16,
    pub(super) ttl: u32,
    pub(super) data: Rdata,
}

#[derive(Debug, Clone)]
pub(super) struct Message {
    pub(super) header: Header,
    pub(super) questions: Vec<Question>,
    pub(super) answers: Vec<Record>,
    pub(super) authority: Vec<Record>,
    pub(super) additional: Vec<Record>,
}

impl Message {
    pub(super) fn question_name(&self) -> String {
        self.questions[0].name.to_string()
    }
}

/// Parses a whole message strictly: every section as its count says, every
/// known record's data exactly its RDLENGTH, and no byte left over.
pub(super) fn parse(msg: &[u8]) -> Result<Message, String> {
    let header = Header::parse(msg).ok_or("shorter than a header")?;
    let mut pos = HEADER_LEN;
    let mut questions = Vec::new();
    for i in 0..header.qdcount {
        let (q, end) = Question::parse(msg, pos).map_err(|e| format!("question {i}: {e}"))?;
        questions.push(q);
        pos = end;
    }
    let mut section = |count: u16, what: &str| -> Result<Vec<Record>, String> {
        (0..count)
            .map(|i| {
                let (record, end) =
                    parse_record(msg, pos).map_err(|e| format!("{what} record {i}: {e}"))?;
                pos = end;
                Ok(record)
            })
            .collect()
    };
    let answers = section(header.ancount, "answer")?;
    let authority = section(header.nscount, "authority")?;
    let additional = section(header.arcount, "additional")?;
    if pos != msg.len() {
        return Err(format!("{} bytes after the last record", msg.len() - pos));
    }
    Ok(Message {
        header,
        questions,
        answers,
        authority,
        additional,
    })
}

fn parse_record(msg: &[u8], start: usize) -> Result<(Record, usize), String> {
    let (name, pos) = read_name(msg, start).map_err(|e| e.to_string())?;
    let field = |at: usize| read_u16(msg, at).ok_or("truncated record header");
    let (rtype, class) = (field(pos)?, field(pos + 2)?);
    let ttl = read_u32(msg, pos + 4).ok_or("truncated ttl")?;
    let rdlength = usize::from(field(pos + 8)?);
    let data_at = pos + 10;
    let end = data_at + rdlength;
    let rdata = msg.get(data_at..end).ok_or("rdata runs past the end")?;
    let name_in_rdata = |at: usize| -> Result<(Name, usize), String> {
        read_name(msg, at).map_err(|e| format!("name in rdata: {e}"))
    };
    let data = match rtype {
        rtype::A => Rdata::A(Ipv4Addr::from(
            <[u8; 4]>::try_from(rdata).map_err(|_| "A rdata is not 4 bytes")?,
        )),
        rtype::NS => {
            let (target, after) = name_in_rdata(data_at)?;
            if after != end {
                return Err("NS rdata length mismatch".into());
            }
            Rdata::Ns(target.to_string())
        }
        rtype::SOA => {
            let (mname, at) = name_in_rdata(data_at)?;
            let (rname, at) = name_in_rdata(at)?;
            if at + 20 != end {
                return Err("SOA rdata length mismatch".into());
            }
            let n = |i: usize| read_u32(msg, at + 4 * i).expect("checked above");
            Rdata::Soa {
                mname: mname.to_string(),
                rname: rname.to_string(),
                serial: n(0),
                refresh: n(1),
                retry: n(2),
                expire: n(3),
                minimum: n(4),
            }
        }
        _ => Rdata::Other(rdata.to_vec()),
    };
    Ok((
        Record {
            name: name.to_string(),
            rtype,
            class,
            ttl,
            data,
        },
        end,
    ))
}
