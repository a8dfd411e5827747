//! Address policy: which IP addresses an agent's request may connect to.
//!
//! Every address a request would connect to — a literal in the URL or each
//! address its name resolves to — goes through [`AddressPolicy::check`]. An
//! address is refused when [`forbidden_reason`] names a reason and no range
//! in the scope's `allow_addresses` contains it.
//!
//! Forbidden: everything that is not ordinary public unicast — loopback,
//! unspecified, private, shared (CGNAT), link-local (where cloud metadata
//! services live), multicast, broadcast, documentation, benchmarking and
//! reserved ranges — and, for IPv6, the forms that embed an IPv4 address
//! (IPv4-mapped, IPv4-compatible, 6to4, NAT64) whenever the embedded IPv4
//! address is forbidden.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why `ip` must not be connected to without an explicit allowance, or `None`
/// for an ordinary public unicast address.
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are classified as the IPv4
/// address they are.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

/// `true` when [`forbidden_reason`] has a reason.
pub fn is_forbidden(ip: IpAddr) -> bool {
    forbidden_reason(ip).is_some()
}

/// Canonical form used for checks and connections: an IPv4-mapped IPv6
/// address becomes the IPv4 address it maps (that is where a dual-stack socket
/// would connect), everything else is unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

const V4_RANGES: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" (0.0.0.0/8)"),
    ([10, 0, 0, 0], 8, "private (10.0.0.0/8)"),
    (
        [100, 64, 0, 0],
        10,
        "shared address space / CGNAT (100.64.0.0/10)",
    ),
    ([127, 0, 0, 0], 8, "loopback (127.0.0.0/8)"),
    (
        [169, 254, 0, 0],
        16,
        "link-local / cloud metadata (169.254.0.0/16)",
    ),
    ([172, 16, 0, 0], 12, "private (172.16.0.0/12)"),
    (
        [192, 0, 0, 0],
        24,
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    ([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast (192.88.99.0/24)"),
    ([192, 168, 0, 0], 16, "private (192.168.0.0/16)"),
    ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
    ([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
    ([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
    ([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
    ([255, 255, 255, 255], 32, "broadcast (255.255.255.255)"),
    ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
];

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_RANGES.iter().find_map(|(net, len, why)| {
        let mask = if *len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(*len))
        };
        (bits & mask == u32::from_be_bytes(*net)).then_some(*why)
    })
}

/// IPv6 ranges refused outright, whatever they embed.
const V6_RANGES: &[([u16; 8], u8, &str)] = &[
    ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only (100::/64)"),
    (
        [0x0064, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local-use NAT64 (64:ff9b:1::/48)",
    ),
    (
        [0x2001, 0x0db8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation (2001:db8::/32)",
    ),
    (
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments incl. Teredo (2001::/23)",
    ),
    (
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "documentation (3fff::/20)",
    ),
    // SIIT "IPv4-translated" addresses (RFC 2765): a translator would
    // deliver them to the IPv4 address they carry.
    (
        [0, 0, 0, 0, 0xffff, 0, 0, 0],
        96,
        "IPv4-translated (::ffff:0:0:0/96)",
    ),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local (fc00::/7)"),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local (fe80::/10)"),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local (fec0::/10)"),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast (ff00::/8)"),
];

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    let bits = u128::from(ip);
    let in_net = |net: [u16; 8], len: u8| {
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        };
        bits & mask == u128::from(Ipv6Addr::from(net))
    };
    if let Some((_, _, why)) = V6_RANGES.iter().find(|(net, len, _)| in_net(*net, *len)) {
        return Some(why);
    }
    let embedded = if in_net([0; 8], 96) {
        // IPv4-compatible (deprecated): ::a.b.c.d.
        Some(low32(bits))
    } else if in_net([0x0064, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        // Well-known NAT64 prefix: 64:ff9b::a.b.c.d.
        Some(low32(bits))
    } else if in_net([0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        // 6to4: 2002:AABB:CCDD::/48 embeds a.b.c.d in bits 16..48.
        Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32))
    } else {
        None
    };
    match embedded {
        Some(v4) if forbidden_v4(v4).is_some() => {
            Some("IPv6 form embedding a forbidden IPv4 address")
        }
        Some(_) if in_net([0; 8], 96) => Some("IPv4-compatible IPv6 (::/96, deprecated)"),
        _ => None,
    }
}

fn low32(bits: u128) -> Ipv4Addr {
    Ipv4Addr::from((bits & 0xffff_ffff) as u32)
}

/// Forbidden addresses plus the ranges a scope explicitly allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// A policy allowing the given ranges on top of every public address.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed: allowed.into_iter().map(|n| n.trunc()).collect(),
        }
    }

    /// The explicitly allowed ranges.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// `Ok` when `ip` may be connected to; otherwise the reason, naming the
    /// address. The check is on [`canonical`]`(ip)`.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        match forbidden_reason(ip) {
            None => Ok(()),
            Some(_) if self.allowed.iter().any(|net| net.contains(&ip)) => Ok(()),
            Some(why) => Err(format!("{ip} is {why}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(s: &str) -> bool {
        is_forbidden(s.parse().unwrap())
    }

    #[test]
    fn public_addresses_are_allowed() {
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!forbidden(a), "{a} should be allowed");
        }
    }

    #[test]
    fn ipv4_special_ranges_are_forbidden() {
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.100.100.200",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(forbidden(a), "{a} should be forbidden");
        }
    }

    #[test]
    fn ipv6_special_ranges_are_forbidden() {
        for a in [
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fd00::1",
            "fd00:ec2::254",
            "ff02::1",
            "ff05::2",
            "100::1",
            "2001:db8::1",
            "2001::1",
            "3fff::1",
            "64:ff9b:1::1",
        ] {
            assert!(forbidden(a), "{a} should be forbidden");
        }
    }

    #[test]
    fn ipv6_forms_embedding_forbidden_ipv4_are_forbidden() {
        for a in [
            "::ffff:127.0.0.1",       // IPv4-mapped loopback
            "::ffff:169.254.169.254", // IPv4-mapped metadata
            "::ffff:10.0.0.1",
            "::127.0.0.1", // IPv4-compatible
            "::169.254.169.254",
            "::8.8.8.8",       // IPv4-compatible is deprecated: refused even when public
            "64:ff9b::7f00:1", // NAT64 127.0.0.1
            "64:ff9b::a9fe:a9fe", // NAT64 169.254.169.254
            "2002:7f00:1::1",  // 6to4 127.0.0.1
            "2002:a9fe:a9fe::", // 6to4 169.254.169.254
            "2002:c0a8:101::1", // 6to4 192.168.1.1
        ] {
            assert!(forbidden(a), "{a} should be forbidden");
        }
    }

    #[test]
    fn mapped_addresses_are_checked_as_ipv4() {
        assert_eq!(
            canonical("::ffff:127.0.0.1".parse().unwrap()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            canonical("::1".parse().unwrap()),
            "::1".parse::<IpAddr>().unwrap()
        );
        let policy = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(policy.check("::ffff:127.0.0.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn allowed_ranges_lift_the_ban_only_inside_them() {
        let policy = AddressPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("127.3.2.1".parse().unwrap()).is_ok());
        assert!(policy.check("::1".parse().unwrap()).is_ok());
        assert!(policy.check("8.8.8.8".parse().unwrap()).is_ok());
        let err = policy
            .check("169.254.169.254".parse().unwrap())
            .unwrap_err();
        assert!(
            err.contains("169.254.169.254") && err.contains("link-local"),
            "{err}"
        );
        assert!(policy.check("10.0.0.1".parse().unwrap()).is_err());
        assert!(policy.check("fd00:ec2::254".parse().unwrap()).is_err());
        assert!(
            AddressPolicy::default()
                .check("127.0.0.1".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn siit_translated_forms_are_refused() {
        for ip in ["::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe", "::ffff:0:808:808"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_forbidden(ip), "{ip}");
        }
    }
}
