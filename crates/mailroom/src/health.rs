//! The checks behind `/health` (SPEC 7): is the store's writer running,
//! is there room on the data directory's file system, and is every
//! configured listener still listening.
//!
//! Listeners are checked from the kernel's side: a listening TCP socket
//! of this process on the configured address (`/proc/net/tcp{,6}`, whose
//! inode is one of `/proc/self/fd`). That sees a listener whose task died
//! without the checks knowing how listeners are wired. Where `/proc` is
//! absent the check says so and does not fail.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// `st` of a listening socket in `/proc/net/tcp` (TCP_LISTEN).
const TCP_LISTEN: &str = "0A";

/// Free bytes for an unprivileged writer on the file system of `path`.
pub fn free_bytes(path: &Path) -> Result<u64, String> {
    let s = rustix::fs::statvfs(path).map_err(|e| format!("statvfs {}: {e}", path.display()))?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// The disk check: a problem when less than `min_free` bytes are free.
pub fn disk(path: &Path, min_free: u64) -> (Option<String>, String) {
    match free_bytes(path) {
        Ok(free) if free < min_free => (
            Some(format!(
                "low disk space: {free} bytes free under {}, below admin.min_free_disk = {min_free}",
                path.display()
            )),
            format!("disk: {free} bytes free (minimum {min_free})"),
        ),
        Ok(free) => (
            None,
            format!("disk: {free} bytes free (minimum {min_free})"),
        ),
        Err(e) => (
            Some(format!("cannot check free disk space: {e}")),
            "disk: unknown".to_string(),
        ),
    }
}

/// Addresses this process listens on, or None when `/proc` cannot tell.
pub fn listening() -> Option<HashSet<SocketAddr>> {
    let ours: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .map(str::to_string)
        })
        .collect();
    let mut out = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        out.extend(listening_in(&text, &ours));
    }
    Some(out)
}

/// Parses one `/proc/net/tcp` table: the local addresses of listening
/// sockets whose inode is in `ours`.
fn listening_in(text: &str, ours: &HashSet<String>) -> Vec<SocketAddr> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            if *state != TCP_LISTEN || !ours.contains(*inode) {
                return None;
            }
            parse_proc_addr(local)
        })
        .collect()
}

/// `0100007F:0019` or the 32-digit IPv6 form. The kernel prints each
/// 32-bit word of the address as a native-endian integer, and the port
/// in network order.
fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_addresses_parse_in_native_word_order() {
        let v4 = u32::from_ne_bytes([127, 0, 0, 1]);
        assert_eq!(
            parse_proc_addr(&format!("{v4:08X}:0019")),
            Some("127.0.0.1:25".parse().unwrap())
        );
        let one = u32::from_ne_bytes([0, 0, 0, 1]);
        assert_eq!(
            parse_proc_addr(&format!("000000000000000000000000{one:08X}:03E1")),
            Some("[::1]:993".parse().unwrap())
        );
        assert_eq!(parse_proc_addr("zz:1"), None);
    }

    #[test]
    fn a_bound_listener_of_this_process_is_seen_and_a_closed_one_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(listening().expect("/proc").contains(&addr));
        drop(l);
        assert!(!listening().expect("/proc").contains(&addr));
    }

    #[test]
    fn disk_below_the_minimum_is_a_problem() {
        let dir = std::env::temp_dir();
        assert!(disk(&dir, 0).0.is_none());
        let (problem, check) = disk(&dir, u64::MAX);
        assert!(problem.expect("low").contains("admin.min_free_disk"));
        assert!(check.starts_with("disk: "));
    }
}
