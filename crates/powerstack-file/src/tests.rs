use super::*;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_fifo_is_refused_at_once_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("token");
    mkfifo(&fifo);
    // Without O_NONBLOCK this open would wait for a writer for ever.
    let e = read(&fifo, "token file", TEXT_MAX_BYTES).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "token file {} is a FIFO, not a regular file: give the path of a regular file",
            fifo.display()
        )
    );
}

#[test]
fn directories_devices_and_sockets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = read(dir.path(), "pools file", TEXT_MAX_BYTES).unwrap_err().to_string();
    assert!(e.contains("is a directory, not a regular file"), "{e}");
    let e = read(Path::new("/dev/zero"), "pools file", TEXT_MAX_BYTES).unwrap_err().to_string();
    assert!(e.contains("/dev/zero is a character device"), "{e}");
    let sock = dir.path().join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let e = read(&sock, "configuration file", TEXT_MAX_BYTES).unwrap_err().to_string();
    assert!(e.contains("is a socket, not a regular file"), "{e}");
}

#[test]
fn a_file_over_the_bound_is_refused_and_one_at_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::write(&path, vec![b'x'; 2048]).unwrap();
    assert_eq!(read(&path, "journal", 2048).unwrap().len(), 2048);
    let e = read(&path, "journal", 1024).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("journal {} is larger than 1 KiB: is it the right file?", path.display())
    );
    let e = read(&path, "journal", 1000).unwrap_err().to_string();
    assert!(e.contains("larger than 1000 bytes"), "{e}");
}

#[test]
fn a_missing_file_is_named_and_optional_reads_say_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let e = read_to_string(&path, "pools file", TEXT_MAX_BYTES).unwrap_err();
    assert!(e.is_not_found());
    let e = e.to_string();
    assert!(e.starts_with(&format!("pools file {} cannot be opened: ", path.display())), "{e}");
    assert_eq!(read_if_exists(&path, "pools file", TEXT_MAX_BYTES).unwrap(), None);
    std::fs::write(&path, "a = 1\n").unwrap();
    assert_eq!(read_if_exists(&path, "pools file", TEXT_MAX_BYTES).unwrap().unwrap(), "a = 1\n");
    std::fs::write(&path, [0xff, 0xfe]).unwrap();
    let e = read_to_string(&path, "pools file", TEXT_MAX_BYTES).unwrap_err().to_string();
    assert!(e.ends_with("is not UTF-8 text (invalid byte at offset 0)"), "{e}");
}
