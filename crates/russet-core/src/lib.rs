//! russet-core
