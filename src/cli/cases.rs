//! placeholder
use color_eyre::eyre::Result;
pub async fn run(_a: super::args::RunCasesArgs) -> Result<i32> {
    Ok(0)
}
