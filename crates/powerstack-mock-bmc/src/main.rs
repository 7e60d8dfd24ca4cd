//! `powerstack-mock-bmc DIR [USER PASSWORD]`: serves the Redfish mockup in DIR on 127.0.0.1 at a
//! port of the system's choosing and prints its URL, until interrupted.

use std::process::ExitCode;

use powerstack_mock_bmc::{MockBmc, Options, Tree};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, credentials) = match args.as_slice() {
        [dir] => (dir, None),
        [dir, user, password] => (dir, Some((user.clone(), password.clone()))),
        _ => {
            eprintln!("usage: powerstack-mock-bmc MOCKUP_DIR [USER PASSWORD]");
            return ExitCode::from(2);
        }
    };
    let started = match Tree::from_dir(std::path::Path::new(dir)) {
        Ok(tree) => MockBmc::start(tree, Options { credentials, ..Options::default() }).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(bmc) => {
            println!("{}", bmc.url());
            let _ = tokio::signal::ctrl_c().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("powerstack-mock-bmc: {e}");
            ExitCode::FAILURE
        }
    }
}
