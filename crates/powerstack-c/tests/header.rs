//! `include/powerstack.h` is what cbindgen generates from the crate now: a changed entry point
//! without a regenerated header fails here.

use std::path::Path;

#[test]
fn the_committed_header_is_generated_from_the_crate() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .unwrap()
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = crate_dir.join("include/powerstack.h");
    if std::env::var_os("POWERSTACK_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what cbindgen generates from the crate; regenerate it with: \
         POWERSTACK_BLESS=1 cargo test -p powerstack-c --test header",
        path.display()
    );
}
