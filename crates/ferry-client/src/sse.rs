//! A small parser of server-sent events over a byte stream.
//!
//! The framing (WHATWG HTML, "server-sent events"): UTF-8 lines ended by `\n`, `\r\n`
//! or `\r`; `field: value` lines (one optional space after the colon); lines starting
//! with `:` are comments (keep-alives); an empty line dispatches the event gathered so
//! far. Several `data` lines join with `\n`.

use bytes::{Buf, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field; `message` when the server sent none.
    pub event: String,
    /// The `data` lines, joined with `\n`.
    pub data: String,
    /// The `id` field, if any.
    pub id: Option<String>,
}

/// Feeds bytes in, takes events out.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    /// A `\r` ended the last line; a `\n` right after it belongs to it.
    after_cr: bool,
}

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if the bytes so far hold one.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if self.after_cr && self.buf.first() == Some(&b'\n') {
                self.buf.advance(1);
            }
            self.after_cr = false;
            let end = self.buf.iter().position(|&b| b == b'\n' || b == b'\r')?;
            self.after_cr = self.buf[end] == b'\r';
            let line = self.buf.split_to(end);
            self.buf.advance(1);
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if let Some(event) = self.dispatch() {
                    return Some(event);
                }
                continue;
            }
            self.field(&line);
        }
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match name {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let id = self.id.clone();
        let data = self.data.take()?;
        Some(SseEvent {
            event: event.unwrap_or_else(|| "message".to_owned()),
            data,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for part in input {
            p.push(part);
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn parses_events_split_across_reads_with_any_line_ending() {
        let events = all(&[
            b": keep-alive\n\nevent: lines\nid: 7\nda",
            b"ta: {\"a\":1}\r",
            b"\n\r\ndata: one\ndata:two\n\n",
        ]);
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: "lines".into(),
                    data: "{\"a\":1}".into(),
                    id: Some("7".into())
                },
                SseEvent {
                    event: "message".into(),
                    data: "one\ntwo".into(),
                    id: Some("7".into())
                },
            ]
        );
    }

    #[test]
    fn holds_back_an_event_until_its_blank_line_arrives() {
        let mut p = SseParser::new();
        p.push(b"event: end\ndata: {}\n");
        assert_eq!(p.next_event(), None);
        p.push(b"\n");
        assert_eq!(p.next_event().map(|e| e.event), Some("end".to_owned()));
    }
}
