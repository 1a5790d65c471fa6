//! Users and groups of the rootfs: `/etc/passwd` and `/etc/group`, read inside the rootfs
//! (symlinks and `..` resolve within it, never on the host), and the OCI image-spec rules
//! for turning a config's `User` ("name", "uid", "name:group", "uid:gid", …) into ids.

use std::io::Read as _;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::{RunError, User};

#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The rootfs's user and group databases (empty when the files are missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDb {
    users: Vec<PasswdEntry>,
    groups: Vec<GroupEntry>,
}

/// A resolved user and its home directory (for `HOME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub user: User,
    pub home: Option<String>,
}

/// Split `user[:group]`; both parts non-empty.
pub fn parse_user_spec(text: &str) -> Result<(String, Option<String>), RunError> {
    let bad =
        || RunError::BadOption { option: "--user", value: text.to_string(), expected: "USER[:GROUP], names or ids" };
    match text.split_once(':') {
        Some((u, g)) if !u.is_empty() && !g.is_empty() => Ok((u.to_string(), Some(g.to_string()))),
        Some(_) => Err(bad()),
        None if text.is_empty() => Err(bad()),
        None => Ok((text.to_string(), None)),
    }
}

impl UserDb {
    /// Read `/etc/passwd` and `/etc/group` of `rootfs`, resolving paths inside it.
    pub fn read_in_root(rootfs: &Path) -> Result<UserDb, RunError> {
        let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| RunError::Rootfs { path: rootfs.to_path_buf(), source: e.into() })?;
        let read = |name: &str| -> Result<String, RunError> {
            let fd = match rustix::fs::openat2(
                &root,
                name,
                OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => return Ok(String::new()),
                Err(e) => return Err(RunError::os(format!("opening {name} in the rootfs"), e.into())),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| RunError::os(format!("reading {name}"), e.into()))?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
                return Ok(String::new());
            }
            let mut text = String::new();
            std::fs::File::from(fd)
                .take(16 << 20)
                .read_to_string(&mut text)
                .map_err(|e| RunError::os(format!("reading {name} in the rootfs"), e))?;
            Ok(text)
        };
        Ok(UserDb::parse(&read("etc/passwd")?, &read("etc/group")?))
    }

    /// Parse passwd and group file contents; malformed lines are skipped, as libc does.
    pub fn parse(passwd: &str, group: &str) -> UserDb {
        let users = passwd
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() < 7 {
                    return None;
                }
                Some(PasswdEntry {
                    name: f[0].to_string(),
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    home: f[5].to_string(),
                })
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() < 4 {
                    return None;
                }
                Some(GroupEntry {
                    name: f[0].to_string(),
                    gid: f[2].parse().ok()?,
                    members: f[3].split(',').filter(|m| !m.is_empty()).map(str::to_string).collect(),
                })
            })
            .collect();
        UserDb { users, groups }
    }

    /// Resolve `user` and optional `group` (names or numbers) as the OCI image spec says:
    /// a name must exist in passwd; a number need not (then gid 0 unless a group is given);
    /// supplementary groups are those of /etc/group listing the user's name.
    pub fn resolve(&self, user: &str, group: Option<&str>) -> Result<ResolvedUser, RunError> {
        let entry = match user.parse::<u32>() {
            Ok(uid) => self.users.iter().find(|u| u.uid == uid),
            Err(_) => Some(
                self.users
                    .iter()
                    .find(|u| u.name == user)
                    .ok_or_else(|| RunError::UserNotFound { name: user.to_string() })?,
            ),
        };
        let uid = match (user.parse::<u32>(), entry) {
            (Ok(uid), _) => uid,
            (Err(_), Some(e)) => e.uid,
            (Err(_), None) => unreachable!("a user name resolves to an entry or an error"),
        };
        let gid = match group {
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => {
                    self.groups
                        .iter()
                        .find(|e| e.name == g)
                        .ok_or_else(|| RunError::GroupNotFound { name: g.to_string() })?
                        .gid
                }
            },
            None => entry.map_or(0, |e| e.gid),
        };
        let mut additional_gids = Vec::new();
        if group.is_none()
            && let Some(e) = entry
        {
            for g in &self.groups {
                if g.members.contains(&e.name) && g.gid != gid && !additional_gids.contains(&g.gid) {
                    additional_gids.push(g.gid);
                }
            }
        }
        Ok(ResolvedUser {
            user: User { uid, gid, additional_gids },
            home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbroken line\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nwheel:x:10:alice,bob\naudio:x:29:bob\n";

    #[test]
    fn names_and_ids_resolve_as_the_image_spec_says() {
        let db = UserDb::parse(PASSWD, GROUP);
        let a = db.resolve("alice", None).unwrap();
        assert_eq!(a.user, User { uid: 1000, gid: 1000, additional_gids: vec![10] });
        assert_eq!(a.home.as_deref(), Some("/home/alice"));
        assert_eq!(db.resolve("1000", None).unwrap().user.gid, 1000);
        // An id not in passwd is fine, with gid 0.
        assert_eq!(db.resolve("4242", None).unwrap().user, User { uid: 4242, gid: 0, additional_gids: vec![] });
        assert_eq!(
            db.resolve("alice", Some("audio")).unwrap().user,
            User { uid: 1000, gid: 29, additional_gids: vec![] }
        );
        assert_eq!(db.resolve("0", Some("77")).unwrap().user.gid, 77);
        assert!(matches!(db.resolve("mallory", None), Err(RunError::UserNotFound { .. })));
        assert!(matches!(db.resolve("alice", Some("nogroup")), Err(RunError::GroupNotFound { .. })));
    }

    #[test]
    fn user_specs_split() {
        assert_eq!(parse_user_spec("a:b").unwrap(), ("a".to_string(), Some("b".to_string())));
        assert_eq!(parse_user_spec("5").unwrap(), ("5".to_string(), None));
        assert!(parse_user_spec(":5").is_err());
        assert!(parse_user_spec("").is_err());
    }

    #[test]
    fn passwd_is_read_inside_the_rootfs() {
        // /etc is a symlink to an absolute path: it must resolve inside the rootfs.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/passwd"), "bob:x:7:8::/b:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/real", root.join("etc")).unwrap();
        let db = UserDb::read_in_root(root).unwrap();
        assert_eq!(db.resolve("bob", None).unwrap().user.uid, 7);
    }
}
