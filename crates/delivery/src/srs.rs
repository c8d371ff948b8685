//! The Sender Rewriting Scheme for forwarded mail (issue 13; the scheme
//! of Shevek's "Sender Rewriting Scheme" paper and libsrs2): mail we
//! forward leaves with a reverse-path in our own domain, so SPF at the
//! destination checks us rather than the original sender's domain, and a
//! bounce to it comes back to us, where the hash proves we made it before
//! we pass it on to the original sender (without that check the decoded
//! address is an open relay).
//!
//! `SRS0=HHHH=TT=domain=local@ours`: TT is the day (two base32 characters,
//! days since the epoch modulo 1024), HHHH the first 20 bits of
//! HMAC-SHA-256 under our secret over the rest, base32; both compared
//! without regard to case, since MTAs on the way may fold it. An address
//! that is already SRS0 (forwarded twice) becomes
//! `SRS1=HHHH=first-forwarder==HHHH=TT=domain=local@ours`, one that is SRS1
//! keeps its first forwarder, so the address never grows.

use ring::hmac;

/// Days an SRS address stays valid: long enough for any bounce of a
/// message that waits out a 5-day queue lifetime at the next hop.
pub const VALID_DAYS: u64 = 21;
/// Characters of the hash (20 bits).
pub const HASH_CHARS: usize = 4;
/// RFC 4648 6 base32 alphabet.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The day stamp wraps at 32 * 32 days.
const DAY_MODULUS: u64 = 1024;

/// Why an SRS address is not one of ours to pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrsError {
    /// Not SRS0/SRS1 syntax.
    Malformed,
    /// The hash does not match: forged.
    BadHash,
    /// Older than [`VALID_DAYS`].
    Expired,
}

/// Rewrites and checks SRS addresses of our primary domain.
pub struct Srs {
    key: hmac::Key,
    /// Our primary domain: the domain of every address we make.
    domain: String,
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Srs({}, <secret>)", self.domain)
    }
}

/// True when the local part is SRS syntax (`SRS0=` or `SRS1=`, any case).
pub fn is_srs(local: &str) -> bool {
    let p = local.get(..5).unwrap_or("").to_ascii_uppercase();
    p == "SRS0=" || p == "SRS1="
}

impl Srs {
    pub fn new(secret: &[u8], domain: &str) -> Srs {
        Srs {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            domain: domain.to_ascii_lowercase(),
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    fn hash(&self, data: &str) -> String {
        let tag = hmac::sign(&self.key, data.to_ascii_lowercase().as_bytes());
        let b = tag.as_ref();
        let bits = (u32::from(*b.first().unwrap_or(&0)) << 16)
            | (u32::from(*b.get(1).unwrap_or(&0)) << 8)
            | u32::from(*b.get(2).unwrap_or(&0));
        (0..HASH_CHARS)
            .map(|i| {
                let v = (bits >> (19 - 5 * i as u32)) & 31;
                char::from(BASE32[v as usize])
            })
            .collect()
    }

    /// The reverse-path for forwarding mail from `sender` on `day` (days
    /// since the epoch). The null reverse-path stays null (RFC 5321
    /// 4.5.5: nothing may answer a bounce).
    pub fn forward(&self, sender: &str, day: u64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return sender.to_string();
        };
        let upper = local.get(..5).unwrap_or("").to_ascii_uppercase();
        let rest = local.get(5..).unwrap_or("");
        let new_local = if upper == "SRS0=" {
            // SRS1=HHHH=forwarder==HHHH=TT=domain=local
            let h = self.hash(&format!("{domain}=={rest}"));
            format!("SRS1={h}={domain}=={rest}")
        } else if upper == "SRS1="
            && let Some((_, tail)) = rest.split_once('=')
            && let Some((first, srs0)) = tail.split_once("==")
        {
            let h = self.hash(&format!("{first}=={srs0}"));
            format!("SRS1={h}={first}=={srs0}")
        } else {
            let tt = day_stamp(day);
            let h = self.hash(&format!("{tt}={domain}={local}"));
            format!("SRS0={h}={tt}={domain}={local}")
        };
        format!("{new_local}@{}", self.domain)
    }

    /// The address an SRS local part of ours stands for, checked: SRS0
    /// gives the original sender, SRS1 the SRS0 address of the first
    /// forwarder. `day` is today (days since the epoch).
    pub fn reverse(&self, local: &str, day: u64) -> Result<String, SrsError> {
        let upper = local.get(..5).unwrap_or("").to_ascii_uppercase();
        let rest = local.get(5..).unwrap_or("");
        match upper.as_str() {
            "SRS0=" => {
                let mut parts = rest.splitn(4, '=');
                let (Some(h), Some(tt), Some(domain), Some(user)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(SrsError::Malformed);
                };
                if domain.is_empty() || user.is_empty() {
                    return Err(SrsError::Malformed);
                }
                if !h.eq_ignore_ascii_case(&self.hash(&format!("{tt}={domain}={user}"))) {
                    return Err(SrsError::BadHash);
                }
                let stamped = parse_day_stamp(tt).ok_or(SrsError::Malformed)?;
                let age = (day % DAY_MODULUS + DAY_MODULUS - stamped) % DAY_MODULUS;
                if age > VALID_DAYS {
                    return Err(SrsError::Expired);
                }
                Ok(format!("{user}@{domain}"))
            }
            "SRS1=" => {
                let (h, tail) = rest.split_once('=').ok_or(SrsError::Malformed)?;
                let (first, srs0) = tail.split_once("==").ok_or(SrsError::Malformed)?;
                if first.is_empty() || srs0.is_empty() {
                    return Err(SrsError::Malformed);
                }
                if !h.eq_ignore_ascii_case(&self.hash(&format!("{first}=={srs0}"))) {
                    return Err(SrsError::BadHash);
                }
                Ok(format!("SRS0={srs0}@{first}"))
            }
            _ => Err(SrsError::Malformed),
        }
    }
}

/// A new random secret (32 octets, hex), for a data directory that has
/// none.
pub fn generate_secret() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "no system randomness for the SRS secret".to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Today, in days since the epoch.
pub fn today() -> u64 {
    let secs = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    secs / 86_400
}

fn day_stamp(day: u64) -> String {
    let d = day % DAY_MODULUS;
    [d >> 5, d & 31]
        .iter()
        .map(|v| char::from(BASE32[*v as usize]))
        .collect()
}

fn parse_day_stamp(tt: &str) -> Option<u64> {
    let value = |c: u8| BASE32.iter().position(|b| *b == c.to_ascii_uppercase());
    match tt.as_bytes() {
        [a, b] => Some((value(*a)? as u64) << 5 | value(*b)? as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 20_000;

    fn srs() -> Srs {
        Srs::new(b"test secret", "Example.TEST")
    }

    #[test]
    fn srs0_round_trips_and_keeps_the_local_part_case() {
        let s = srs();
        let a = s.forward("Bob.Smith@Origin.example", DAY);
        assert!(a.starts_with("SRS0="), "{a}");
        assert!(a.ends_with("=Origin.example=Bob.Smith@example.test"), "{a}");
        let (local, _) = a.rsplit_once('@').unwrap();
        assert_eq!(
            s.reverse(local, DAY + 3).as_deref(),
            Ok("Bob.Smith@Origin.example")
        );
    }

    #[test]
    fn the_hash_is_checked_without_regard_to_case() {
        let s = srs();
        let a = s.forward("bob@origin.example", DAY);
        let (local, _) = a.rsplit_once('@').unwrap();
        assert!(s.reverse(&local.to_ascii_lowercase(), DAY).is_ok());
        assert!(s.reverse(&local.to_ascii_uppercase(), DAY).is_ok());
    }

    #[test]
    fn a_forged_or_altered_address_is_refused() {
        let s = srs();
        assert_eq!(
            s.reverse("SRS0=AAAA=AA=origin.example=bob", DAY),
            Err(SrsError::BadHash)
        );
        let a = s.forward("bob@origin.example", DAY);
        let (local, _) = a.rsplit_once('@').unwrap();
        let altered = local.replace("=bob", "=eve");
        assert_eq!(s.reverse(&altered, DAY), Err(SrsError::BadHash));
        let other = Srs::new(b"another secret", "example.test");
        assert_eq!(other.reverse(local, DAY), Err(SrsError::BadHash));
        for bad in ["SRS0=", "SRS0=abcd=AA=", "SRS1=abcd=x", "bob", "SRS0=a=b=c"] {
            assert!(s.reverse(bad, DAY).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_address_older_than_21_days_has_expired() {
        let s = srs();
        let a = s.forward("bob@origin.example", DAY);
        let (local, _) = a.rsplit_once('@').unwrap();
        assert!(s.reverse(local, DAY + VALID_DAYS).is_ok());
        assert_eq!(
            s.reverse(local, DAY + VALID_DAYS + 1),
            Err(SrsError::Expired)
        );
        // The stamp wraps at 1024 days without breaking.
        let b = s.forward("bob@origin.example", 1023);
        let (local, _) = b.rsplit_once('@').unwrap();
        assert!(s.reverse(local, 1025).is_ok());
    }

    #[test]
    fn an_srs0_address_becomes_srs1_and_srs1_keeps_its_first_forwarder() {
        let first = Srs::new(b"first", "fwd1.example");
        let second = srs();
        let third = Srs::new(b"third", "fwd3.example");
        let a0 = first.forward("bob@origin.example", DAY);
        let a1 = second.forward(&a0, DAY);
        assert!(a1.starts_with("SRS1="), "{a1}");
        assert!(a1.contains("=fwd1.example=="), "{a1}");
        let (l1, _) = a1.rsplit_once('@').unwrap();
        // Back to the first forwarder's SRS0 address, which it decodes.
        assert_eq!(second.reverse(l1, DAY).as_deref(), Ok(a0.as_str()));
        let a2 = third.forward(&a1, DAY);
        assert!(a2.contains("=fwd1.example=="), "{a2}");
        assert!(a2.len() <= a1.len() + 4, "{a1} -> {a2}");
        let (l2, _) = a2.rsplit_once('@').unwrap();
        assert_eq!(third.reverse(l2, DAY).as_deref(), Ok(a0.as_str()));
    }

    #[test]
    fn null_and_unqualified_senders_are_not_rewritten() {
        assert_eq!(srs().forward("", DAY), "");
        assert!(is_srs("srs0=x") && is_srs("SRS1=y") && !is_srs("srs"));
    }
}
