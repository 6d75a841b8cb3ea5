//! TODO(owner): module doc.
