//! A syntax check of OVN match expressions (ovn-sb(5), "Logical_Flow": `match`), for the ACLs
//! users write in `Subnet.spec.acls`.
//!
//! OVN's NB takes any string as an ACL's match; `ovn-northd` finds the error later, logs it and
//! writes no flow, so a typo would silently turn a drop into nothing. This check refuses such a
//! match before anything is written: the grammar (`||`, `&&`, `!`, parentheses, relations
//! `== != < <= > >=`, sets `{..}`, `$address_set`, `@port_group`, masks, the range form
//! `1 <= tcp.dst <= 100`), the fields OVN knows, and which of them stand alone as predicates.
//! Value types (an IPv6 address compared with `ip4.src`) are left to northd.

use std::net::IpAddr;

/// Fields (and predicates) of OVN's logical flow matches, without the register and `flags.`,
/// `ct.`, `ct_mark`/`ct_label` families (accepted by prefix).
const FIELDS: &[&str] = &[
    "inport",
    "outport",
    "eth.src",
    "eth.dst",
    "eth.type",
    "vlan.tci",
    "vlan.vid",
    "vlan.pcp",
    "ip.proto",
    "ip.dscp",
    "ip.ecn",
    "ip.ttl",
    "ip.frag",
    "ip4.src",
    "ip4.dst",
    "ip6.src",
    "ip6.dst",
    "ip6.label",
    "icmp4.type",
    "icmp4.code",
    "icmp6.type",
    "icmp6.code",
    "tcp.src",
    "tcp.dst",
    "tcp.flags",
    "udp.src",
    "udp.dst",
    "sctp.src",
    "sctp.dst",
    "arp.op",
    "arp.spa",
    "arp.tpa",
    "arp.sha",
    "arp.tha",
    "nd.target",
    "nd.sll",
    "nd.tll",
    "ct_state",
    "pkt.mark",
];

/// One-bit fields and predicates: valid on their own (`ip4 && tcp`).
const PREDICATES: &[&str] = &[
    "eth.bcast",
    "eth.mcast",
    "vlan.present",
    "ip",
    "ip4",
    "ip6",
    "ip4.mcast",
    "ip4.src_mcast",
    "ip6.mcast",
    "ip.is_frag",
    "ip.first_frag",
    "ip.later_frag",
    "icmp",
    "icmp4",
    "icmp6",
    "igmp",
    "mldv1",
    "mldv2",
    "tcp",
    "udp",
    "sctp",
    "arp",
    "rarp",
    "nd",
    "nd_ns",
    "nd_na",
    "nd_rs",
    "nd_ra",
    "nd_ns_mcast",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    And,
    Or,
    Not,
    Rel(&'static str),
    /// A quoted string (port names).
    Str,
    /// `$address_set` or `@port_group`.
    Set,
    /// A field, predicate or constant as written.
    Word(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let two = b.get(i..i + 2).unwrap_or_default();
        let (token, len) = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => (Token::LParen, 1),
            b')' => (Token::RParen, 1),
            b'{' => (Token::LBrace, 1),
            b'}' => (Token::RBrace, 1),
            b',' => (Token::Comma, 1),
            _ if two == b"&&" => (Token::And, 2),
            _ if two == b"||" => (Token::Or, 2),
            _ if two == b"==" => (Token::Rel("=="), 2),
            _ if two == b"!=" => (Token::Rel("!="), 2),
            _ if two == b"<=" => (Token::Rel("<="), 2),
            _ if two == b">=" => (Token::Rel(">="), 2),
            b'!' => (Token::Not, 1),
            b'<' => (Token::Rel("<"), 1),
            b'>' => (Token::Rel(">"), 1),
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                if j >= b.len() {
                    return Err(format!("unterminated string at offset {i}"));
                }
                (Token::Str, j + 1 - i)
            }
            b'$' | b'@' => {
                let len = 1 + word_len(&b[i + 1..]);
                if len == 1 {
                    return Err(format!("{:?} without a name at offset {i}", c as char));
                }
                (Token::Set, len)
            }
            _ => {
                let len = word_len(&b[i..]);
                if len == 0 {
                    return Err(format!("unexpected {:?} at offset {i}", c as char));
                }
                (Token::Word(text[i..i + len].to_owned()), len)
            }
        };
        out.push(token);
        i += len;
    }
    Ok(out)
}

fn word_len(b: &[u8]) -> usize {
    b.iter()
        .take_while(|c| c.is_ascii_alphanumeric() || b"_.:/[]-".contains(c))
        .count()
}

/// Whether `w` is a constant: an integer (decimal or `0x` hex), an IP address, a MAC address,
/// any of them with a `/mask`.
fn is_constant(w: &str) -> bool {
    let (value, mask) = match w.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (w, None),
    };
    let scalar = |s: &str| {
        s.parse::<u128>().is_ok()
            || s.strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || s.parse::<IpAddr>().is_ok()
            || is_mac(s)
    };
    scalar(value) && mask.is_none_or(scalar)
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// What a field name is: a predicate (stands alone), a field (needs a relation), or unknown.
#[derive(Debug, PartialEq)]
enum Kind {
    Predicate,
    Field,
}

fn field_kind(w: &str) -> Result<Kind, String> {
    let (name, subfield) = match w.split_once('[') {
        Some((n, rest)) => {
            let bits = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("{w:?}: unterminated subfield"))?;
            let range = bits.split_once("..");
            let ok = |s: &str| s.parse::<u16>().is_ok();
            match range {
                Some((a, b)) if ok(a) && ok(b) => {}
                None if ok(bits) => {}
                _ => return Err(format!("{w:?}: a subfield is [bit] or [first..last]")),
            }
            (n, Some(range.is_none()))
        }
        None => (w, None),
    };
    let register = ["reg", "xreg", "xxreg"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    });
    let base = if PREDICATES.contains(&name)
        || name.strip_prefix("ct.").is_some_and(|s| !s.is_empty())
        || name.strip_prefix("flags.").is_some_and(|s| !s.is_empty())
    {
        Kind::Predicate
    } else if register
        || FIELDS.contains(&name)
        || name == "ct_mark"
        || name == "ct_label"
        || name.starts_with("ct_mark.")
        || name.starts_with("ct_label.")
    {
        Kind::Field
    } else {
        return Err(format!("{name:?} is not a field OVN knows"));
    };
    // A one-bit subfield (`reg0[3]`) is a predicate too.
    Ok(match subfield {
        Some(true) => Kind::Predicate,
        _ => base,
    })
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn expect(&mut self, want: &Token, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if &t == want => Ok(()),
            Some(t) => Err(format!("expected {what}, found {}", show(&t))),
            None => Err(format!("expected {what}, found the end")),
        }
    }

    /// `unary ((&& unary)* | (|| unary)*)`: OVN's grammar takes `&&` and `||` mixed only
    /// with parentheses (`a && b || c` is an error, northd drops the flow).
    fn or(&mut self) -> Result<(), String> {
        self.unary()?;
        let Some(op) = self
            .peek()
            .filter(|t| **t == Token::And || **t == Token::Or)
            .cloned()
        else {
            return Ok(());
        };
        while self.peek() == Some(&op) {
            self.at += 1;
            self.unary()?;
        }
        match self.peek() {
            Some(Token::And | Token::Or) => {
                Err("&& and || cannot be mixed without parentheses".to_owned())
            }
            _ => Ok(()),
        }
    }

    fn unary(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::Not) => self.unary(),
            Some(Token::LParen) => {
                self.or()?;
                self.expect(&Token::RParen, "')'")
            }
            Some(Token::Word(w)) if w == "is_chassis_resident" => {
                self.expect(&Token::LParen, "'(' after is_chassis_resident")?;
                self.expect(&Token::Str, "a quoted port name")?;
                self.expect(&Token::RParen, "')'")
            }
            Some(Token::Word(w)) if is_constant(&w) => {
                // The range form: `1 <= tcp.dst <= 100`.
                self.relation(&w)?;
                match self.next() {
                    Some(Token::Word(f)) if !is_constant(&f) => {
                        field_kind(&f)?;
                        self.relation(&f)?;
                        self.value()
                    }
                    Some(t) => Err(format!("expected a field after {w}, found {}", show(&t))),
                    None => Err(format!("expected a field after {w}, found the end")),
                }
            }
            Some(Token::Word(w)) => {
                let kind = field_kind(&w)?;
                if matches!(self.peek(), Some(Token::Rel(_))) {
                    self.at += 1;
                    self.value()
                } else if kind == Kind::Predicate {
                    Ok(())
                } else {
                    Err(format!("{w} needs a comparison (e.g. {w} == <value>)"))
                }
            }
            Some(t) => Err(format!("expected a field or '(', found {}", show(&t))),
            None => Err("expected a field or '(', found the end".into()),
        }
    }

    fn relation(&mut self, after: &str) -> Result<(), String> {
        match self.next() {
            Some(Token::Rel(_)) => Ok(()),
            Some(t) => Err(format!(
                "expected a relation after {after}, found {}",
                show(&t)
            )),
            None => Err(format!("expected a relation after {after}, found the end")),
        }
    }

    fn value(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::LBrace) => {
                let mut n = 0;
                loop {
                    match self.next() {
                        Some(Token::RBrace) if n > 0 => return Ok(()),
                        Some(Token::Comma) if n > 0 => {}
                        Some(t) => {
                            constant(&t)?;
                            n += 1;
                        }
                        None => return Err("unterminated set: expected '}'".into()),
                    }
                }
            }
            Some(t) => constant(&t),
            None => Err("expected a value, found the end".into()),
        }
    }
}

fn constant(t: &Token) -> Result<(), String> {
    match t {
        Token::Str | Token::Set => Ok(()),
        Token::Word(w) if is_constant(w) => Ok(()),
        other => Err(format!("expected a value, found {}", show(other))),
    }
}

fn show(t: &Token) -> String {
    match t {
        Token::LParen => "'('".into(),
        Token::RParen => "')'".into(),
        Token::LBrace => "'{'".into(),
        Token::RBrace => "'}'".into(),
        Token::Comma => "','".into(),
        Token::And => "'&&'".into(),
        Token::Or => "'||'".into(),
        Token::Not => "'!'".into(),
        Token::Rel(r) => format!("'{r}'"),
        Token::Str => "a string".into(),
        Token::Set => "a set name".into(),
        Token::Word(w) => format!("{w:?}"),
    }
}

/// Checks that `text` is an OVN match expression; the error says what is wrong and where.
pub fn check(text: &str) -> Result<(), String> {
    let tokens = tokens(text)?;
    if tokens.is_empty() {
        return Err("empty match: write the condition, e.g. \"ip4 && tcp.dst == 80\"".into());
    }
    let mut p = Parser { tokens, at: 0 };
    p.or()?;
    match p.next() {
        None => Ok(()),
        Some(t) => Err(format!(
            "unexpected {} after a complete expression",
            show(&t)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn matches_users_and_upstream_write_are_accepted() {
        for m in [
            "ip4.src == 10.110.3.0/24 && icmp4",
            "ip",
            "ip4.src==10.0.0.0/24 && ip4.dst==10.0.0.0/24",
            "(ip4.src == 10.1.0.0/16 && ip4.dst == 10.2.0.0/16) || (ip4.src == 10.2.0.0/16 && ip4.dst == 10.1.0.0/16)",
            "outport == @ovn.sg.web && ip4.src == $ovn.sg.db.associated.v4",
            "inport == \"pod.ns.net.ns.ovn\" && tcp.dst == {80, 443}",
            "tcp && 1000 <= tcp.dst <= 2000",
            "ip6.dst == fd00::/64 && !icmp6",
            "eth.src == 0a:00:00:00:00:01 && eth.type == 0x800",
            "ct.est && !ct.rel && reg0[7] && reg0[0..3] == 5",
            "ip4.dst == 10.0.0.0/255.255.0.0 && udp.dst != 53",
            "is_chassis_resident(\"lsp\")",
            "ct_label.blocked == 1 || flags.loopback",
        ] {
            assert_eq!(check(m), Ok(()), "{m}");
        }
    }

    #[test]
    fn bad_matches_are_refused_with_the_reason() {
        for (m, want) in [
            ("", "empty match"),
            ("ip4.src == ", "expected a value, found the end"),
            (
                "ip4.scr == 10.0.0.1",
                "\"ip4.scr\" is not a field OVN knows",
            ),
            ("ip4.src", "ip4.src needs a comparison"),
            ("ip4 && (tcp", "expected ')'"),
            ("ip4 tcp", "unexpected \"tcp\" after a complete expression"),
            ("ip4.src == 10.0.0.1 &&", "found the end"),
            ("tcp.dst == {}", "expected a value, found '}'"),
            ("inport == \"unterminated", "unterminated string"),
            ("ip4.src = 10.0.0.1", "unexpected '='"),
            ("ip4.src == ip4", "expected a value, found \"ip4\""),
            ("reg0[x] == 1", "subfield"),
            ("tcp.dst == $", "without a name"),
            (
                "tcp.dst == 80 || tcp.dst >= 8000 && tcp.dst <= 8010",
                "cannot be mixed without parentheses",
            ),
            ("ip4 && tcp || udp", "cannot be mixed"),
        ] {
            let err = check(m).unwrap_err();
            assert!(err.contains(want), "{m:?}: {err:?} lacks {want:?}");
        }
    }
}
