//! `docs/protocol.md` is exact: every worked example decodes to the
//! values it describes and is what the encoders produce, and its tables
//! agree with the code.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sync_core::{
    Codec, Cursor, Dot, ErrorCode, Event, EventId, FeedSpan, Filter, Hlc, NewEvent, NodeId, Page, PushAck, PushResult,
    PushStatus,
};
use sync_transport_http::{PullParams, PushRequest, status_for};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md")
}

/// The fenced block after `<!-- example: NAME -->`.
fn example(doc: &str, name: &str) -> String {
    let marker = format!("<!-- example: {name} -->");
    let start = doc.find(&marker).unwrap_or_else(|| panic!("no {marker}"));
    let rest = &doc[start + marker.len()..];
    let open = rest.find("```").unwrap();
    let body_start = open + rest[open..].find('\n').unwrap() + 1;
    let close = body_start + rest[body_start..].find("\n```").unwrap();
    rest[body_start..close].to_owned()
}

/// Hex bytes of an annotated dump (`#` starts a comment).
fn hex_bytes(dump: &str) -> Vec<u8> {
    dump.lines()
        .flat_map(|line| line.split('#').next().unwrap().split_whitespace())
        .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("not hex: {h:?}")))
        .collect()
}

fn the_event() -> Event {
    let node: NodeId = "5b0e8f3c9a1d4e7f8b2c6d0a1e3f5b7c".parse().unwrap();
    let other: NodeId = "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f".parse().unwrap();
    NewEvent::new("todo.renamed", "todo-42", "buy milk").with_id(the_id()).with_metadata("tenant", "acme").stamp(
        Dot { node, counter: 3 },
        [(node, 3), (other, 2)].into_iter().collect(),
        Hlc { wall_ms: 1_723_000_000_000, logical: 0 },
    )
}

fn the_id() -> EventId {
    "01912d68-a0c0-7a3e-9b1f-2c3d4e5f6a7b".parse().unwrap()
}

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let doc = doc();
    let json = example(&doc, &format!("{name}.json"));
    assert_eq!(&Codec::Json.decode::<T>(json.as_bytes()).unwrap(), value, "{name}.json");
    let documented: serde_json::Value = serde_json::from_str(&json).unwrap();
    let encoded: serde_json::Value = serde_json::from_slice(&Codec::Json.encode(value).unwrap()).unwrap();
    assert_eq!(documented, encoded, "{name}.json");

    let bytes = hex_bytes(&example(&doc, &format!("{name}.postcard")));
    assert_eq!(Codec::Postcard.encode(value).unwrap(), bytes, "{name}.postcard");
    assert_eq!(&Codec::Postcard.decode::<T>(&bytes).unwrap(), value, "{name}.postcard");
}

#[test]
fn push_request_example() {
    check("push-request", &PushRequest { events: vec![the_event()] });
    let compact = Codec::Json.encode(&PushRequest { events: vec![the_event()] }).unwrap();
    assert!(doc().contains(&format!("Content-Length: {}\n", compact.len())));
    let postcard = Codec::Postcard.encode(&PushRequest { events: vec![the_event()] }).unwrap();
    assert!(doc().contains(&format!("The same `PushRequest`, {} bytes", postcard.len())));
}

#[test]
fn push_ack_examples() {
    let store: NodeId = "9f8e7d6c5b4a39281706f5e4d3c2b1a0".parse().unwrap();
    let ack = PushAck {
        results: vec![PushResult { id: the_id(), status: PushStatus::Accepted, code: None, reason: None }],
        span: Some(FeedSpan { after: Cursor::new(store, 16), head: Cursor::new(store, 17) }),
    };
    check("push-ack", &ack);
    let compact = Codec::Json.encode(&ack).unwrap();
    assert!(doc().contains(&format!("content-length: {}\n", compact.len())));
    check(
        "push-ack-rejected",
        &PushAck {
            results: vec![PushResult {
                id: the_id(),
                status: PushStatus::Rejected,
                code: Some(ErrorCode::Forbidden),
                reason: Some("no".into()),
            }],
            span: None,
        },
    );
}

#[test]
fn pull_page_example() {
    let store: NodeId = "9f8e7d6c5b4a39281706f5e4d3c2b1a0".parse().unwrap();
    check("pull-page", &Page { events: vec![the_event()], next: Cursor::new(store, 17), has_more: false });
    let params = PullParams::from_query("after=0&limit=100&kind=todo.renamed&meta.tenant=acme").unwrap();
    assert_eq!(
        params,
        PullParams {
            after: Cursor::START,
            limit: 100,
            filter: Filter::default().kind("todo.renamed").metadata("tenant", "acme"),
        }
    );
}

#[test]
fn small_postcard_claims() {
    let enc = |v: u64| Codec::Postcard.encode(&v).unwrap();
    assert_eq!(enc(0), [0x00]);
    assert_eq!(enc(3), [0x03]);
    assert_eq!(enc(300), [0xac, 0x02]);
    assert_eq!(enc(1_723_000_000_000), [0x80, 0x9c, 0xb6, 0xd6, 0x92, 0x32]);
    assert_eq!(format!("{:#x}", 1_723_000_000_000u64), "0x1912acd8e00");
    assert_eq!(Codec::Postcard.encode(&true).unwrap(), [1]);
    assert_eq!(Codec::Postcard.encode(&Some(7u32)).unwrap(), [1, 7]);
    assert_eq!(Codec::Postcard.encode(&None::<u32>).unwrap(), [0]);
    assert!(Codec::Postcard.decode::<bool>(&[2]).is_err());
    // A u32 varint of six bytes is refused.
    assert!(Codec::Postcard.decode::<u32>(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
}

/// The variant indexes listed in section 8.
#[test]
fn enum_indexes_match() {
    let doc = doc();
    let section = &doc[doc.find("PushStatus:      accepted").unwrap()..];
    let section = &section[..section.find("```").unwrap()];
    let mut listed = BTreeMap::new();
    for pair in section.split([',', '\n']).filter_map(|p| p.split(':').next_back()).filter(|p| p.contains('=')) {
        let (name, index) = pair.split_once('=').unwrap();
        listed.insert(name.trim().to_owned(), index.trim().parse::<u8>().unwrap());
    }
    let statuses = [PushStatus::Accepted, PushStatus::Duplicate, PushStatus::Rejected];
    for status in statuses {
        let name = serde_json::to_value(status).unwrap();
        let index = Codec::Postcard.encode(&status).unwrap();
        assert_eq!([listed[name.as_str().unwrap()]], index[..], "{name}");
    }
    for code in all_codes() {
        let index = Codec::Postcard.encode(&code).unwrap();
        assert_eq!([listed[code.as_str()]], index[..], "{code}");
    }
    assert_eq!(listed.len(), statuses.len() + all_codes().len());
}

/// The error table in section 13 is `status_for`.
#[test]
fn error_table_matches_status_for() {
    let doc = doc();
    let mut rows = 0;
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(code) = all_codes().into_iter().find(|c| cells[1] == format!("`{}`", c.as_str())) else {
            continue;
        };
        let Ok(status) = cells[2].parse::<u16>() else {
            continue;
        };
        assert_eq!(status_for(code).as_u16(), status, "{code}");
        rows += 1;
    }
    assert_eq!(rows, all_codes().len());
}

fn all_codes() -> Vec<ErrorCode> {
    vec![
        ErrorCode::InvalidInput,
        ErrorCode::Malformed,
        ErrorCode::BadCursor,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::NotFound,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
        ErrorCode::Storage,
        ErrorCode::Unsupported,
        ErrorCode::Internal,
    ]
}
