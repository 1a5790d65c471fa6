//! Load for a registry, `berth serve` and the CNCF registry alike (bench/serve.sh): a
//! plain HTTP/1.1 client over std sockets with 1 MiB reads, so that the client costs
//! little next to the server it measures.
//!
//! ```text
//! serve_load blob  ADDR NAME DIGEST RUNS          one connection, RUNS GETs of one blob,
//!                                                 spliced to /dev/null (the client copies nothing)
//! serve_load streams ADDR NAME DIGEST STREAMS     STREAMS connections GET it at once (spliced)
//! serve_load pulls ADDR NAME TAG CLIENTS ROUNDS   CLIENTS threads, each pulling ROUNDS times
//! ```
//! A pull is what a client does: the manifest, then its config and every layer, over
//! one keep-alive connection. Prints one JSON object.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

struct Conn {
    reader: BufReader<TcpStream>,
    addr: String,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Conn { reader: BufReader::with_capacity(1 << 16, stream), addr: addr.to_string(), buf: vec![0; 1 << 20] })
    }

    /// GET `path`; the body is kept when `keep`, else counted and dropped: read into a
    /// buffer, or with `discard_in_kernel` spliced to /dev/null without reaching user space
    /// (what the server can send, not what a client can copy).
    fn get(&mut self, path: &str, keep: bool) -> std::io::Result<(u64, Vec<u8>)> {
        self.get_with(path, keep, false)
    }

    fn get_with(&mut self, path: &str, keep: bool, discard_in_kernel: bool) -> std::io::Result<(u64, Vec<u8>)> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: {ACCEPT}\r\n\r\n", self.addr);
        self.reader.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut length = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<u64>().ok();
            }
        }
        let length = length.ok_or_else(|| std::io::Error::other(format!("{path}: no Content-Length")))?;
        let mut kept = Vec::new();
        let mut left = length;
        if discard_in_kernel && !keep {
            // What the header reads buffered already, then the rest socket -> pipe -> /dev/null.
            let buffered = (self.reader.buffer().len() as u64).min(left);
            self.reader.consume(buffered as usize);
            left -= buffered;
            let (pipe_r, pipe_w) = rustix::pipe::pipe()?;
            // A bigger pipe moves more per splice (64 KiB by default).
            let _ = rustix::pipe::fcntl_setpipe_size(&pipe_w, 1 << 20);
            let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
            let flags = rustix::pipe::SpliceFlags::MOVE;
            while left > 0 {
                let want = left.min(1 << 20) as usize;
                let n = rustix::pipe::splice(self.reader.get_ref(), None, &pipe_w, None, want, flags)?;
                if n == 0 {
                    return Err(std::io::Error::other(format!("{path}: body cut at {} of {length}", length - left)));
                }
                let mut moved = 0;
                while moved < n {
                    moved += rustix::pipe::splice(&pipe_r, None, &null, None, n - moved, flags)?;
                }
                left -= n as u64;
            }
        }
        while left > 0 {
            let want = self.buf.len().min(left as usize);
            let n = self.reader.read(&mut self.buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::other(format!("{path}: body cut at {} of {length}", length - left)));
            }
            if keep {
                kept.extend_from_slice(&self.buf[..n]);
            }
            left -= n as u64;
        }
        if status != 200 {
            return Err(std::io::Error::other(format!("{path}: HTTP {status}")));
        }
        Ok((length, kept))
    }
}

/// One pull; returns the bytes received.
fn pull(addr: &str, name: &str, tag: &str) -> std::io::Result<u64> {
    let mut conn = Conn::open(addr)?;
    let (mut total, manifest) = conn.get(&format!("/v2/{name}/manifests/{tag}"), true)?;
    let m: serde_json::Value = serde_json::from_slice(&manifest).map_err(std::io::Error::other)?;
    let mut digests = vec![m["config"]["digest"].as_str().unwrap_or_default().to_string()];
    for l in m["layers"].as_array().into_iter().flatten() {
        digests.push(l["digest"].as_str().unwrap_or_default().to_string());
    }
    for d in digests {
        total += conn.get(&format!("/v2/{name}/blobs/{d}"), false)?.0;
    }
    Ok(total)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let usage = "usage: serve_load blob ADDR NAME DIGEST RUNS | streams ADDR NAME DIGEST STREAMS | pulls ADDR NAME TAG CLIENTS ROUNDS";
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["blob", addr, name, digest, runs] => {
            let mut conn = Conn::open(addr).expect("connect");
            let mut rates = Vec::new();
            let mut size = 0;
            for _ in 0..runs.parse::<usize>().expect(usage) {
                let start = Instant::now();
                size = conn.get_with(&format!("/v2/{name}/blobs/{digest}"), false, true).expect("GET the blob").0;
                rates.push(size as f64 / start.elapsed().as_secs_f64() / 1e6);
            }
            println!("{}", serde_json::json!({ "bytes": size, "mb_s": rates }));
        }
        ["streams", addr, name, digest, streams] => {
            let start = Instant::now();
            let threads: Vec<_> = (0..streams.parse::<usize>().expect(usage))
                .map(|_| {
                    let (addr, path) = (addr.to_string(), format!("/v2/{name}/blobs/{digest}"));
                    std::thread::spawn(move || Conn::open(&addr)?.get_with(&path, false, true).map(|(n, _)| n))
                })
                .collect();
            let bytes: u64 =
                threads.into_iter().map(|t| t.join().expect("a stream thread").expect("GET the blob")).sum();
            println!(
                "{}",
                serde_json::json!({ "bytes": bytes, "mb_s": bytes as f64 / start.elapsed().as_secs_f64() / 1e6 })
            );
        }
        ["pulls", addr, name, tag, clients, rounds] => {
            let (clients, rounds): (usize, usize) = (clients.parse().expect(usage), rounds.parse().expect(usage));
            let start = Instant::now();
            let threads: Vec<_> = (0..clients)
                .map(|_| {
                    let (addr, name, tag) = (addr.to_string(), name.to_string(), tag.to_string());
                    std::thread::spawn(move || {
                        (0..rounds)
                            .map(|_| {
                                let t = Instant::now();
                                pull(&addr, &name, &tag).map(|bytes| (t.elapsed().as_secs_f64() * 1000.0, bytes))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let results: Vec<_> = threads.into_iter().flat_map(|t| t.join().expect("a client thread")).collect();
            let wall = start.elapsed().as_secs_f64();
            let errors: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().map(|e| e.to_string())).collect();
            let mut ms: Vec<f64> = results.iter().filter_map(|r| r.as_ref().ok().map(|(ms, _)| *ms)).collect();
            let bytes: u64 = results.iter().filter_map(|r| r.as_ref().ok().map(|(_, b)| *b)).sum();
            ms.sort_by(f64::total_cmp);
            println!(
                "{}",
                serde_json::json!({
                    "pulls": ms.len(),
                    "errors": errors.len(),
                    "first_error": errors.first(),
                    "p50_ms": percentile(&ms, 50.0),
                    "p99_ms": percentile(&ms, 99.0),
                    "max_ms": ms.last().copied().unwrap_or(0.0),
                    "mb_s": bytes as f64 / wall / 1e6,
                })
            );
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
