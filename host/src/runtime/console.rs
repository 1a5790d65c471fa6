//! The console socket: with `process.terminal`, `create` connects to the unix socket the
//! caller listens on (`--console-socket`) and sends the pty master there as runc does, in
//! one `sendmsg` with SCM_RIGHTS and the slave's path as the message.

use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::RuntimeError;

/// Send `master` (and `name`, the slave's path) over the socket at `socket`.
pub fn send_terminal(socket: &Path, master: &OwnedFd, name: &str) -> Result<(), RuntimeError> {
    let err = |e: io::Error| RuntimeError::Console { path: socket.to_path_buf(), source: e };
    let stream = UnixStream::connect(socket).map_err(err)?;
    send_fd(&stream, master, name.as_bytes()).map_err(err)
}

fn send_fd(stream: &UnixStream, fd: &OwnedFd, message: &[u8]) -> io::Result<()> {
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) } as usize;
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: message.as_ptr().cast_mut().cast(), iov_len: message.len() };
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: the control buffer holds one cmsghdr with room for one int (CMSG_SPACE);
    // CMSG_FIRSTHDR and CMSG_DATA point inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
    }
    loop {
        // SAFETY: `msg` and everything it points to live across the call.
        let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::os::fd::FromRawFd as _;

    #[test]
    fn a_descriptor_crosses_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (mut read, write) = std::io::pipe().unwrap();
        let write: OwnedFd = write.into();
        let sender = std::thread::spawn(move || send_terminal(&path, &write, "/dev/pts/7"));
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let mut control = [0u64; 8];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: plain data, then a recvmsg into buffers that outlive the call.
        let (n, fd) = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control);
            let n = libc::recvmsg(conn.as_raw_fd(), &mut msg, 0);
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (n, std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()))
        };
        sender.join().unwrap().unwrap();
        assert_eq!(&buf[..n as usize], b"/dev/pts/7");
        // SAFETY: the descriptor just received is ours.
        let mut received = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        received.write_all(b"through").unwrap();
        drop(received);
        let mut text = String::new();
        read.read_to_string(&mut text).unwrap();
        assert_eq!(text, "through");
    }
}
