//! russet-server
