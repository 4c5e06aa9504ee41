//! Where a server listens (`unix:`, `tcp:`, `ssl:` remotes and comma-separated RAFT member
//! lists) and the TLS material for `ssl:`. Pure: parsing and printing only.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Where an OVSDB server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// `unix:PATH`
    Unix(PathBuf),
    /// `tcp:HOST:PORT`
    Tcp(String, u16),
    /// `ssl:HOST:PORT`
    Ssl(String, u16),
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
            Remote::Tcp(h, p) if h.contains(':') => write!(f, "tcp:[{h}]:{p}"),
            Remote::Tcp(h, p) => write!(f, "tcp:{h}:{p}"),
            Remote::Ssl(h, p) if h.contains(':') => write!(f, "ssl:[{h}]:{p}"),
            Remote::Ssl(h, p) => write!(f, "ssl:{h}:{p}"),
        }
    }
}

fn host_port(remote: &str, rest: &str) -> Result<(String, u16)> {
    let bad = |reason: &str| Error::InvalidRemote {
        remote: remote.into(),
        reason: reason.into(),
    };
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, p) = r
            .split_once("]:")
            .ok_or_else(|| bad("expected [IPv6]:PORT"))?;
        (h, p)
    } else {
        rest.rsplit_once(':')
            .ok_or_else(|| bad("expected HOST:PORT"))?
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = port.parse::<u16>().map_err(|_| bad("bad port"))?;
    Ok((host.to_owned(), port))
}

impl FromStr for Remote {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(Error::InvalidRemote {
                    remote: s.into(),
                    reason: "empty path".into(),
                });
            }
            Ok(Remote::Unix(PathBuf::from(p)))
        } else if let Some(r) = s.strip_prefix("tcp:") {
            let (h, p) = host_port(s, r)?;
            Ok(Remote::Tcp(h, p))
        } else if let Some(r) = s.strip_prefix("ssl:") {
            let (h, p) = host_port(s, r)?;
            Ok(Remote::Ssl(h, p))
        } else {
            Err(Error::InvalidRemote {
                remote: s.into(),
                reason: "expected unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT".into(),
            })
        }
    }
}

/// Parses a comma-separated remote list (a RAFT cluster's members).
pub fn parse_remotes(s: &str) -> Result<Vec<Remote>> {
    let v = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Remote::from_str)
        .collect::<Result<Vec<_>>>()?;
    if v.is_empty() {
        return Err(Error::InvalidRemote {
            remote: s.into(),
            reason: "no remote given".into(),
        });
    }
    Ok(v)
}

/// Client certificate, key and CA for `ssl:` remotes (PEM files).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The CA certificate(s) the server's certificate must chain to.
    pub ca_cert: PathBuf,
    /// Our certificate chain.
    pub cert: PathBuf,
    /// Our private key.
    pub key: PathBuf,
    /// Whether the server's certificate must also name the host of the remote (as an HTTPS
    /// client checks). `false` checks what OVN's own clients check (`ovn-controller`,
    /// `ovn-northd`, `ovn-nbctl`): the certificate chains to the CA, is in its validity period
    /// and is meant for a server; the name in it is not looked at, so certificates made by
    /// `ovs-pki` (a common name, no subjectAltName) work and one certificate serves every
    /// address of a cluster. Only sound when the CA signs OVN's certificates and nothing else.
    pub check_server_name: bool,
}

impl TlsConfig {
    /// Reads and checks the three files (PEM, the key matching the certificate) as a
    /// connection to `remote` would (it only names the target in the error).
    pub fn check(&self, remote: &Remote) -> crate::error::Result<()> {
        super::tls::check(remote, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_remotes() {
        assert_eq!(
            parse_remotes("unix:/run/ovn/ovnnb_db.sock").unwrap(),
            vec![Remote::Unix("/run/ovn/ovnnb_db.sock".into())]
        );
        let v = parse_remotes("tcp:127.0.0.1:6641, tcp:[::1]:6642,ssl:ovn.example:6643").unwrap();
        assert_eq!(
            v,
            vec![
                Remote::Tcp("127.0.0.1".into(), 6641),
                Remote::Tcp("::1".into(), 6642),
                Remote::Ssl("ovn.example".into(), 6643),
            ]
        );
        assert_eq!(v[1].to_string(), "tcp:[::1]:6642");
        for bad in [
            "",
            "tcp:1.2.3.4",
            "tcp:h:99999",
            "udp:h:1",
            "unix:",
            "tcp::1",
        ] {
            assert!(parse_remotes(bad).is_err(), "{bad}");
        }
    }
}
