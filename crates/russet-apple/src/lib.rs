//! russet-apple
