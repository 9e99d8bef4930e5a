//! Client passwords stay off the command line: `--password-file`, `PLASTIC_PASSWORD` and
//! `$PLASTIC_HOME/credentials` (owner-only) log a client in; a password in the URL still works
//! but warns; a credentials file others can read is refused.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::plastic;

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn clients_log_in_without_a_password_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let (code, out, err) = run(plastic()
        .args(["user", "add", "alice", "--role", "viewer", "--users"])
        .arg(&users));
    assert_eq!(code, 0, "{err}");
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    let (_hub, port) = common::hub_with_users(&users, &[]);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let ls = |url: &str| {
        let mut cmd = plastic();
        cmd.args(["ls", "--broker", url])
            .env("PLASTIC_HOME", &home)
            .env_remove("PLASTIC_PASSWORD")
            .env_remove("PLASTIC_PASSWORD_FILE");
        cmd
    };
    let bare = format!("mqtt://127.0.0.1:{port}");
    let with_user = format!("mqtt://alice@127.0.0.1:{port}");

    // No password anywhere: refused by the hub.
    let (code, _, err) = run(&mut ls(&with_user));
    assert_ne!(code, 0, "{err}");

    // --password-file, and PLASTIC_PASSWORD.
    let file = dir.path().join("alice.password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let (code, _, err) = run(ls(&with_user).arg("--password-file").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let (code, _, err) = run(ls(&with_user).env("PLASTIC_PASSWORD", &password));
    assert_eq!(code, 0, "{err}");

    // The credentials file gives user and password for HOST:PORT.
    let credentials = home.join("credentials");
    std::fs::write(
        &credentials,
        format!("[\"127.0.0.1:{port}\"]\nuser = \"alice\"\npassword = \"{password}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, err) = run(&mut ls(&bare));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    // Readable by others: refused, saying what to do.
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run(&mut ls(&bare));
    assert_ne!(code, 0);
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::remove_file(&credentials).unwrap();

    // In the URL: works, with one warning naming the safe ways.
    let in_url = format!("mqtt://alice:{password}@127.0.0.1:{port}");
    let (code, _, err) = run(&mut ls(&in_url));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.matches("warning: the broker URL holds a password")
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("--password-file") && err.contains("PLASTIC_PASSWORD"),
        "{err}"
    );
    assert!(
        !err.contains(&password),
        "the warning shows the password: {err}"
    );
}
