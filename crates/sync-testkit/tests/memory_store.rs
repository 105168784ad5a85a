//! The reference store passes the whole store suite.
sync_testkit::store_suite!(sync_testkit::store_suite::MemoryFactory);
