//! The node's broker password, kept out of what Python on the node can read.
//!
//! Linux shows a process's original environment block and command line in
//! `/proc/self/environ` and `/proc/self/cmdline`, to the process itself (so to Python on the
//! node) and the command line to every local user (`ps`). `unsetenv` does not change either.
//! So when the password arrives in one of them (`PLASTIC_PASSWORD`, or a `user:pass@` broker URL
//! in `PLASTIC_BROKER` or `--broker`), `plastic node` starts itself again, at once, with the
//! password removed from both and handed over through an inherited pipe instead; the new
//! process reads it and closes the pipe. A `--password-file` or the credentials file is read
//! and left alone (with `--confine`, Python cannot open either).

use std::ffi::{OsStr, OsString};
use std::io::Read;

use anyhow::{Context, Result};

/// The password a restart by [`hide`] handed over, in the restarted process.
pub fn handed_over() -> Result<Option<String>> {
    match std::env::var_os(PASSWORD_FD) {
        Some(fd) => {
            // Only this thread runs yet.
            std::env::remove_var(PASSWORD_FD);
            read_handed_over(&fd).map(Some)
        }
        None => Ok(None),
    }
}

/// Whenever the password is in this process's environment or on its command line
/// (`PLASTIC_PASSWORD`, a `user:password@` URL in `PLASTIC_BROKER` or `--broker`), replaces this
/// process by one where it is not, `password` handed over through a pipe; does not return then.
pub fn hide(password: &str) -> Result<()> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let env: Env = std::env::vars_os().collect();
    match scrub(&args, &env) {
        Some((args, env)) => Err(restart_without(args, env, password, None)),
        None => Ok(()),
    }
}

/// Starts the node program again in `cwd` (after a `reset`), the password handed over again as
/// [`hide`] did: it is in neither the arguments nor the environment any more. Returns only on
/// failure.
pub fn restart_handing_over(cwd: &std::path::Path, password: &str) -> anyhow::Error {
    let args: Vec<OsString> = std::env::args_os().collect();
    let env: Env = std::env::vars_os().collect();
    let (args, env) = scrub(&args, &env).unwrap_or((args, env));
    restart_without(args, env, password, Some(cwd))
}

/// A process's environment, in order.
type Env = Vec<(OsString, OsString)>;

/// The internal variable naming the pipe the password waits in.
const PASSWORD_FD: &str = "PLASTIC_NODE_PASSWORD_FD";

fn read_handed_over(fd: &OsStr) -> Result<String> {
    use std::os::fd::FromRawFd;
    let fd: i32 = fd
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|fd| *fd > 2)
        .context("PLASTIC_NODE_PASSWORD_FD is not a file descriptor")?;
    // SAFETY: the descriptor was left open for this process by `restart_without`, and nothing
    // else in this process knows or uses it; the File closes it.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut password = String::new();
    pipe.read_to_string(&mut password)
        .context("cannot read the password handed over at restart")?;
    Ok(password)
}

/// Replaces this process with one whose arguments and environment are `args` and `env`, the
/// password on an inherited pipe. Returns only on failure.
fn restart_without(
    args: Vec<OsString>,
    env: Env,
    password: &str,
    cwd: Option<&std::path::Path>,
) -> anyhow::Error {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (reader, mut writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(e) => return anyhow::anyhow!("cannot hand the password over: {e}"),
    };
    // A pipe holds 64 KiB before a write blocks; a password is far shorter.
    if let Err(e) = writer.write_all(password.as_bytes()) {
        return anyhow::anyhow!("cannot hand the password over: {e}");
    }
    drop(writer);
    let fd = reader.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns; clears close-on-exec only.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return anyhow::anyhow!(
            "cannot hand the password over: {}",
            std::io::Error::last_os_error()
        );
    }
    let exe = if cfg!(target_os = "linux") {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => return anyhow::anyhow!("cannot find this program to restart it: {e}"),
        }
    };
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(&args[1..])
        .env_clear()
        .envs(env)
        .env(PASSWORD_FD, fd.to_string());
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let e = cmd.exec();
    anyhow::anyhow!("cannot restart without the password in the environment: {e}")
}

/// Where the password is in a broker URL's `user:password@` (`mqtt://u:p@h:1883` or bare
/// `u:p@h`): from after the user info's first `:` to its last `@`.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let at = start + url[start..authority_end].rfind('@')?;
    let colon = start + url[start..at].find(':')?;
    Some((colon + 1, at))
}

/// `mqtt://user:pass@host` -> `mqtt://user@host`, for each URL of a comma-separated list (a
/// comma in a password is written `%2C`); anything else unchanged.
fn without_password(list: &str) -> String {
    list.split(',')
        .map(|url| match password_span(url) {
            Some((from, to)) => format!("{}{}", &url[..from - 1], &url[to..]),
            None => url.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The arguments and environment without the password, or `None` if there is none in them.
fn scrub(args: &[OsString], env: &[(OsString, OsString)]) -> Option<(Vec<OsString>, Env)> {
    let mut changed = false;
    let mut out_args = Vec::with_capacity(args.len());
    let mut next_is_broker = false;
    for (i, arg) in args.iter().enumerate() {
        let text = arg.to_str();
        let replaced = match text {
            Some(t) if i > 0 && next_is_broker => Some(without_password(t)),
            Some(t) if i > 0 && t.starts_with("--broker=") => Some(without_password(t)),
            _ => None,
        };
        next_is_broker = i > 0 && text == Some("--broker");
        match replaced {
            Some(new) if Some(new.as_str()) != text => {
                changed = true;
                out_args.push(new.into());
            }
            _ => out_args.push(arg.clone()),
        }
    }
    let mut out_env = Vec::with_capacity(env.len());
    for (k, v) in env {
        if k == "PLASTIC_PASSWORD" {
            changed = true;
            continue;
        }
        if k == "PLASTIC_BROKER" {
            if let Some(t) = v.to_str() {
                let new = without_password(t);
                if new != t {
                    changed = true;
                    out_env.push((k.clone(), new.into()));
                    continue;
                }
            }
        }
        out_env.push((k.clone(), v.clone()));
    }
    changed.then_some((out_args, out_env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn urls_lose_their_password_only() {
        assert_eq!(
            without_password("mqtts://lab-1:s3cr%40t@hub:8883"),
            "mqtts://lab-1@hub:8883"
        );
        assert_eq!(without_password("lab-1:pw@hub"), "lab-1@hub");
        assert_eq!(without_password("mqtt://lab-1@hub"), "mqtt://lab-1@hub");
        assert_eq!(without_password("mqtt://hub:1883"), "mqtt://hub:1883");
        // A password holding `@` and `:` (the last `@` ends the user info).
        assert_eq!(without_password("mqtt://u:a:b@c@hub"), "mqtt://u@hub");
    }

    #[test]
    fn scrubbing_removes_the_password_from_arguments_and_environment() {
        let args = os(&[
            "plastic",
            "node",
            "--broker",
            "mqtt://n:pw@h:1",
            "--name",
            "n",
        ]);
        let env = vec![
            ("PLASTIC_PASSWORD".into(), "pw".into()),
            ("PLASTIC_BROKER".into(), "mqtt://n:pw@h:1".into()),
            ("HOME".into(), "/root".into()),
        ];
        let (a, e) = scrub(&args, &env).unwrap();
        assert_eq!(
            a,
            os(&["plastic", "node", "--broker", "mqtt://n@h:1", "--name", "n"])
        );
        assert_eq!(
            e,
            vec![
                ("PLASTIC_BROKER".into(), "mqtt://n@h:1".into()),
                ("HOME".into(), "/root".into())
            ]
        );
        let (a, _) = scrub(&os(&["plastic", "--broker=mqtt://n:pw@h", "node"]), &[]).unwrap();
        assert_eq!(a, os(&["plastic", "--broker=mqtt://n@h", "node"]));
        // A cluster's list: every entry's password goes, bare entries too.
        let (a, e) = scrub(
            &os(&["plastic", "--broker=mqtt://n:pw@h1,mqtt://n:pw@h2", "node"]),
            &[("PLASTIC_BROKER".into(), "n:pw@h1,mqtt://h2".into())],
        )
        .unwrap();
        assert_eq!(
            a,
            os(&["plastic", "--broker=mqtt://n@h1,mqtt://n@h2", "node"])
        );
        assert_eq!(e, vec![("PLASTIC_BROKER".into(), "n@h1,mqtt://h2".into())]);
        // Nothing to hide: no restart.
        assert!(scrub(
            &os(&[
                "plastic",
                "node",
                "--broker",
                "mqtt://n@h",
                "--name",
                "x:y@z"
            ]),
            &[("HOME".into(), "/".into())]
        )
        .is_none());
    }
}
