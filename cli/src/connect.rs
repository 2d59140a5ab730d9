//! The CLI connects with the runtime's client side: credentials, TLS, bearer
//! token and trace context are shared with the gateway.

pub(crate) use quartet_runtime::client::{
    Connection, Credentials, Resolution, connect, parse_address, retry_read,
};
