//! `quartet-transform`: the transform service on its own, as deployed.

use quartet_runtime::Process;
use quartet_transform::{DEFAULT_PORT, TransformOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let about = "Serves quartet.transform.v1.TransformService with health and reflection";
    let (process, options) = Process::parse::<TransformOptions>("quartet-transform", about).await?;
    let handler = quartet_transform::handler(&options).await?;
    let server = quartet_transform::server(process.server_options(), process.shutdown(), handler);
    Ok(process.serve(server, DEFAULT_PORT).await?)
}
