use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ferry_secrets::Masker;

const SECRET: &str = "hunter2-Pa55word";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Feeds `chunks` through a stream masker and returns everything it emitted.
fn stream(masker: &Masker, chunks: &[&[u8]]) -> Vec<u8> {
    let mut s = masker.stream();
    let mut out = Vec::new();
    for chunk in chunks {
        s.push(chunk, &mut out);
    }
    s.finish(&mut out);
    out
}

#[test]
fn masks_a_plain_occurrence() {
    let m = Masker::new([SECRET]);
    assert_eq!(
        m.mask_str("login with hunter2-Pa55word now\n"),
        "login with *** now\n"
    );
    assert_eq!(m.mask_str("hunter2-Pa55wordhunter2-Pa55word"), "******");
}

#[test]
fn masks_an_occurrence_split_at_every_point_across_two_writes() {
    let m = Masker::new([SECRET]);
    let text = format!("token={SECRET};done");
    for split in 0..=text.len() {
        let (a, b) = text.as_bytes().split_at(split);
        let out = stream(&m, &[a, b]);
        assert_eq!(out, b"token=***;done", "split at {split}");
    }
}

#[test]
fn masks_an_occurrence_split_across_three_writes() {
    let m = Masker::new([SECRET]);
    let text = format!("a {SECRET} b");
    let t = text.as_bytes();
    for i in 0..=t.len() {
        for j in i..=t.len() {
            let out = stream(&m, &[&t[..i], &t[i..j], &t[j..]]);
            assert_eq!(out, b"a *** b", "splits at {i} and {j}");
        }
    }
}

#[test]
fn masks_a_value_written_one_byte_at_a_time() {
    let m = Masker::new([SECRET]);
    let text = format!("x{SECRET}y{SECRET}");
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
    assert_eq!(stream(&m, &chunks), b"x***y***");
}

#[test]
fn emits_text_that_cannot_start_a_secret_immediately() {
    let m = Masker::new([SECRET]);
    let mut s = m.stream();
    let mut out = Vec::new();
    s.push(b"build finished\n", &mut out);
    assert_eq!(out, b"build finished\n");
    assert_eq!(s.pending(), 0);
    s.push(b"next: hunter2-Pa", &mut out);
    assert_eq!(out, b"build finished\nnext: ");
    assert_eq!(s.pending(), "hunter2-Pa".len());
    s.push(b"55word!", &mut out);
    s.finish(&mut out);
    assert_eq!(out, b"build finished\nnext: ***!");
}

#[test]
fn holds_a_prefix_that_turns_out_not_to_be_a_secret_and_then_emits_it() {
    let m = Masker::new([SECRET]);
    let mut s = m.stream();
    let mut out = Vec::new();
    s.push(b"say hunter", &mut out);
    assert_eq!(out, b"say ");
    s.push(b" hello\n", &mut out);
    assert_eq!(out, b"say hunter hello\n");
    s.finish(&mut out);
    assert_eq!(out, b"say hunter hello\n");
}

const PEM: &str = "-----BEGIN KEY-----\r\nMIIBOgIBAAJBAKj34GkxFhD9\r\n}\r\nZ2h0IHNlY3JldCBsaW5l\r\n-----END KEY-----\r\n";

#[test]
fn masks_each_line_of_a_multi_line_value() {
    let m = Masker::new([PEM]);
    // The whole value at once is one region.
    assert_eq!(m.mask_str(&format!("key: {PEM}.")), "key: ***.");
    // Re-indented with different line endings: each line on its own.
    let printed = "  MIIBOgIBAAJBAKj34GkxFhD9\n  }\n  Z2h0IHNlY3JldCBsaW5l\n";
    assert_eq!(m.mask_str(printed), "  ***\n  }\n  ***\n");
}

#[test]
fn masks_lines_of_a_multi_line_value_arriving_in_separate_writes() {
    let m = Masker::new([PEM]);
    let out = stream(
        &m,
        &[
            b"line: MIIBOgIBAAJB",
            b"AKj34GkxFhD9\n",
            b"line: Z2h0IHNlY3JldCBsaW5l",
            b"\n",
        ],
    );
    assert_eq!(out, b"line: ***\nline: ***\n");
}

#[test]
fn masks_base64_forms_at_offsets_0_1_and_2() {
    let m = Masker::new([SECRET]);
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        for prefix in [&b""[..], b"x", b"xx", b"xxx", b"user:"] {
            for suffix in [&b""[..], b"y", b"yy", b"yyy"] {
                let mut blob = prefix.to_vec();
                blob.extend_from_slice(SECRET.as_bytes());
                blob.extend_from_slice(suffix);
                let encoded = engine.encode(&blob);
                let out = m.mask_str(&format!("Authorization: Basic {encoded}\n"));
                assert!(out.contains("***"), "{encoded} not masked: {out}");
                // No stable inner piece of the secret's encoding survives.
                let inner = STANDARD_NO_PAD.encode(SECRET);
                assert!(!out.contains(&inner[..inner.len() - 1]), "{out}");
                // At most one character on each side of the value's bits is left.
                assert!(
                    out.len() <= "Authorization: Basic ***\n".len() + 2 + 2 * 3 + 4,
                    "{out}"
                );
            }
        }
    }
}

#[test]
fn masks_the_inner_base64_of_a_secret_inside_a_larger_blob() {
    let m = Masker::new([SECRET]);
    for k in 0..3 {
        let mut blob = vec![b'x'; k];
        blob.extend_from_slice(SECRET.as_bytes());
        blob.extend_from_slice(b"yy");
        let encoded = STANDARD.encode(&blob);
        let out = m.mask_str(&encoded);
        // The characters determined only by the secret's bits at this offset.
        let alone = STANDARD_NO_PAD.encode([&vec![0u8; k][..], SECRET.as_bytes()].concat());
        let first = (8 * k).div_ceil(6);
        let last = 8 * (k + SECRET.len()) / 6;
        let stable = &alone[first..last];
        assert!(encoded.contains(stable));
        assert!(!out.contains(stable), "offset {k}: {encoded} -> {out}");
        assert!(out.contains("***"));
    }
}

#[test]
fn masks_url_encoded_forms() {
    let secret = "p@ss word/with:odd&chars";
    let m = Masker::new([secret]);
    for encoded in [
        "p%40ss%20word%2Fwith%3Aodd%26chars",
        "p%40ss+word%2Fwith%3Aodd%26chars",
        "p%40ss%20word%2fwith%3aodd%26chars",
        "p%40ss+word/with%3Aodd%26chars",
    ] {
        assert_eq!(
            m.mask_str(&format!("GET /login?pw={encoded}&x=1")),
            "GET /login?pw=***&x=1",
            "{encoded}"
        );
    }
}

#[test]
fn merges_two_overlapping_secrets_into_one_mask() {
    let m = Masker::new(["abcdef", "defghi"]);
    assert_eq!(m.mask_str("x abcdefghi y"), "x *** y");
    assert_eq!(m.mask_str("x defghi abcdef y"), "x *** *** y");
    // One secret inside another.
    let m = Masker::new(["s3cret", "my-s3cret-value"]);
    assert_eq!(m.mask_str("[my-s3cret-value] [s3cret]"), "[***] [***]");
    // The same, split at every point.
    let m = Masker::new(["abcdef", "defghi"]);
    let t = b"x abcdefghi y";
    for split in 0..=t.len() {
        let out = stream(&m, &[&t[..split], &t[split..]]);
        assert_eq!(out, b"x *** y", "split at {split}");
    }
}

#[test]
fn leaves_ordinary_text_alone() {
    let m = Masker::new([SECRET, "ghp_Xk29fLq81ZzPm0aBcD", "s3cr3t value with spaces"]);
    let text = "Compiling ferry v0.1.0 (/work/main)\n\
                test result: ok. 42 passed; 0 failed\n\
                GET /api/v1/runs?page=2&per_page=50 HTTP/1.1\n\
                aGVsbG8gd29ybGQ= is base64 for hello world\n\
                password: ******** hunter Pa55 word\n";
    assert_eq!(m.mask_str(text), text);
}

#[test]
fn does_not_mask_values_too_short_to_matter() {
    let m = Masker::new(["", "a", "42", " \n"]);
    assert!(m.is_empty());
    assert_eq!(m.mask_str("a 42 banana"), "a 42 banana");
    let m = Masker::new(["xyz"]);
    assert_eq!(m.mask_str("wxyz"), "w***");
}

#[test]
fn passes_invalid_utf8_through_unharmed() {
    let m = Masker::new([SECRET]);
    let mut input = vec![0xff, 0xfe, b'a', 0xc3];
    input.extend_from_slice(SECRET.as_bytes());
    input.extend_from_slice(&[0x80, 0xed, 0xa0, 0x80, b'\n']);
    let out = stream(&m, &[&input[..3], &input[3..10], &input[10..]]);
    assert_eq!(
        out,
        [
            &[0xff, 0xfe, b'a', 0xc3][..],
            b"***",
            &[0x80, 0xed, 0xa0, 0x80, b'\n']
        ]
        .concat()
    );
    let plain = [0xff, 0x00, 0xc0, 0xaf, b'x'];
    assert_eq!(stream(&m, &[&plain]), plain);
}

#[test]
fn masks_binary_secret_values() {
    let secret = [0x00, 0xff, 0x10, 0x80, 0x7f];
    let m = Masker::new([secret]);
    let input = [&b"<"[..], &secret, b">"].concat();
    assert_eq!(stream(&m, &[&input]), b"<***>");
}

/// A tiny deterministic generator, so the test needs no extra crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

#[test]
fn streaming_output_equals_whole_text_output_for_any_chunking() {
    let secrets = [
        "abcabd",
        "bcab",
        "xyzzy-1",
        "yzzy-1-2",
        "line one\nline two",
    ];
    let m = Masker::new(secrets);
    let pieces: Vec<&[u8]> = vec![
        b"abc", b"ab", b"d", b"bca", b"xyzz", b"y-1", b"-2", b" ", b"\n", b"line ", b"one", b"two",
        b"q", b"abcab", b"\xff",
    ];
    let mut rng = Lcg(7);
    for _ in 0..1000 {
        let mut text = Vec::new();
        for _ in 0..rng.next(80) {
            text.extend_from_slice(pieces[rng.next(pieces.len())]);
        }
        let whole = m.mask_bytes(&text);
        let mut chunks = Vec::new();
        let mut rest = &text[..];
        while !rest.is_empty() {
            let max = if rng.next(2) == 0 { 9 } else { 90 };
            let (a, b) = rest.split_at(1 + rng.next(rest.len().min(max)));
            chunks.push(a);
            rest = b;
        }
        assert_eq!(
            stream(&m, &chunks),
            whole,
            "text {:?}",
            String::from_utf8_lossy(&text)
        );
    }
}

#[test]
fn masks_every_occurrence_in_a_large_stream_of_64_kib_chunks() {
    // Not timed: checks the bulk path is correct; see the `mask_throughput` example for speed.
    let m = Masker::new([SECRET]);
    let line = format!("[step 3] uploading artifact chunk with token {SECRET} ok\n");
    let text = line.repeat(20_000);
    let mut s = m.stream();
    let mut out = Vec::with_capacity(text.len());
    for chunk in text.as_bytes().chunks(64 * 1024) {
        s.push(chunk, &mut out);
    }
    s.finish(&mut out);
    let expected = "[step 3] uploading artifact chunk with token *** ok\n".repeat(20_000);
    assert_eq!(out, expected.as_bytes());
    assert!(!contains(&out, SECRET.as_bytes()));
}

#[test]
fn debug_output_never_shows_secret_values() {
    let m = Masker::new([SECRET]);
    let mut s = m.stream();
    let mut out = Vec::new();
    s.push(b"hunter2-Pa55", &mut out);
    let shown = format!("{m:?} {s:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn masks_many_secrets_at_once_split_anywhere() {
    // 12 secrets use several SIMD searchers; 60 use the automaton.
    for count in [12, 60] {
        let secrets: Vec<String> = (0..count)
            .map(|i| format!("k{i:02}-S3cret/+{}", i * 31))
            .collect();
        let m = Masker::new(&secrets);
        let mut text = String::from("start ");
        for s in secrets.iter().rev() {
            text.push_str(&format!("[{s}] [{}] ", STANDARD.encode(s)));
        }
        let whole = m.mask_bytes(text.as_bytes());
        let expected = format!("start {}", "[***] [***] ".repeat(count));
        assert_eq!(String::from_utf8_lossy(&whole), expected, "{count} secrets");
        let t = text.as_bytes();
        for split in (0..t.len()).step_by(7) {
            assert_eq!(
                stream(&m, &[&t[..split], &t[split..]]),
                whole,
                "split at {split}"
            );
        }
    }
}

#[test]
fn maskers_can_be_shared_and_sent_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Masker>();
    send_sync::<ferry_secrets::StreamMasker>();
    send_sync::<ferry_secrets::SecretStore>();
    let m = Masker::new([SECRET]);
    let handle = std::thread::spawn({
        let m = m.clone();
        move || m.mask_str(&format!("{SECRET}!"))
    });
    assert_eq!(handle.join().unwrap(), "***!");
}

#[test]
fn masks_a_secret_on_every_line_in_reads_of_any_size() {
    // The bulk path (one value, no encoded form in the text): every occurrence,
    // including those split across two reads and a read boundary inside a `***`.
    let m = Masker::new([SECRET]);
    let text = format!("line with {SECRET} in it\n").repeat(5_000);
    let expected = "line with *** in it\n".repeat(5_000);
    for read in [1, 7, 16, 17, 4096, 65_536, 1 << 20] {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(read).collect();
        assert_eq!(
            String::from_utf8(stream(&m, &chunks)).unwrap(),
            expected,
            "reads of {read} bytes"
        );
    }
    // An encoded form among the plain ones sends the read down the general path.
    let mixed = format!("{SECRET} {} {SECRET}\n", STANDARD.encode(SECRET));
    assert_eq!(stream(&m, &[mixed.as_bytes()]), b"*** *** ***\n");
}
