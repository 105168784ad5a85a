//! Cross-crate integration tests for synckit live in `tests/`: several
//! replicas on real SQLite and redb files syncing through a real HTTP server.
