//! The open-files limit. Linux starts processes with a soft `RLIMIT_NOFILE` of 1,024 while the
//! hard limit is usually far higher; a hub holds 3 descriptors per connection (the public
//! socket and both ends of the gate's link to rmqtt: docs/scaling.md) and `plastic sim` one per
//! node, so both raise the soft limit to the hard one at start, as servers do.

/// Above this, a raise helps no hub on one machine, and a soft limit in the billions (some
/// containers' hard limit) slows programs that walk every descriptor (children inherit it).
const CAP: u64 = 1 << 20;

/// Raises the soft open-files limit to the hard limit (at most [`CAP`]); returns the soft limit
/// in force after.
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
        let target = limit.rlim_max.min(CAP);
        if limit.rlim_cur < target {
            let raised = libc::rlimit {
                rlim_cur: target,
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
