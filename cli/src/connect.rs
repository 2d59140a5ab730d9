//! The CLI connects with quartet-client: credentials, TLS, bearer
//! token and trace context are shared with the gateway.

pub(crate) use quartet_client::{
    Connection, Credentials, Resolution, connect, parse_address, retry_read,
};
