//! `linux.seccomp` → a classic BPF program, compiled by libseccomp in `create` (it
//! allocates) and exported, so the container's init only makes the one `seccomp(2)` call
//! that loads it, right before `execve`.
//!
//! As runc: syscall names this libseccomp does not know are skipped (profiles list the
//! syscalls of every architecture and kernel), a rule whose action is the default action
//! is skipped (libseccomp refuses it), and a rule comparing one argument twice becomes one
//! rule per comparison (libseccomp refuses two comparisons of one argument in a rule).

use std::io::{Read as _, Seek as _};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime as oci;

use super::RuntimeError;
use crate::run::SeccompProgram;

fn failed(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> RuntimeError {
    let what = what.into();
    move |e| RuntimeError::Seccomp { what, source: Box::new(e) }
}

/// The libseccomp action for an OCI action; `errno` is `errnoRet` (EPERM when absent).
fn action(a: oci::LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<ScmpAction, RuntimeError> {
    use oci::LinuxSeccompAction as A;
    Ok(match a {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(libc::EPERM as u32) as i32),
        A::ScmpActTrace => ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32) as u16),
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActNotify => {
            return Err(RuntimeError::unsupported(field, "SCMP_ACT_NOTIFY (seccomp user notification)"));
        }
    })
}

fn arch(a: oci::Arch) -> ScmpArch {
    use oci::Arch as A;
    match a {
        A::ScmpArchNative => ScmpArch::Native,
        A::ScmpArchX86 => ScmpArch::X86,
        A::ScmpArchX86_64 => ScmpArch::X8664,
        A::ScmpArchX32 => ScmpArch::X32,
        A::ScmpArchArm => ScmpArch::Arm,
        A::ScmpArchAarch64 => ScmpArch::Aarch64,
        A::ScmpArchMips => ScmpArch::Mips,
        A::ScmpArchMips64 => ScmpArch::Mips64,
        A::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        A::ScmpArchMipsel => ScmpArch::Mipsel,
        A::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        A::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        A::ScmpArchPpc => ScmpArch::Ppc,
        A::ScmpArchPpc64 => ScmpArch::Ppc64,
        A::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        A::ScmpArchS390 => ScmpArch::S390,
        A::ScmpArchS390x => ScmpArch::S390X,
        A::ScmpArchRiscv64 => ScmpArch::Riscv64,
    }
}

fn compare(arg: &oci::LinuxSeccompArg) -> ScmpArgCompare {
    use oci::LinuxSeccompOperator as O;
    let op = match arg.op() {
        O::ScmpCmpNe => ScmpCompareOp::NotEqual,
        O::ScmpCmpLt => ScmpCompareOp::Less,
        O::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        O::ScmpCmpEq => ScmpCompareOp::Equal,
        O::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        O::ScmpCmpGt => ScmpCompareOp::Greater,
        // The spec's `value` is the mask and `valueTwo` the value to compare with.
        O::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
    };
    let datum = if arg.op() == O::ScmpCmpMaskedEq { arg.value_two().unwrap_or(0) } else { arg.value() };
    ScmpArgCompare::new(arg.index() as u32, op, datum)
}

/// Compile a profile.
pub fn compile(profile: &oci::LinuxSeccomp) -> Result<SeccompProgram, RuntimeError> {
    if profile.listener_path().is_some() {
        return Err(RuntimeError::unsupported("linux.seccomp.listenerPath", "seccomp user notification"));
    }
    let mut flags = 0u32;
    for flag in profile.flags().iter().flatten() {
        flags |= match flag {
            oci::LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG as u32,
            oci::LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32,
            // The init is single-threaded: there is nothing to synchronise.
            oci::LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
        };
    }
    let default = action(profile.default_action(), profile.default_errno_ret(), "linux.seccomp.defaultAction")?;
    let mut ctx = ScmpFilterContext::new(default).map_err(failed("creating a filter"))?;
    for a in profile.architectures().iter().flatten() {
        let a = arch(*a);
        if !ctx.is_arch_present(a).unwrap_or(false) {
            ctx.add_arch(a).map_err(failed(format!("adding architecture {a:?}")))?;
        }
    }
    for (i, rule) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret(), &format!("{field}.action"))?;
        if act == default {
            continue;
        }
        let args = rule.args().clone().unwrap_or_default();
        let comparisons: Vec<ScmpArgCompare> = args.iter().map(compare).collect();
        let repeated = args.iter().enumerate().any(|(j, a)| args[..j].iter().any(|b| b.index() == a.index()));
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                tracing::debug!("seccomp: skipping the syscall {name:?}, unknown to libseccomp");
                continue;
            };
            let add = |ctx: &mut ScmpFilterContext, cmps: &[ScmpArgCompare]| {
                if cmps.is_empty() {
                    ctx.add_rule(act, syscall).map(|_| ())
                } else {
                    ctx.add_rule_conditional(act, syscall, cmps).map(|_| ())
                }
            };
            let result = if repeated {
                comparisons.iter().try_for_each(|c| add(&mut ctx, std::slice::from_ref(c)))
            } else {
                add(&mut ctx, &comparisons)
            };
            result.map_err(failed(format!("{field}: {name}")))?;
        }
    }
    Ok(SeccompProgram { instructions: export(&ctx)?, flags })
}

/// The filter as BPF instructions (libseccomp 2.5 exports to a file descriptor only).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, RuntimeError> {
    let io = |e: std::io::Error| RuntimeError::Seccomp { what: "exporting the filter".into(), source: Box::new(e) };
    let fd = rustix::fs::memfd_create("berth-seccomp", rustix::fs::MemfdFlags::CLOEXEC).map_err(|e| io(e.into()))?;
    ctx.export_bpf(&fd).map_err(failed("exporting the filter"))?;
    let mut file = std::fs::File::from(fd);
    file.rewind().map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let size = size_of::<libc::sock_filter>();
    if bytes.is_empty() || bytes.len() % size != 0 || bytes.len() / size > u16::MAX as usize {
        return Err(io(std::io::Error::other(format!("libseccomp exported {} bytes", bytes.len()))));
    }
    Ok(bytes
        .chunks_exact(size)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: serde_json::Value) -> oci::LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_profile_compiles_to_bpf() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "no_such_syscall_anywhere"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 41, "op": "SCMP_CMP_EQ"}]},
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        }));
        let program = compile(&p).unwrap();
        assert!(program.instructions.len() > 10);
        assert_eq!(program.flags, 0);
        // The last instruction of a filter is a return.
        assert_eq!(program.instructions.last().unwrap().code & 0x07, 0x06);
    }

    #[test]
    fn notify_is_refused_by_field() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        match compile(&p) {
            Err(RuntimeError::Unsupported { field, .. }) => assert_eq!(field, "linux.seccomp.syscalls[0].action"),
            other => panic!("{other:?}"),
        }
    }
}
