//! The open-files limit. Linux starts processes with a soft `RLIMIT_NOFILE` of 1,024 while the
//! hard limit is usually far higher; a hub holds 3 descriptors per connection (the public
//! socket and both ends of the gate's link to rmqtt: docs/scaling.md) and `plastic sim` one per
//! node, so both raise the soft limit to the hard one at start, as servers do.

/// Raises the soft open-files limit to the hard limit; returns the soft limit in force after.
pub fn raise() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

/// Descriptors an embedded hub needs for `connections` MQTT connections, with room for its
/// listeners, history, web side and the rest of the process.
pub fn hub_needs(connections: usize) -> u64 {
    3 * connections as u64 + 512
}
