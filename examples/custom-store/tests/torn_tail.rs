//! A crash mid-write leaves half a line at the end of the file: the open
//! cuts it off and keeps everything before it. Damage elsewhere is an error.

use std::fs::OpenOptions;
use std::io::Write;

use custom_store::FileStore;
use sync_core::{Cursor, ErrorCode, EventStore, Filter, NewEvent};

async fn ids(store: &FileStore) -> Vec<sync_core::EventId> {
    let page = store.load(&Cursor::START, 1000, &Filter::default(), None).await.unwrap();
    page.events.iter().map(|e| e.id).collect()
}

fn append_bytes(path: &std::path::Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

#[tokio::test]
async fn a_torn_last_line_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    let store = FileStore::open(&path).await.unwrap();
    store.append(vec![NewEvent::new("k", "a", "1"), NewEvent::new("k", "a", "2")]).await.unwrap();
    let before = ids(&store).await;
    let node = store.node_id();
    drop(store);
    let good_len = std::fs::metadata(&path).unwrap().len();
    append_bytes(&path, br#"{"type":"batch","source":null,"events":[{"id":"#);

    let store = FileStore::open(&path).await.unwrap();
    assert_eq!((store.node_id(), ids(&store).await), (node, before.clone()));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
    store.append(vec![NewEvent::new("k", "a", "3")]).await.unwrap();
    drop(store);

    let store = FileStore::open(&path).await.unwrap();
    let after = ids(&store).await;
    assert_eq!((after.len(), &after[..2]), (3, &before[..]));
    let last = store.load_aggregate("a", &Cursor::START).await.unwrap();
    assert_eq!(last[2].origin.counter, 3, "counters continue after the cut");
}

#[tokio::test]
async fn a_damaged_whole_line_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    let store = FileStore::open(&path).await.unwrap();
    store.append(vec![NewEvent::new("k", "a", "1")]).await.unwrap();
    drop(store);
    append_bytes(&path, b"{not json}\n");
    let err = FileStore::open(&path).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage);
    assert!(err.to_string().contains("line 3"), "{err}");
}
