//! TODO(owner): module doc.

pub mod op;
