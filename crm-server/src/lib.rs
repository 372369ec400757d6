//! The CRM server.
