//! From an image's runtime config plus command-line overrides to the [`Process`] to run,
//! following the OCI image spec's "conversion to OCI runtime configuration".

use super::users::UserDb;
use super::{Process, RunError};
use crate::store::RuntimeConfig;

/// `PATH` when the image sets none (the image spec leaves it to the runtime; this is docker's).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the command line overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--entrypoint`/`--exec`: replaces the entrypoint and clears the image's cmd.
    pub entrypoint: Option<Vec<String>>,
    /// Arguments after `--`: replace the cmd.
    pub cmd: Vec<String>,
    /// `KEY=value`, or `KEY` to take the value from berth's environment; later wins.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// `user[:group]`.
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub terminal: bool,
    pub stdin: bool,
}

/// `KEY=value` lines of an env file (`#` comments and blank lines skipped).
pub fn parse_env_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim_start().is_empty() && !l.trim_start().starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// Set `entry` in `env`, replacing an entry with the same key.
fn set_env(env: &mut Vec<String>, entry: String) {
    let key = env_key(&entry).to_string();
    if let Some(slot) = env.iter_mut().find(|e| env_key(e) == key) {
        *slot = entry;
    } else {
        env.push(entry);
    }
}

/// Build the process: args = entrypoint + cmd (an `--entrypoint` clears the image's cmd,
/// arguments after `--` replace it); env = image env, then overrides; user names resolve
/// in the rootfs's `/etc/passwd` and `/etc/group` (`users`).
pub fn process_from_image(
    config: &RuntimeConfig,
    overrides: &Overrides,
    users: &UserDb,
    hostname: &str,
) -> Result<Process, RunError> {
    let entrypoint = overrides.entrypoint.clone().unwrap_or_else(|| config.entrypoint.clone());
    let cmd = if !overrides.cmd.is_empty() {
        overrides.cmd.clone()
    } else if overrides.entrypoint.is_some() {
        Vec::new()
    } else {
        config.cmd.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() || args[0].is_empty() {
        return Err(RunError::NoCommand);
    }

    let user_text = overrides.user.clone().or_else(|| match (&config.user, &config.group) {
        (Some(u), Some(g)) if !u.is_empty() && !u.contains(':') => Some(format!("{u}:{g}")),
        (Some(u), _) if !u.is_empty() => Some(u.clone()),
        _ => None,
    });
    let resolved = match user_text {
        Some(text) => {
            let (user, group) = super::users::parse_user_spec(&text)?;
            users.resolve(&user, group.as_deref())?
        }
        None => users.resolve("0", None)?,
    };

    let mut env = vec![DEFAULT_PATH.to_string()];
    for e in &config.env {
        set_env(&mut env, e.clone());
    }
    set_env(&mut env, format!("HOSTNAME={hostname}"));
    if !env.iter().any(|e| env_key(e) == "HOME") {
        env.push(format!("HOME={}", resolved.home.clone().unwrap_or_else(|| "/".to_string())));
    }
    if overrides.terminal && !env.iter().any(|e| env_key(e) == "TERM") {
        env.push("TERM=xterm".to_string());
    }
    for e in &overrides.env {
        if e.contains('=') {
            set_env(&mut env, e.clone());
        } else if let Ok(value) = std::env::var(e) {
            set_env(&mut env, format!("{e}={value}"));
        }
    }

    let cwd = overrides.workdir.clone().or_else(|| config.working_dir.clone()).filter(|w| !w.is_empty());
    let cwd = cwd.unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(RunError::RelativeWorkdir(cwd));
    }

    Ok(Process {
        args,
        env,
        cwd,
        user: resolved.user,
        terminal: overrides.terminal,
        stdin: overrides.stdin,
        no_new_privileges: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> RuntimeConfig {
        RuntimeConfig {
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["--serve".into()],
            env: vec!["PATH=/app/bin".into(), "MODE=prod".into()],
            working_dir: Some("/srv".into()),
            user: Some("alice".into()),
            ..RuntimeConfig::default()
        }
    }

    fn db() -> UserDb {
        UserDb::parse("alice:x:1000:100::/home/alice:/bin/sh\n", "users:x:100:\n")
    }

    #[test]
    fn entrypoint_and_cmd_follow_the_image_spec() {
        let p = process_from_image(&image(), &Overrides::default(), &db(), "h").unwrap();
        assert_eq!(p.args, ["/bin/app", "--serve"]);
        let ov = Overrides { cmd: vec!["--check".into()], ..Overrides::default() };
        assert_eq!(process_from_image(&image(), &ov, &db(), "h").unwrap().args, ["/bin/app", "--check"]);
        let ov = Overrides { entrypoint: Some(vec!["/bin/sh".into()]), ..Overrides::default() };
        assert_eq!(process_from_image(&image(), &ov, &db(), "h").unwrap().args, ["/bin/sh"]);
        let ov = Overrides {
            entrypoint: Some(vec!["/bin/sh".into()]),
            cmd: vec!["-c".into(), "x".into()],
            ..Overrides::default()
        };
        assert_eq!(process_from_image(&image(), &ov, &db(), "h").unwrap().args, ["/bin/sh", "-c", "x"]);
        let empty = RuntimeConfig::default();
        assert!(matches!(process_from_image(&empty, &Overrides::default(), &db(), "h"), Err(RunError::NoCommand)));
    }

    #[test]
    fn env_merges_with_overrides_last() {
        let ov = Overrides { env: vec!["MODE=dev".into(), "EXTRA=1".into()], ..Overrides::default() };
        let p = process_from_image(&image(), &ov, &db(), "box").unwrap();
        assert_eq!(p.env, ["PATH=/app/bin", "MODE=dev", "HOSTNAME=box", "HOME=/home/alice", "EXTRA=1"]);
        let p = process_from_image(
            &RuntimeConfig { cmd: vec!["x".into()], ..Default::default() },
            &Overrides::default(),
            &db(),
            "h",
        )
        .unwrap();
        assert_eq!(p.env[0], DEFAULT_PATH);
    }

    #[test]
    fn user_and_workdir() {
        let p = process_from_image(&image(), &Overrides::default(), &db(), "h").unwrap();
        assert_eq!((p.user.uid, p.user.gid, p.cwd.as_str()), (1000, 100, "/srv"));
        let ov = Overrides { user: Some("0:0".into()), workdir: Some("/tmp".into()), ..Overrides::default() };
        let p = process_from_image(&image(), &ov, &db(), "h").unwrap();
        assert_eq!((p.user.uid, p.cwd.as_str()), (0, "/tmp"));
        let ov = Overrides { workdir: Some("tmp".into()), ..Overrides::default() };
        assert!(matches!(process_from_image(&image(), &ov, &db(), "h"), Err(RunError::RelativeWorkdir(_))));
    }

    #[test]
    fn env_files_skip_comments() {
        assert_eq!(parse_env_file("# c\nA=1\n\n  \nB=two words\n"), ["A=1", "B=two words"]);
    }
}
