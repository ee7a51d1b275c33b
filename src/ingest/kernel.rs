//! What the kernel knows about our sockets: drops when a receive buffer was
//! full (the `drops` column of /proc/net/udp and udp6), found by socket inode.

use std::os::fd::AsRawFd;

/// The inode of a socket, as /proc/net/* lists it.
pub fn socket_inode(fd: &impl AsRawFd) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(|m| m.ino())
}

/// Datagrams the kernel dropped on these sockets since they were opened.
pub fn udp_drops(inodes: &[u64]) -> u64 {
    if inodes.is_empty() {
        return 0;
    }
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|table| drops_in(&table, inodes))
        .sum()
}

/// Sums the last column (`drops`) of the rows whose inode (10th column) is ours.
fn drops_in(table: &str, inodes: &[u64]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let inode: u64 = cols.get(9)?.parse().ok()?;
            inodes
                .contains(&inode)
                .then(|| cols.last()?.parse::<u64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_drops_of_our_sockets_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:1414 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17
  124: 0100007F:1415 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0000000000000000 5
";
        assert_eq!(drops_in(table, &[4242]), 17);
        assert_eq!(drops_in(table, &[4242, 999]), 22);
        assert_eq!(drops_in(table, &[1]), 0);
    }

    #[test]
    fn finds_a_real_socket_in_proc() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(&s).unwrap();
        let table = std::fs::read_to_string("/proc/net/udp").unwrap();
        assert!(
            table.contains(&format!(" {inode} ")),
            "inode {inode} not in /proc/net/udp"
        );
        assert_eq!(udp_drops(&[inode]), 0);
    }
}
