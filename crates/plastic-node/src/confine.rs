//! `plastic node --confine`: the node process restricted with Linux Landlock.
//!
//! Without it, Python on a node is the node's OS user (`open()` reads anything the user can,
//! `posix.system` runs programs). Confined, the process may:
//!
//! - read, write, create and remove anything under its root (but execute nothing there);
//! - read the few files it needs after start ([`READ_ONLY`]: name resolution for the broker,
//!   the local time zone, shared libraries name resolution may load, `/proc` figures `info`
//!   reports) and read/write `/dev/null`;
//! - execute nothing at all: no new program can start (a `fork` still works, but the copy is
//!   confined just the same and cannot `exec` either);
//! - connect over TCP only to the broker's port (from Landlock ABI 4) and bind no TCP port;
//! - not signal processes outside the sandbox nor reach abstract Unix sockets made outside it
//!   (from ABI 6).
//!
//! Everything else on the file system is refused with `EACCES` (`PermissionError` in Python).
//! Landlock does not restrict `stat`: names and sizes outside stay visible, not contents.
//!
//! The restriction holds for the calling thread and every thread or process it starts later,
//! so [`apply`] must run while the process has one thread (it checks), after the node has read
//! its configuration, key and password and built its TLS configuration (the CA file is not
//! readable afterwards), and before Python starts (the interpreter thread starts on the first
//! Python request).

use std::path::{Path, PathBuf};

/// Files and directories the node reads after start, when they exist.
pub const READ_ONLY: &[(&str, &str)] = &[
    (
        "/etc/resolv.conf",
        "resolving the broker's name (again on every reconnect)",
    ),
    ("/etc/hosts", "resolving the broker's name"),
    ("/etc/nsswitch.conf", "resolving the broker's name"),
    ("/etc/host.conf", "resolving the broker's name"),
    ("/etc/gai.conf", "ordering the broker's addresses"),
    ("/lib", "resolver modules (NSS) loaded on demand"),
    ("/lib64", "resolver modules (NSS) loaded on demand"),
    ("/usr/lib", "resolver modules (NSS) loaded on demand"),
    ("/usr/lib64", "resolver modules (NSS) loaded on demand"),
    ("/etc/localtime", "Python's local time"),
    ("/usr/share/zoneinfo", "Python's local time"),
    ("/dev/urandom", "randomness"),
    ("/dev/random", "randomness"),
    ("/dev/zero", "zeroes"),
    ("/proc/meminfo", "`info`: free memory"),
    ("/proc/self/status", "`info`: the node's peak memory"),
];

/// Where the system's CA certificates live (as rustls-native-certs looks for them); the
/// per-certificate links in `/etc/ssl/certs` point into `/usr/share/ca-certificates`.
pub const SYSTEM_TLS_ROOTS: &[&str] = &[
    "/etc/ssl/certs",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/certs",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
    "/etc/ca-certificates",
];

/// Read and written: nothing can be learnt or kept there.
pub const READ_WRITE_DEVICES: &[&str] = &["/dev/null"];

/// The lowest Landlock ABI `--confine` accepts: 3 (Linux 6.2) is the first that can refuse
/// `truncate(2)` outside the root; with less, "cannot write outside its root" would not hold.
pub const MIN_ABI: i32 = 3;

/// What the sandbox allows: built by [`Plan::for_node`], applied by [`apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Read, write, create, remove (never execute).
    pub read_write: Vec<PathBuf>,
    /// Read only (files) or read and list (directories).
    pub read_only: Vec<PathBuf>,
    /// Devices opened for reading and writing.
    pub devices: Vec<PathBuf>,
    /// TCP ports the node may connect to.
    pub connect_ports: Vec<u16>,
}

impl Plan {
    /// The node's plan: its root read-write, [`READ_ONLY`] read-only, connections to the
    /// brokers' ports only (one per broker of a cluster's list).
    pub fn for_node(root: &Path, broker_ports: &[u16]) -> Plan {
        let mut connect_ports = broker_ports.to_vec();
        connect_ports.sort_unstable();
        connect_ports.dedup();
        Plan {
            read_write: vec![root.to_path_buf()],
            read_only: READ_ONLY.iter().map(|(p, _)| PathBuf::from(p)).collect(),
            devices: READ_WRITE_DEVICES.iter().map(PathBuf::from).collect(),
            connect_ports,
        }
    }

    /// Also reads the TLS roots: `ca_file`, or the system's certificate stores. A node that
    /// restarts after a `reset` reads them again; certificates are public (private keys, as
    /// in `/etc/ssl/private`, stay out).
    pub fn allow_tls_roots(&mut self, ca_file: Option<&Path>) {
        match ca_file {
            Some(ca) => self.read_only.push(ca.to_path_buf()),
            None => {
                self.read_only
                    .extend(SYSTEM_TLS_ROOTS.iter().map(PathBuf::from));
                for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
                    if let Some(p) = std::env::var_os(var) {
                        self.read_only.push(PathBuf::from(p));
                    }
                }
            }
        }
    }

    /// A path the confined process could read that it must not: a credential under the root
    /// or under a read-only path. Returns the first such path and where it is allowed.
    pub fn exposes<'a>(&self, secret: &'a Path) -> Option<(&'a Path, PathBuf)> {
        self.read_write
            .iter()
            .chain(&self.read_only)
            .chain(&self.devices)
            .find(|allowed| secret.starts_with(allowed))
            .map(|allowed| (secret, allowed.clone()))
    }
}

/// What the kernel said when asked for its Landlock ABI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Version(i32),
    /// `ENOSYS`: not built into the kernel.
    NotImplemented,
    /// `EOPNOTSUPP`: built in, not enabled at boot.
    NotEnabled,
    /// Not Linux.
    NotLinux,
}

/// Whether `--confine` can hold on this kernel; if not, the sentence that says why.
pub fn check(probe: Probe) -> Result<i32, String> {
    match probe {
        Probe::Version(abi) if abi >= MIN_ABI => Ok(abi),
        Probe::Version(abi) => Err(format!(
            "--confine needs Landlock ABI {MIN_ABI} (Linux 6.2) or newer to keep writes inside the \
             node's root, and this kernel has ABI {abi}; run without --confine or on a newer kernel"
        )),
        Probe::NotImplemented => Err(
            "--confine needs Linux Landlock, and this kernel has none (built without \
             CONFIG_SECURITY_LANDLOCK, or older than Linux 5.13); run without --confine or on \
             a kernel with Landlock"
                .into(),
        ),
        Probe::NotEnabled => Err(
            "--confine needs Linux Landlock, which this kernel has but did not enable at boot \
             (add `landlock` to the kernel's `lsm=` parameter); run without --confine or enable it"
                .into(),
        ),
        Probe::NotLinux => Err("--confine needs Linux Landlock; this system is not Linux".into()),
    }
}

/// Asks the running kernel for its Landlock ABI.
pub fn probe() -> Probe {
    #[cfg(target_os = "linux")]
    {
        // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
        const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        if v >= 0 {
            return Probe::Version(v as i32);
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EOPNOTSUPP) => Probe::NotEnabled,
            _ => Probe::NotImplemented,
        }
    }
    #[cfg(not(target_os = "linux"))]
    Probe::NotLinux
}

/// What [`apply`] enforced, for the node's start-up line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confined {
    pub abi: i32,
    /// TCP restricted to the broker's port (ABI 4+).
    pub network: bool,
    /// Signals and abstract Unix sockets scoped to the sandbox (ABI 6+).
    pub scoped: bool,
}

impl Confined {
    /// What a kernel with Landlock ABI `abi` lets `--confine` enforce.
    pub fn for_abi(abi: i32) -> Confined {
        Confined {
            abi,
            network: abi >= 4,
            scoped: abi >= 6,
        }
    }
}

impl std::fmt::Display for Confined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "confined by Landlock ABI {}: files under the root, no programs{}{}",
            self.abi,
            if self.network {
                ", TCP to the broker's port only"
            } else {
                ", TCP unrestricted (needs ABI 4)"
            },
            if self.scoped { ", no signals out" } else { "" }
        )
    }
}

/// The threads this process runs now.
pub fn thread_count() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Restricts this process for good. Refuses (with the reason) on a kernel without a usable
/// Landlock, or when other threads already run (they would stay unrestricted).
pub fn apply(plan: &Plan) -> Result<Confined, String> {
    let abi = check(probe())?;
    let threads =
        thread_count().map_err(|e| format!("cannot count this process's threads: {e}"))?;
    if threads != 1 {
        return Err(format!(
            "cannot confine: {threads} threads already run, and Landlock would restrict only the \
             calling one"
        ));
    }
    imp::apply(plan, abi)
}

#[cfg(target_os = "linux")]
mod imp {
    use landlock::{
        Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
        PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
    };

    use super::{Confined, Plan};

    /// The ABI this code was written and tested against; newer kernels get these rights only.
    const TESTED: ABI = ABI::V7;

    pub fn apply(plan: &Plan, abi: i32) -> Result<Confined, String> {
        let fail = |e: &dyn std::fmt::Display| format!("cannot confine the node: {e}");
        let all = AccessFs::from_all(TESTED);
        let no_exec = all & !AccessFs::Execute;
        let read: BitFlags<AccessFs> = AccessFs::ReadFile | AccessFs::ReadDir;
        let device: BitFlags<AccessFs> = AccessFs::ReadFile | AccessFs::WriteFile;
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(all)
            .map_err(|e| fail(&e))?;
        let Confined {
            network, scoped, ..
        } = Confined::for_abi(abi);
        if network {
            ruleset = ruleset
                .handle_access(AccessNet::from_all(TESTED))
                .map_err(|e| fail(&e))?;
        }
        if scoped {
            ruleset = ruleset
                .scope(Scope::from_all(TESTED))
                .map_err(|e| fail(&e))?;
        }
        let mut created = ruleset.create().map_err(|e| fail(&e))?;
        let rules = (plan.read_write.iter().map(|p| (p, no_exec, true)))
            .chain(plan.read_only.iter().map(|p| (p, read, false)))
            .chain(plan.devices.iter().map(|p| (p, device, false)));
        for (path, access, must_exist) in rules {
            match PathFd::new(path) {
                Ok(fd) => {
                    created = created
                        .add_rule(PathBeneath::new(fd, access))
                        .map_err(|e| fail(&e))?
                }
                // Not on this system: nothing to allow.
                Err(_) if !must_exist => {}
                Err(e) => return Err(fail(&e)),
            }
        }
        if network {
            for port in &plan.connect_ports {
                created = created
                    .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                    .map_err(|e| fail(&e))?;
            }
        }
        let status = created.restrict_self().map_err(|e| fail(&e))?;
        if status.ruleset == RulesetStatus::NotEnforced {
            return Err(fail(&"the kernel enforced none of the rules"));
        }
        Ok(Confined {
            abi,
            network,
            scoped,
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{Confined, Plan};

    pub fn apply(_plan: &Plan, _abi: i32) -> Result<Confined, String> {
        Err(super::check(super::Probe::NotLinux).unwrap_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_kernels_that_cannot_keep_writes_inside_the_root() {
        assert_eq!(check(Probe::Version(7)), Ok(7));
        assert_eq!(check(Probe::Version(3)), Ok(3));
        let e = check(Probe::Version(2)).unwrap_err();
        assert!(e.contains("ABI 3") && e.contains("has ABI 2"), "{e}");
        let e = check(Probe::NotImplemented).unwrap_err();
        assert!(e.contains("has none"), "{e}");
        let e = check(Probe::NotEnabled).unwrap_err();
        assert!(e.contains("lsm="), "{e}");
        assert!(check(Probe::NotLinux).unwrap_err().contains("not Linux"));
    }

    /// docs/security.md: on ABI 3 the TCP restriction is missing and the start-up line says
    /// so; signals are scoped from ABI 6.
    #[test]
    fn the_start_up_line_says_what_the_abi_allowed() {
        assert_eq!(
            Confined::for_abi(3).to_string(),
            "confined by Landlock ABI 3: files under the root, no programs, TCP unrestricted (needs ABI 4)"
        );
        assert_eq!(
            Confined::for_abi(5).to_string(),
            "confined by Landlock ABI 5: files under the root, no programs, TCP to the broker's port only"
        );
        assert_eq!(
            Confined::for_abi(7).to_string(),
            "confined by Landlock ABI 7: files under the root, no programs, TCP to the broker's port only, no signals out"
        );
    }

    #[test]
    fn the_plan_allows_the_root_and_no_credentials() {
        let plan = Plan::for_node(Path::new("/srv/node"), &[8883, 1883, 8883]);
        assert_eq!(plan.read_write, vec![PathBuf::from("/srv/node")]);
        assert_eq!(plan.connect_ports, vec![1883, 8883]);
        for never in ["/etc/passwd", "/etc/shadow", "/home", "/proc/self/environ"] {
            assert!(
                plan.exposes(Path::new(never)).is_none(),
                "{never} must not be readable"
            );
        }
        assert!(!plan.read_only.iter().any(|p| p == Path::new("/etc")));
        assert!(!plan
            .read_only
            .iter()
            .any(|p| p.starts_with("/proc/self/mem")));
        let (_, under) = plan.exposes(Path::new("/srv/node/node.key")).unwrap();
        assert_eq!(under, PathBuf::from("/srv/node"));
        assert!(plan.exposes(Path::new("/srv/node-2/key")).is_none());
    }
}
