//! `powerstack-mock-bmc (MOCKUP_DIR | --builtin NAME) [USER PASSWORD]`: serves the Redfish
//! mockup in MOCKUP_DIR, or one of the built-in trees (`dmtf-controls`, `legacy-power`,
//! `hpe-cray-ex`), on 127.0.0.1 at a port of the system's choosing and prints its URL, until
//! interrupted.

use std::process::ExitCode;

use powerstack_mock_bmc::{BUILTIN_TREES, MockBmc, Options, Tree};

const USAGE: &str = "usage: powerstack-mock-bmc (MOCKUP_DIR | --builtin NAME) [USER PASSWORD]";

/// The tree the arguments name, and the credentials they give.
fn parse(args: &[String]) -> Result<(Tree, Option<(String, String)>), String> {
    let (tree, rest) = match args {
        [flag, name, rest @ ..] if flag == "--builtin" => {
            let tree = Tree::builtin(name).ok_or_else(|| {
                format!("no built-in tree {name:?}: give one of {}", BUILTIN_TREES.join(", "))
            })?;
            (tree, rest)
        }
        [dir, rest @ ..] if !dir.starts_with("--") => {
            (Tree::from_dir(std::path::Path::new(dir)).map_err(|e| e.to_string())?, rest)
        }
        _ => return Err(USAGE.into()),
    };
    match rest {
        [] => Ok((tree, None)),
        [user, password] => Ok((tree, Some((user.clone(), password.clone())))),
        _ => Err(USAGE.into()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (tree, credentials) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(why) => {
            eprintln!("powerstack-mock-bmc: {why}");
            return ExitCode::from(2);
        }
    };
    match MockBmc::start(tree, Options { credentials, ..Options::default() }).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_builtin_tree_is_named() {
        let (tree, credentials) = parse(&args(&["--builtin", "legacy-power"])).unwrap();
        assert!(tree.get("/redfish/v1/Chassis/1/Power").is_some());
        assert_eq!(credentials, None);
        let (tree, credentials) =
            parse(&args(&["--builtin", "dmtf-controls", "root", "pw"])).unwrap();
        assert!(tree.get("/redfish/v1/Chassis/1/Controls/PowerLimit").is_some());
        assert_eq!(credentials, Some(("root".into(), "pw".into())));
    }

    #[test]
    fn bad_arguments_say_what_to_give() {
        let unknown = parse(&args(&["--builtin", "dell"])).err().unwrap();
        assert!(unknown.contains("dmtf-controls, legacy-power, hpe-cray-ex"), "{unknown}");
        assert_eq!(parse(&args(&[])).err().unwrap(), USAGE);
        assert_eq!(parse(&args(&["--builtin"])).err().unwrap(), USAGE);
        assert_eq!(parse(&args(&["--builtin", "legacy-power", "root"])).err().unwrap(), USAGE);
        assert!(parse(&args(&["/nonexistent/mockup"])).err().unwrap().contains("cannot read"));
    }
}
