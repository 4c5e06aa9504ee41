//! A small nf_tables encoder: the gateway's NAT rules as ONE netlink transaction.
//!
//! Why our own and not a crate: `rustables` (the maintained one) is GPL, which `deny.toml`
//! refuses, and all we need is one table, two NAT chains and four kinds of rule. Why not the
//! `nft` program: one process per apply is what upstream's scripts do per *rule*; a transaction
//! of 2,000 rules is one `sendmsg` of ~0.5 MB here (see BENCHMARKS.md, "NAT gateway").
//!
//! The transaction replaces our table whole: `NEWTABLE` (a no-op when it exists), `DELTABLE`,
//! `NEWTABLE`, the chains, the rules, between `BATCH_BEGIN` and `BATCH_END`. The kernel commits
//! it atomically or not at all, so packets see either the old rules or the new ones, never a
//! half-built table, and a table someone else changed by hand is put back whole. Nothing
//! outside our table (`kube-ovn-natgw`, family `ip`) is touched.
//!
//! The expressions are the ones `nft` itself emits for the same rules (checked with
//! `nft --debug=netlink`), so `nft list table ip kube-ovn-natgw` shows ordinary nft syntax,
//! each rule with a comment naming the object it comes from.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Our table (family `ip`).
pub const TABLE: &str = "kube-ovn-natgw";
/// The DNAT base chain (hook prerouting, priority dstnat).
pub const PREROUTING: &str = "prerouting";
/// The SNAT base chain (hook postrouting, priority srcnat).
pub const POSTROUTING: &str = "postrouting";
/// The QoS chain for traffic into the EIPs (filter, hook prerouting, before dstnat: the
/// destination is still the EIP).
pub const QOS_INGRESS: &str = "qos-ingress";
/// The QoS chain for traffic out of the EIPs (filter, hook postrouting, after srcnat: the
/// source already is the EIP).
pub const QOS_EGRESS: &str = "qos-egress";

// Netlink and nfnetlink constants (linux/netlink.h, linux/netfilter/nfnetlink.h,
// linux/netfilter/nf_tables.h). Stable kernel ABI.
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_APPEND: u16 = 0x800;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFPROTO_IPV4: u8 = 2;
const AF_UNSPEC: u8 = 0;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETGEN: u16 = 16;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;

const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_L4PROTO: u32 = 16;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_ADDR_MAX: u16 = 4;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFTA_NAT_REG_PROTO_MAX: u16 = 6;
const NFTA_NAT_FLAGS: u16 = 7;
const NFT_NAT_SNAT: u32 = 0;
const NFT_NAT_DNAT: u32 = 1;
const NF_NAT_RANGE_MAP_IPS: u32 = 1;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_POST_ROUTING: u32 = 4;
const NF_IP_PRI_NAT_DST: i32 = -100;
const NF_IP_PRI_NAT_SRC: i32 = 100;
const NF_ACCEPT: u32 = 1;
const NF_DROP: u32 = 0;
const NFT_REG_VERDICT: u32 = 0;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_LIMIT_RATE: u16 = 1;
const NFTA_LIMIT_UNIT: u16 = 2;
const NFTA_LIMIT_BURST: u16 = 3;
const NFTA_LIMIT_TYPE: u16 = 4;
const NFTA_LIMIT_FLAGS: u16 = 5;
const NFT_LIMIT_PKT_BYTES: u32 = 1;
const NFT_LIMIT_F_INV: u32 = 1;
const QOS_INGRESS_PRIORITY: i32 = -300;
const QOS_EGRESS_PRIORITY: i32 = 300;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
/// `NFTNL_UDATA_RULE_COMMENT`: the TLV `nft` reads a rule's comment from.
const UDATA_RULE_COMMENT: u8 = 0;
const IFNAMSIZ: usize = 16;
/// nft refuses comments longer than this.
const MAX_COMMENT: usize = 127;

/// Transport protocol of a port match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4 {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl L4 {
    fn number(self) -> u8 {
        match self {
            L4::Tcp => 6,
            L4::Udp => 17,
        }
    }

    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

/// One condition of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// `ip daddr <addr>`.
    Daddr(Ipv4Addr),
    /// `ip saddr <net>` (a /0 matches everything and is left out).
    Saddr(Ipv4Net),
    /// `ip daddr <net>` (a /0 matches everything and is left out).
    DaddrIn(Ipv4Net),
    /// `<proto> dport <port>`.
    Dport(L4, u16),
    /// `iifname <name>`.
    Iifname(String),
    /// `oifname <name>`.
    Oifname(String),
}

/// What a rule does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `dnat to <addr>[:<port>]`.
    Dnat {
        /// New destination.
        addr: Ipv4Addr,
        /// New destination port (needs a [`Match::Dport`] before it).
        port: Option<u16>,
    },
    /// `snat to <addr>`.
    Snat(Ipv4Addr),
    /// `limit rate over <bytes_per_second> bytes/second burst <burst> bytes drop`: a token
    /// bucket shared by everything the rule matches. The kernel's bucket holds one second at
    /// the rate plus `burst`.
    DropOver {
        /// Rate in bytes per second.
        bytes_per_second: u64,
        /// Bucket size in bytes.
        burst: u32,
    },
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// All must hold.
    pub matches: Vec<Match>,
    /// Then this.
    pub action: Action,
    /// The comment `nft list` shows (the object the rule comes from).
    pub comment: String,
}

/// The whole table: DNAT rules in `prerouting`, SNAT rules in `postrouting`, in order; QoS
/// limits in `qos-ingress` and `qos-egress` (those chains exist only when they hold rules).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Rules of the prerouting chain.
    pub prerouting: Vec<Rule>,
    /// Rules of the postrouting chain.
    pub postrouting: Vec<Rule>,
    /// Limits on traffic to the EIPs.
    pub qos_ingress: Vec<Rule>,
    /// Limits on traffic from the EIPs.
    pub qos_egress: Vec<Rule>,
}

impl Ruleset {
    /// Number of rules (NAT and QoS).
    pub fn len(&self) -> usize {
        self.prerouting.len()
            + self.postrouting.len()
            + self.qos_ingress.len()
            + self.qos_egress.len()
    }

    /// No rules at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The socket could not be opened or used.
    #[error("nf_tables netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused the transaction (nothing of it was applied).
    #[error("the kernel refused the nf_tables transaction at {what}: {source}")]
    Refused {
        /// Which message (the rule's comment, or the table/chain step).
        what: String,
        /// The errno.
        source: std::io::Error,
    },
    /// The kernel's answer could not be read.
    #[error("malformed nf_tables netlink answer: {0}")]
    Malformed(String),
}

// ---- encoding ----

struct Buf(Vec<u8>);

impl Buf {
    fn align(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.align();
    }

    fn str(&mut self, kind: u16, value: &str) {
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v);
    }

    fn be32(&mut self, kind: u16, value: u32) {
        self.attr(kind, &value.to_be_bytes());
    }

    fn nested(&mut self, kind: u16, inner: impl FnOnce(&mut Buf)) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0; 4]);
        inner(self);
        let len = self.0.len() - start;
        self.0[start..start + 2].copy_from_slice(&(len as u16).to_ne_bytes());
        self.0[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn data(&mut self, kind: u16, value: &[u8]) {
        self.nested(kind, |b| b.attr(NFTA_DATA_VALUE, value));
    }

    fn expr(&mut self, name: &str, data: impl FnOnce(&mut Buf)) {
        self.nested(NFTA_LIST_ELEM, |b| {
            b.str(NFTA_EXPR_NAME, name);
            b.nested(NFTA_EXPR_DATA, data);
        });
    }

    /// Appends one netlink message (header, nfgenmsg, attributes from `body`).
    fn message(
        &mut self,
        kind: u16,
        flags: u16,
        seq: u32,
        family: u8,
        body: impl FnOnce(&mut Buf),
    ) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0; 4]);
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0
            .extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        self.0.extend_from_slice(&seq.to_ne_bytes());
        self.0.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version 0, res_id (the subsystem, for batch messages).
        self.0.push(family);
        self.0.push(0);
        self.0
            .extend_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        body(self);
        let len = (self.0.len() - start) as u32;
        self.0[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

fn payload(b: &mut Buf, base: u32, offset: u32, len: u32) {
    b.expr("payload", |b| {
        b.be32(NFTA_PAYLOAD_DREG, NFT_REG_1);
        b.be32(NFTA_PAYLOAD_BASE, base);
        b.be32(NFTA_PAYLOAD_OFFSET, offset);
        b.be32(NFTA_PAYLOAD_LEN, len);
    });
}

fn cmp_eq(b: &mut Buf, value: &[u8]) {
    b.expr("cmp", |b| {
        b.be32(NFTA_CMP_SREG, NFT_REG_1);
        b.be32(NFTA_CMP_OP, NFT_CMP_EQ);
        b.data(NFTA_CMP_DATA, value);
    });
}

fn meta(b: &mut Buf, key: u32) {
    b.expr("meta", |b| {
        b.be32(NFTA_META_DREG, NFT_REG_1);
        b.be32(NFTA_META_KEY, key);
    });
}

fn immediate(b: &mut Buf, reg: u32, value: &[u8]) {
    b.expr("immediate", |b| {
        b.be32(NFTA_IMMEDIATE_DREG, reg);
        b.data(NFTA_IMMEDIATE_DATA, value);
    });
}

fn ifname(name: &str) -> [u8; IFNAMSIZ] {
    let mut out = [0u8; IFNAMSIZ];
    for (o, c) in out
        .iter_mut()
        .zip(name.as_bytes().iter().take(IFNAMSIZ - 1))
    {
        *o = *c;
    }
    out
}

/// `ip saddr|daddr <net>`: the address at `offset` of the IPv4 header in `net`.
fn prefix_match(b: &mut Buf, offset: u32, net: &Ipv4Net) {
    let prefix = u32::from(net.prefix_len());
    if prefix == 0 {
        return;
    }
    let octets = net.network().octets();
    if prefix.is_multiple_of(8) {
        // As nft does: compare only the prefix's bytes.
        payload(b, NFT_PAYLOAD_NETWORK_HEADER, offset, prefix / 8);
        cmp_eq(b, &octets[..(prefix / 8) as usize]);
    } else {
        payload(b, NFT_PAYLOAD_NETWORK_HEADER, offset, 4);
        b.expr("bitwise", |b| {
            b.be32(NFTA_BITWISE_SREG, NFT_REG_1);
            b.be32(NFTA_BITWISE_DREG, NFT_REG_1);
            b.be32(NFTA_BITWISE_LEN, 4);
            b.data(NFTA_BITWISE_MASK, &net.netmask().octets());
            b.data(NFTA_BITWISE_XOR, &[0; 4]);
        });
        cmp_eq(b, &octets);
    }
}

fn encode_match(b: &mut Buf, m: &Match) {
    match m {
        Match::Daddr(ip) => {
            payload(b, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
            cmp_eq(b, &ip.octets());
        }
        Match::Saddr(net) => prefix_match(b, 12, net),
        Match::DaddrIn(net) => prefix_match(b, 16, net),
        Match::Dport(l4, port) => {
            meta(b, NFT_META_L4PROTO);
            cmp_eq(b, &[l4.number()]);
            payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
            cmp_eq(b, &port.to_be_bytes());
        }
        Match::Iifname(name) => {
            meta(b, NFT_META_IIFNAME);
            cmp_eq(b, &ifname(name));
        }
        Match::Oifname(name) => {
            meta(b, NFT_META_OIFNAME);
            cmp_eq(b, &ifname(name));
        }
    }
}

fn encode_action(b: &mut Buf, action: &Action) {
    let (kind, addr, port) = match action {
        Action::Dnat { addr, port } => (NFT_NAT_DNAT, addr, *port),
        Action::Snat(addr) => (NFT_NAT_SNAT, addr, None),
        Action::DropOver {
            bytes_per_second,
            burst,
        } => {
            b.expr("limit", |b| {
                b.attr(NFTA_LIMIT_RATE, &bytes_per_second.to_be_bytes());
                b.attr(NFTA_LIMIT_UNIT, &1u64.to_be_bytes());
                b.be32(NFTA_LIMIT_BURST, *burst);
                b.be32(NFTA_LIMIT_TYPE, NFT_LIMIT_PKT_BYTES);
                b.be32(NFTA_LIMIT_FLAGS, NFT_LIMIT_F_INV);
            });
            b.expr("immediate", |b| {
                b.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                b.nested(NFTA_IMMEDIATE_DATA, |b| {
                    b.nested(NFTA_DATA_VERDICT, |b| b.be32(NFTA_VERDICT_CODE, NF_DROP));
                });
            });
            return;
        }
    };
    immediate(b, NFT_REG_1, &addr.octets());
    if let Some(p) = port {
        immediate(b, NFT_REG_2, &p.to_be_bytes());
    }
    b.expr("nat", |b| {
        b.be32(NFTA_NAT_TYPE, kind);
        b.be32(NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4));
        b.be32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
        b.be32(NFTA_NAT_REG_ADDR_MAX, NFT_REG_1);
        let mut flags = NF_NAT_RANGE_MAP_IPS;
        if port.is_some() {
            b.be32(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2);
            b.be32(NFTA_NAT_REG_PROTO_MAX, NFT_REG_2);
            flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
        }
        b.be32(NFTA_NAT_FLAGS, flags);
    });
}

fn comment_udata(comment: &str) -> Vec<u8> {
    let mut text: Vec<u8> = comment.bytes().take(MAX_COMMENT).collect();
    text.push(0);
    let mut out = vec![UDATA_RULE_COMMENT, text.len() as u8];
    out.extend_from_slice(&text);
    out
}

/// An encoded transaction: the bytes of one datagram, and what each sequence number was for
/// (to name the culprit of an error).
#[derive(Debug)]
pub struct Transaction {
    bytes: Vec<u8>,
    first_seq: u32,
    steps: Vec<String>,
}

impl Transaction {
    /// The datagram.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn step(&self, seq: u32) -> Option<&str> {
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.steps.get(i).map(String::as_str)
    }

    fn last_seq(&self) -> u32 {
        self.first_seq
            .wrapping_add(u32::try_from(self.steps.len()).unwrap_or(u32::MAX))
    }
}

/// Encodes the transaction that makes our table equal to `ruleset`, numbering messages from
/// `first_seq`. Pure: tested without a kernel.
pub fn encode_replace(ruleset: &Ruleset, first_seq: u32) -> Transaction {
    encode(Some(ruleset), first_seq)
}

/// Encodes the transaction that removes our table (and nothing else).
pub fn encode_delete(first_seq: u32) -> Transaction {
    encode(None, first_seq)
}

fn encode(ruleset: Option<&Ruleset>, first_seq: u32) -> Transaction {
    let mut b = Buf(Vec::with_capacity(
        512 + ruleset.map_or(0, |r| r.len() * 320),
    ));
    let mut steps = Vec::new();
    let mut seq = first_seq;
    let mut next = |what: String, steps: &mut Vec<String>| {
        steps.push(what);
        let s = seq;
        seq = seq.wrapping_add(1);
        s
    };
    let s = next("batch begin".into(), &mut steps);
    b.message(NFNL_MSG_BATCH_BEGIN, 0, s, AF_UNSPEC, |_| {});
    // Create-if-missing then delete: a delete alone fails when the table is not there.
    let s = next(format!("table {TABLE} (ensure)"), &mut steps);
    b.message(
        nft_type(NFT_MSG_NEWTABLE),
        NLM_F_CREATE,
        s,
        NFPROTO_IPV4,
        |b| b.str(NFTA_TABLE_NAME, TABLE),
    );
    let s = next(format!("table {TABLE} (delete)"), &mut steps);
    b.message(nft_type(NFT_MSG_DELTABLE), 0, s, NFPROTO_IPV4, |b| {
        b.str(NFTA_TABLE_NAME, TABLE)
    });
    if let Some(ruleset) = ruleset {
        let s = next(format!("table {TABLE} (create)"), &mut steps);
        b.message(
            nft_type(NFT_MSG_NEWTABLE),
            NLM_F_CREATE,
            s,
            NFPROTO_IPV4,
            |b| b.str(NFTA_TABLE_NAME, TABLE),
        );
        let chains = [
            (
                PREROUTING,
                NF_INET_PRE_ROUTING,
                NF_IP_PRI_NAT_DST,
                "nat",
                true,
            ),
            (
                POSTROUTING,
                NF_INET_POST_ROUTING,
                NF_IP_PRI_NAT_SRC,
                "nat",
                true,
            ),
            (
                QOS_INGRESS,
                NF_INET_PRE_ROUTING,
                QOS_INGRESS_PRIORITY,
                "filter",
                !ruleset.qos_ingress.is_empty(),
            ),
            (
                QOS_EGRESS,
                NF_INET_POST_ROUTING,
                QOS_EGRESS_PRIORITY,
                "filter",
                !ruleset.qos_egress.is_empty(),
            ),
        ];
        for (chain, hook, priority, kind, wanted) in chains {
            if !wanted {
                continue;
            }
            let s = next(format!("chain {chain}"), &mut steps);
            b.message(
                nft_type(NFT_MSG_NEWCHAIN),
                NLM_F_CREATE,
                s,
                NFPROTO_IPV4,
                |b| {
                    b.str(NFTA_CHAIN_TABLE, TABLE);
                    b.str(NFTA_CHAIN_NAME, chain);
                    b.nested(NFTA_CHAIN_HOOK, |b| {
                        b.be32(NFTA_HOOK_HOOKNUM, hook);
                        b.attr(NFTA_HOOK_PRIORITY, &priority.to_be_bytes());
                    });
                    b.be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
                    b.str(NFTA_CHAIN_TYPE, kind);
                },
            );
        }
        for (chain, rules) in [
            (PREROUTING, &ruleset.prerouting),
            (POSTROUTING, &ruleset.postrouting),
            (QOS_INGRESS, &ruleset.qos_ingress),
            (QOS_EGRESS, &ruleset.qos_egress),
        ] {
            for rule in rules {
                let s = next(format!("rule {:?} in {chain}", rule.comment), &mut steps);
                b.message(
                    nft_type(NFT_MSG_NEWRULE),
                    NLM_F_CREATE | NLM_F_APPEND,
                    s,
                    NFPROTO_IPV4,
                    |b| {
                        b.str(NFTA_RULE_TABLE, TABLE);
                        b.str(NFTA_RULE_CHAIN, chain);
                        b.nested(NFTA_RULE_EXPRESSIONS, |b| {
                            for m in &rule.matches {
                                encode_match(b, m);
                            }
                            encode_action(b, &rule.action);
                        });
                        if !rule.comment.is_empty() {
                            b.attr(NFTA_RULE_USERDATA, &comment_udata(&rule.comment));
                        }
                    },
                );
            }
        }
    }
    let s = next("batch end".into(), &mut steps);
    b.message(NFNL_MSG_BATCH_END, 0, s, AF_UNSPEC, |_| {});
    Transaction {
        bytes: b.0,
        first_seq,
        steps,
    }
}

// ---- the socket ----

/// A `NETLINK_NETFILTER` socket in the network namespace of the thread that opened it.
#[derive(Debug)]
pub struct Nft {
    socket: rtnetlink::sys::Socket,
    next_seq: u32,
}

impl Nft {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NftError> {
        use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_cap_ack(true)?;
        socket.set_ext_ack(true)?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        Ok(Self {
            socket,
            next_seq: seed,
        })
    }

    /// Makes our table equal to `ruleset`, in one transaction.
    pub fn replace(&mut self, ruleset: &Ruleset) -> Result<(), NftError> {
        let tx = encode_replace(ruleset, self.next_seq);
        self.commit(&tx)
    }

    /// Removes our table (when present).
    pub fn delete(&mut self) -> Result<(), NftError> {
        let tx = encode_delete(self.next_seq);
        self.commit(&tx)
    }

    /// Sends `tx` and waits for the kernel's verdict.
    ///
    /// Only failures are answered (no `NLM_F_ACK` per message: 2,000 acknowledgements queue at
    /// once, inside our `sendmsg`, and overflow a default receive buffer). A `GETGEN` request
    /// sent after the batch is answered after every error of the batch, so its answer marks the
    /// end of the verdict.
    pub fn commit(&mut self, tx: &Transaction) -> Result<(), NftError> {
        use nix::sys::socket::{setsockopt, sockopt};
        let need = tx.bytes().len() + 64 * 1024;
        // A netlink datagram larger than the send buffer is refused (EMSGSIZE), and a batch
        // must be one datagram. Root may exceed wmem_max with the FORCE variant.
        if need > 200 * 1024 {
            setsockopt(&self.socket, sockopt::SndBufForce, &need)
                .or_else(|_| setsockopt(&self.socket, sockopt::SndBuf, &need))
                .map_err(std::io::Error::from)?;
        }
        self.socket.send(tx.bytes(), 0)?;
        let sync = tx.last_seq();
        let mut getgen = Buf(Vec::with_capacity(32));
        getgen.message(nft_type(NFT_MSG_GETGEN), NLM_F_ACK, sync, AF_UNSPEC, |_| {});
        self.socket.send(&getgen.0, 0)?;
        self.next_seq = sync.wrapping_add(1);

        let mut first_error: Option<NftError> = None;
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            buf.clear();
            match self.socket.recv(&mut buf, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            let mut offset = 0;
            while offset + 16 <= buf.len() {
                let len = u32_at(&buf, offset)? as usize;
                let kind = u16_at(&buf, offset + 4)?;
                let seq = u32_at(&buf, offset + 8)?;
                if len < 16 || offset + len > buf.len() {
                    return Err(NftError::Malformed(format!("message length {len}")));
                }
                if kind == NLMSG_ERROR {
                    let code = i32::from_ne_bytes(
                        buf.get(offset + 16..offset + 20)
                            .and_then(|s| s.try_into().ok())
                            .ok_or_else(|| NftError::Malformed("short error message".into()))?,
                    );
                    if seq == sync {
                        return match first_error {
                            Some(e) => Err(e),
                            None if code == 0 => Ok(()),
                            None => Err(NftError::Refused {
                                what: "generation sync".into(),
                                source: std::io::Error::from_raw_os_error(-code),
                            }),
                        };
                    }
                    if code != 0 && first_error.is_none() {
                        first_error = Some(NftError::Refused {
                            what: tx
                                .step(seq)
                                .map_or_else(|| format!("message {seq}"), str::to_owned),
                            source: std::io::Error::from_raw_os_error(-code),
                        });
                    }
                } else if kind == NLMSG_DONE && seq == sync {
                    return first_error.map_or(Ok(()), Err);
                }
                offset += (len + 3) & !3;
            }
        }
    }
}

fn u32_at(buf: &[u8], at: usize) -> Result<u32, NftError> {
    buf.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
        .ok_or_else(|| NftError::Malformed("truncated header".into()))
}

fn u16_at(buf: &[u8], at: usize) -> Result<u16, NftError> {
    buf.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_ne_bytes)
        .ok_or_else(|| NftError::Malformed("truncated header".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dnat() -> Rule {
        Rule {
            matches: vec![
                Match::Daddr(Ipv4Addr::new(1, 2, 3, 4)),
                Match::Dport(L4::Tcp, 80),
            ],
            action: Action::Dnat {
                addr: Ipv4Addr::new(10, 0, 0, 2),
                port: Some(8080),
            },
            comment: "dnat/web".into(),
        }
    }

    /// Walks the messages of a datagram: (type, flags, seq).
    fn messages(bytes: &[u8]) -> Vec<(u16, u16, u32)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = u32_at(bytes, at).unwrap() as usize;
            out.push((
                u16_at(bytes, at + 4).unwrap(),
                u16_at(bytes, at + 6).unwrap(),
                u32_at(bytes, at + 8).unwrap(),
            ));
            assert!(len >= 20 && len.is_multiple_of(4), "length {len}");
            at += len;
        }
        assert_eq!(at, bytes.len());
        out
    }

    #[test]
    fn a_replace_is_one_batch_that_rebuilds_only_our_table() {
        let rs = Ruleset {
            prerouting: vec![dnat()],
            ..Default::default()
        };
        let tx = encode_replace(&rs, 7);
        let kinds: Vec<u16> = messages(tx.bytes()).iter().map(|m| m.0).collect();
        let t = |m| nft_type(m);
        assert_eq!(
            kinds,
            [
                NFNL_MSG_BATCH_BEGIN,
                t(NFT_MSG_NEWTABLE),
                t(NFT_MSG_DELTABLE),
                t(NFT_MSG_NEWTABLE),
                t(NFT_MSG_NEWCHAIN),
                t(NFT_MSG_NEWCHAIN),
                t(NFT_MSG_NEWRULE),
                NFNL_MSG_BATCH_END
            ]
        );
        let seqs: Vec<u32> = messages(tx.bytes()).iter().map(|m| m.2).collect();
        assert_eq!(seqs, (7..15).collect::<Vec<_>>());
        assert_eq!(tx.step(13), Some("rule \"dnat/web\" in prerouting"));
        assert_eq!(tx.last_seq(), 15);
        // Every message is a request; none asks for an acknowledgement.
        assert!(
            messages(tx.bytes())
                .iter()
                .all(|m| m.1 & NLM_F_REQUEST != 0 && m.1 & NLM_F_ACK == 0)
        );
    }

    #[test]
    fn a_delete_touches_only_our_table() {
        let tx = encode_delete(1);
        let kinds: Vec<u16> = messages(tx.bytes()).iter().map(|m| m.0).collect();
        assert_eq!(
            kinds,
            [
                NFNL_MSG_BATCH_BEGIN,
                nft_type(NFT_MSG_NEWTABLE),
                nft_type(NFT_MSG_DELTABLE),
                NFNL_MSG_BATCH_END
            ]
        );
    }

    #[test]
    fn interface_names_are_padded_and_long_ones_cut() {
        assert_eq!(&ifname("net1")[..5], b"net1\0");
        assert_eq!(ifname("a-very-long-interface-name")[15], 0);
    }

    #[test]
    fn comments_are_bounded() {
        let long = "x".repeat(300);
        let u = comment_udata(&long);
        assert_eq!(usize::from(u[1]), MAX_COMMENT + 1);
        assert_eq!(u.len(), MAX_COMMENT + 3);
    }
}
