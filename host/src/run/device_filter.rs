//! Device rules on cgroup v2, which has no `devices.allow`: the kernel asks an eBPF
//! program (`BPF_PROG_TYPE_CGROUP_DEVICE`) attached to the cgroup. This builds one from
//! the rules with v1's semantics, loads it and attaches it (what runc's devicefilter and
//! crun's ebpf.c do).
//!
//! v1 semantics: a rule for every device (`a *:* rwm`) sets the default and drops earlier
//! rules; any other rule is an exception, and the last matching one wins. The program
//! checks the exceptions from the last to the first and returns the first match, else
//! the default.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::Path;

use super::DeviceRule;

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_MEM_W: u8 = 0x61;
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

/// `bpf_cgroup_dev_ctx.access_type`: type in the low 16 bits, access in the high ones.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: dst | (src << 4), off, imm }
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |bits, c| {
        bits | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

fn covers_everything(rule: &DeviceRule) -> bool {
    rule.kind == 'a' && rule.major.is_none() && rule.minor.is_none() && access_bits(&rule.access) == 7
}

/// The program for `rules`.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut default_allow = true;
    let mut exceptions: Vec<&DeviceRule> = Vec::new();
    for rule in rules {
        if covers_everything(rule) {
            default_allow = rule.allow;
            exceptions.clear();
        } else {
            exceptions.push(rule);
        }
    }
    let mut prog = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),        // r2 = ctx->access_type
        insn(ALU64_AND_K, 2, 0, 0, 0xffff), // r2 &= 0xffff: the device type
        insn(LDX_MEM_W, 3, 1, 0, 0),        // r3 = ctx->access_type
        insn(ALU64_RSH_K, 3, 0, 0, 16),     // r3 >>= 16: the access asked for
        insn(LDX_MEM_W, 4, 1, 4, 0),        // r4 = ctx->major
        insn(LDX_MEM_W, 5, 1, 8, 0),        // r5 = ctx->minor
    ];
    for rule in exceptions.iter().rev() {
        let mut checks: Vec<Vec<Insn>> = Vec::new();
        match rule.kind {
            'b' => checks.push(vec![insn(JMP_JNE_K, 2, 0, 0, DEV_BLOCK)]),
            'c' => checks.push(vec![insn(JMP_JNE_K, 2, 0, 0, DEV_CHAR)]),
            _ => {}
        }
        let allowed = access_bits(&rule.access);
        if allowed != 7 {
            // Asked-for access outside the rule's: not this rule.
            checks.push(vec![
                insn(ALU64_MOV_X, 1, 3, 0, 0),
                insn(ALU64_AND_K, 1, 0, 0, !allowed & 7),
                insn(JMP_JNE_K, 1, 0, 0, 0),
            ]);
        }
        if let Some(major) = rule.major {
            checks.push(vec![insn(JMP_JNE_K, 4, 0, 0, major as i32)]);
        }
        if let Some(minor) = rule.minor {
            checks.push(vec![insn(JMP_JNE_K, 5, 0, 0, minor as i32)]);
        }
        let mut block: Vec<Insn> = checks.into_iter().flatten().collect();
        block.push(insn(ALU64_MOV_K, 0, 0, 0, rule.allow as i32));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        // Each failed check jumps past the rest of this block.
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        prog.extend(block);
    }
    prog.push(insn(ALU64_MOV_K, 0, 0, 0, default_allow as i32));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The leading fields of `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Load the program for `rules` and attach it to the cgroup v2 directory `dir`.
pub fn attach(dir: &Path, rules: &[DeviceRule]) -> io::Result<()> {
    let prog = program(rules);
    let license = c"Apache";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"berth_device");
    let load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_CGROUP_DEVICE,
    };
    // SAFETY: bpf(BPF_PROG_LOAD) with an attribute of its stated size whose pointers
    // (instructions, license) outlive the call.
    let fd =
        unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &load as *const ProgLoadAttr, size_of::<ProgLoadAttr>()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cgroup = std::fs::File::open(dir)?;
    let attach = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: bpf(BPF_PROG_ATTACH) with an attribute of its stated size. The attachment
    // keeps the program alive once our descriptor closes.
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_PROG_ATTACH, &attach as *const ProgAttachAttr, size_of::<ProgAttachAttr>())
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> DeviceRule {
        DeviceRule { allow, kind, major, minor, access: access.into() }
    }

    /// Run the program on (type, access, major, minor) as the kernel would.
    fn decide(prog: &[Insn], typ: i32, access: i32, major: i64, minor: i64) -> bool {
        let mut r = [0i64; 11];
        let ctx = [(access << 16 | typ) as i64, major, minor];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[i.off as usize / 4],
                ALU64_AND_K => r[dst] &= i.imm as i64,
                ALU64_RSH_K => r[dst] >>= i.imm,
                ALU64_MOV_K => r[dst] = i.imm as i64,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K if r[dst] != i.imm as i64 => pc += i.off as usize,
                JMP_JNE_K => {}
                JMP_EXIT => return r[0] == 1,
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn rules_keep_v1_semantics() {
        let rules = [
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(true, 'c', Some(136), None, "rw"),
            rule(true, 'b', None, None, "m"),
        ];
        let p = program(&rules);
        assert!(decide(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3)); // /dev/null
        assert!(!decide(&p, DEV_CHAR, ACC_READ, 1, 5)); // /dev/zero: not listed
        assert!(decide(&p, DEV_CHAR, ACC_WRITE, 136, 7)); // any pts
        assert!(!decide(&p, DEV_CHAR, ACC_MKNOD, 136, 7)); // ... but not mknod
        assert!(decide(&p, DEV_BLOCK, ACC_MKNOD, 8, 0));
        assert!(!decide(&p, DEV_BLOCK, ACC_READ, 8, 0));
        // No rules: everything allowed, as in a new v1 cgroup.
        assert!(decide(&program(&[]), DEV_BLOCK, ACC_READ, 8, 0));
        // The last matching rule wins.
        let later = [rule(true, 'c', Some(1), None, "rwm"), rule(false, 'c', Some(1), Some(3), "w")];
        let p = program(&later);
        assert!(!decide(&p, DEV_CHAR, ACC_WRITE, 1, 3));
        assert!(decide(&p, DEV_CHAR, ACC_READ, 1, 3));
    }
}
