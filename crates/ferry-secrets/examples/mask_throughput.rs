//! Measures masking throughput (not part of the test suite; no timed assertions).
//!
//! Measured 2026-11 on the shared 2-core dev VM, release build, 64 KiB chunks of log
//! text: one secret 3.7–5.8 GB/s (a plain copy: 7–12 GB/s); 3 secrets ~3.5 GB/s;
//! 10 secrets ~1.8 GB/s; 40 secrets (automaton fallback) ~370 MB/s. Through a real pipe,
//! `cat log | mask --filter S > /dev/null` took 0.107 s for 200 MB against 0.098 s for
//! `cat log | cat > /dev/null` — the masker is not the bottleneck.
//!
//! In memory — masks 200 MB of log-like text in 64 KiB chunks, next to a plain copy:
//!
//! ```text
//! cargo run --release -p ferry-secrets --example mask_throughput
//! ```
//!
//! With `--secrets N`, masks N distinct secrets at once (more than 64 derived patterns
//! switch from the SIMD searcher to the automaton). With `--dense`, the secret is on
//! every 48-byte line instead (the `bench ci` log step: ~4 million occurrences).
//!
//! As a filter, to compare a real pipe against `> /dev/null`:
//!
//! ```text
//! cargo run --release -p ferry-secrets --example mask_throughput -- --filter SECRET < log > /dev/null
//! ```

use std::io::{self, Read as _, Write as _};
use std::time::Instant;

use ferry_secrets::Masker;

const SECRET: &str = "ghp_Xk29fLq81ZzPm0aBcDeF";
const TOTAL: usize = 200 * 1000 * 1000;
const CHUNK: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, secret] = args.as_slice()
        && flag == "--filter"
    {
        return filter(secret);
    }
    let dense = args.iter().any(|a| a == "--dense");
    let text = if dense {
        format!("log line with the secret {SECRET} in it\n").repeat(TOTAL / 57)
    } else {
        let line =
            "2026-11-23T19:40:41Z [step 3] Compiling ferry-engine v0.1.0 (/work/main/crates) ok\n";
        let mut text = line.repeat(TOTAL / line.len());
        // One real occurrence every ~1 MB, so the match path is exercised too.
        let mut at = 0;
        while at + SECRET.len() < text.len() {
            text.replace_range(at..at + SECRET.len(), SECRET);
            at += 1_000_003;
        }
        text
    };
    let count = match args.as_slice() {
        [flag, n, ..] if flag == "--secrets" => n.parse().unwrap_or(1),
        _ => 1,
    };
    let mut secrets = vec![SECRET.to_owned()];
    secrets.extend((1..count).map(|i| format!("tok_{i:03}_q{}Zr/+9w", i * 7919)));
    let masker = Masker::new(&secrets);
    println!("{masker:?}");
    let mut out = Vec::with_capacity(2 * CHUNK);
    for (name, mask) in [
        ("copy", false),
        ("mask", true),
        ("copy", false),
        ("mask", true),
    ] {
        let mut stream = masker.stream();
        let mut bytes = 0usize;
        let start = Instant::now();
        for chunk in text.as_bytes().chunks(CHUNK) {
            out.clear();
            if mask {
                stream.push(chunk, &mut out);
            } else {
                out.extend_from_slice(chunk);
            }
            bytes += out.len();
        }
        stream.finish(&mut out);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name}: {:.0} MB in {secs:.3} s = {:.0} MB/s",
            bytes as f64 / 1e6,
            text.len() as f64 / 1e6 / secs
        );
    }
    Ok(())
}

fn filter(secret: &str) -> io::Result<()> {
    let masker = Masker::new([secret]);
    let mut stream = masker.stream();
    let (mut stdin, mut stdout) = (io::stdin().lock(), io::stdout().lock());
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(2 * CHUNK);
    loop {
        let n = stdin.read(&mut buf)?;
        out.clear();
        if n == 0 {
            stream.finish(&mut out);
            return stdout.write_all(&out);
        }
        stream.push(&buf[..n], &mut out);
        stdout.write_all(&out)?;
    }
}
