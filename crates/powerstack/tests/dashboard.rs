//! The web dashboard in a real browser (Debian's headless `chromium`; skipped, saying so, when
//! it is absent: `scripts/browser-test.sh` installs it): the node page of an agent on a simulated
//! intel-2s node shows each domain's power as `/v1/power` gives it, the site page of `powerstack
//! up` shows the bound set on it, no request leaves loopback, the pages read only documented
//! routes, a site that requires a token shows a tokenless page no data, and screenshots of both
//! pages go to `target/dashboard/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Node, Proc, bin, http_get, run, stderr_until};
use serde_json::Value;

/// The browser: `$POWERSTACK_CHROMIUM`, else `chromium` on the PATH. Without one the tests
/// skip, saying so, unless `POWERSTACK_BROWSER_TEST_REQUIRED` is set (scripts/browser-test.sh).
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("POWERSTACK_CHROMIUM").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|d| d.join("chromium")).find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("POWERSTACK_BROWSER_TEST_REQUIRED").is_none(),
            "no chromium, and POWERSTACK_BROWSER_TEST_REQUIRED is set"
        );
        eprintln!("SKIPPED: no chromium (scripts/browser-test.sh installs Debian's chromium)");
    }
    found
}

/// Where the screenshots go: `target/dashboard/`.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Chromium, headless, with nothing of its own going out: every host name but 127.0.0.1 fails
/// to resolve, and each run logs its requests to a net log in `dir`.
fn browser(chromium: &Path, dir: &Path, run_name: &str) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        // Enough virtual time for the scripts to load and poll a few times.
        "--virtual-time-budget=6000",
        "--window-size=1100,1400",
    ]);
    c.arg(format!("--user-data-dir={}", dir.join(format!("profile-{run_name}")).display()));
    c.arg(format!("--log-net-log={}", dir.join(format!("{run_name}.netlog.json")).display()));
    c.stdin(Stdio::null()).stderr(Stdio::null());
    c
}

/// The page's DOM once its scripts ran.
fn dom(chromium: &Path, dir: &Path, url: &str) -> String {
    let out = browser(chromium, dir, "dom").arg("--dump-dom").arg(url).output().unwrap();
    assert!(out.status.success(), "chromium --dump-dom {url}: {:?}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

/// A screenshot of the page into `png`; the page's DOM must have rendered (checked by [`dom`]).
fn screenshot(chromium: &Path, dir: &Path, url: &str, png: &Path) {
    screenshot_sized(chromium, dir, url, png, "1100,1400");
}

/// [`screenshot`] in a window of `size` (`WIDTH,HEIGHT`): `390,844` is a phone's.
fn screenshot_sized(chromium: &Path, dir: &Path, url: &str, png: &Path, size: &str) {
    let _ = std::fs::remove_file(png);
    let status = browser(chromium, dir, "shot")
        .arg(format!("--window-size={size}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "chromium --screenshot {url}: {status:?}");
    let bytes = std::fs::read(png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{}", png.display());
}

/// Every URL the page requested (the requests whose initiator is `origin`, and the navigations
/// to it), from the net logs in `dir`. The browser's own requests (updates, accounts) have no
/// such initiator; the resolver rule makes them fail.
fn requested(dir: &Path, origin: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".netlog.json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // A net log cut short (the browser ended while writing) lacks its closing brackets.
        let log: Value = serde_json::from_str(&text)
            .or_else(|_| {
                serde_json::from_str(&format!("{}]}}", text.trim_end().trim_end_matches(',')))
            })
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for event in log["events"].as_array().unwrap() {
            let params = &event["params"];
            let (Some(url), initiator) = (params["url"].as_str(), params["initiator"].as_str())
            else {
                continue;
            };
            if initiator == Some(origin) || url.starts_with(origin) {
                urls.push(url.to_string());
            }
        }
    }
    urls
}

/// Asserts every request of the page went to 127.0.0.1, and that its assets were logged.
/// Also that it read only routes of the server's OpenAPI document (besides the page and its
/// assets).
fn assert_loopback_only(dir: &Path, port: &str) {
    let origin = format!("http://127.0.0.1:{port}");
    let web = requested(dir, &origin);
    let outside: Vec<&String> =
        web.iter().filter(|u| !u.starts_with("http://127.0.0.1:")).collect();
    assert!(outside.is_empty(), "requests beyond loopback: {outside:?}");
    for asset in ["/assets/style.css", "/assets/common.js"] {
        let want = format!("127.0.0.1:{port}{asset}");
        assert!(web.iter().any(|u| u.contains(&want)), "{want} not in the net log: {web:?}");
    }
    let openapi: Value = serde_json::from_str(&http_get(&origin[7..], "/v1/openapi.json")).unwrap();
    let documented = openapi["paths"].as_object().unwrap();
    let mut api = 0;
    for url in &web {
        let path = url.trim_start_matches(&origin).split('?').next().unwrap();
        if ["/", "/jobs", "/job"].contains(&path) || path.starts_with("/assets/") {
            continue;
        }
        let matches = |template: &str| {
            let (t, p): (Vec<&str>, Vec<&str>) =
                (template.split('/').collect(), path.split('/').collect());
            t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t == p || t.starts_with('{'))
        };
        assert!(documented.keys().any(|k| matches(k)), "{path}: not a documented route");
        api += 1;
    }
    assert!(api > 0, "no API read in the net log: {web:?}");
}

/// The `data-NAME="VALUE"` attributes of the element whose opening tag holds `marker`.
fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    Some(tag[start..].split('"').next()?.to_string())
}

/// The opening tags of `dom` that contain `marker`.
fn tags<'a>(dom: &'a str, marker: &str) -> Vec<&'a str> {
    dom.split('<').filter(|t| t.contains(marker)).map(|t| t.split('>').next().unwrap()).collect()
}

#[test]
fn the_node_page_shows_the_domains_power_as_the_api_gives_it() {
    let Some(chromium) = chromium() else { return };
    let node = Node::new("intel-2s");
    let (_agent, addr) = node.agent();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let url = format!("http://{addr}/");
    // A caller over TCP gets power once the agent has a second of samples.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !http_get(&addr, "/v1/power").contains("\"domains\"") {
        assert!(std::time::Instant::now() < deadline, "no power from the agent");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Meanwhile the test reads /v1/power itself, keeping each answer by its time: an
    // unprivileged caller's figures are as of a whole second, so the answer the page shows is
    // among them, and the test compares the page with the one of the same second.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, addr) = (stop.clone(), addr.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeMap::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let doc: Value = serde_json::from_str(&http_get(&addr, "/v1/power")).unwrap();
                seen.insert(doc["timestamp_us"].as_u64().unwrap(), doc);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            seen
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dom(&chromium, dir.path(), &url);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.join().unwrap();
    assert!(page.contains("data-ready=\"true\""), "the page never rendered data:\n{page}");
    assert!(page.contains("SIMULATED intel-2s"), "no simulated label:\n{page}");
    let rows = tags(&page, "data-domain=");
    let shown_at: u64 = attr(rows[0], "data-timestamp-us").unwrap().parse().unwrap();
    let api =
        seen.get(&shown_at).unwrap_or_else(|| panic!("{shown_at} not read: {:?}", seen.keys()));
    let domains = api["domains"].as_array().unwrap();
    assert_eq!(rows.len(), domains.len(), "{rows:?}");
    for d in domains {
        let key = format!("{}-{}", d["domain"].as_str().unwrap(), d["index"]);
        let row = rows.iter().find(|r| attr(r, "data-domain").as_deref() == Some(&key));
        let row = row.unwrap_or_else(|| panic!("{key} not on the page: {rows:?}"));
        let shown: f64 = attr(row, "data-watts").unwrap().parse().unwrap();
        let want = d["power_watts"].as_f64().unwrap();
        assert!(want > 0.0, "{key}: {d}");
        assert!((shown - want).abs() <= 0.01 * want, "{key}: page {shown} W, API {want} W");
    }
    // The package limits from /v1/caps are shown (150 W on intel-2s).
    assert!(page.contains("150.0 W"), "no limit shown:\n{page}");
    screenshot(&chromium, dir.path(), &url, &shots().join("node.png"));
    assert_loopback_only(dir.path(), &port);
}

#[test]
fn the_site_page_of_up_shows_the_bound() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("site.db").display());
    let mut up = Proc(
        bin()
            .env("HOME", dir.path())
            // Port 0: `up` chooses the agent's port before telling its site where the agent is.
            .args(["up", "--simulate", "intel-2s", "--listen", "127.0.0.1:0"])
            .args(["--site-listen", "127.0.0.1:0", "--database", &db])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = stderr_until(&mut up.0, "dashboard: ");
    let line = lines.last().unwrap();
    let site = line.split("the site ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    assert!(line.contains("this node http://127.0.0.1:"), "{line}");
    let base = site.trim_end_matches('/');
    // The agent's first push registers the node.
    let addr = base.trim_start_matches("http://");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !http_get(addr, "/v1/nodes").contains("\"power_watts\"") {
        assert!(std::time::Instant::now() < deadline, "the node never reached the site");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // And a node that went silent a minute ago: stale.
    let site_client =
        powerstack_client::site::Site::new(base, None, std::time::Duration::from_secs(10)).unwrap();
    let now_us =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros()
            as u64;
    let register = serde_json::from_value(serde_json::json!({
        "hostname": "old01", "simulated": null, "started_unix_us": now_us - 70_000_000,
        "domains": [{"domain": "node", "index": 0, "provider": "bmc", "joules_per_tick": 1.0,
                     "read": true}]
    }))
    .unwrap();
    site_client.register("old01", "00000000000000a1", &register).unwrap();
    let samples = (0..3).map(|k| vec![now_us - 62_000_000 + k * 1_000_000, 1000 + k * 300]);
    let batch = serde_json::from_value(
        serde_json::json!({"seq": 1, "samples": samples.collect::<Vec<_>>()}),
    )
    .unwrap();
    site_client.push("old01", "00000000000000a1", &batch).unwrap();
    // A job running on the live node.
    let nodes: Value = serde_json::from_str(&http_get(addr, "/v1/nodes")).unwrap();
    let live = nodes["nodes"][0]["name"].as_str().unwrap().to_string();
    let (code, _, err) = run(&[
        "job",
        "begin",
        "sim-42",
        "--site",
        base,
        "--nodes",
        &live,
        "--no-agents",
        "--user",
        "alice",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["site", "bound", "250", "--site", base]);
    assert_eq!(code, 0, "{err}");
    let page = dom(&chromium, dir.path(), &site);
    assert!(page.contains("data-ready=\"true\""), "the page never rendered data:\n{page}");
    let bound = tags(&page, "id=\"bound\"");
    assert_eq!(bound.len(), 1, "{page}");
    assert_eq!(attr(bound[0], "data-watts").as_deref(), Some("250"), "{page}");
    assert!(page.contains(">250.0 W<"), "{page}");
    // The node pushing to it is listed, the silent one marked stale, and the decision that
    // capped the live one through its agent.
    let nodes = tags(&page, "data-node=");
    assert_eq!(nodes.len(), 2, "{page}");
    let old = nodes.iter().find(|t| t.contains("data-node=\"old01\"")).unwrap();
    assert!(old.contains("class=\"stale\""), "{old}");
    assert!(nodes.iter().filter(|t| t.contains("stale")).count() == 1, "{nodes:?}");
    assert!(page.contains("1 stale"), "{page}");
    let job = tags(&page, "data-job=");
    assert_eq!(job.len(), 1, "{page}");
    assert!(job[0].contains("sim-42") && page.contains(">alice<"), "{page}");
    assert!(page.contains(">1 / 0 / 0<"), "no decision lowering the node's cap:\n{page}");
    screenshot(&chromium, dir.path(), &site, &shots().join("site.png"));
    let port = base.rsplit(':').next().unwrap();
    assert_loopback_only(dir.path(), port);
    // Stopped as Ctrl-C stops it, so that it removes its temporary directories.
    up.signal(libc::SIGINT);
    assert!(up.0.wait().unwrap().success());
}

#[test]
fn the_site_page_without_a_token_shows_no_data_from_a_site_that_requires_one() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, "[[token]]\ntoken = \"admin-token-0123456789\"\nrole = \"admin\"\n")
        .unwrap();
    std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    let (_site, url) = common::site::serve_with(&[
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        state.to_str().unwrap(),
        "--tokens",
        tokens.to_str().unwrap(),
    ]);
    // The page itself is public; its data is not.
    let page = dom(&chromium, dir.path(), &format!("{url}/"));
    let status = tags(&page, "id=\"status\"");
    assert_eq!(status.len(), 1, "{page}");
    assert!(status[0].contains("error"), "{page}");
    assert!(page.contains("/v1/site/power: 401"), "{page}");
    assert!(!page.contains("data-ready"), "{page}");
    assert!(page.contains("id=\"site-power\">–<"), "{page}");
}

#[test]
fn the_job_pages_show_a_finished_two_node_job_as_job_report_does() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (_site, url) = common::site::serve(&state);
    let (a, b) = (Node::new("intel-2s"), Node::new("nvidia-4gpu"));
    let push = |n: &Node, name: &str| {
        n.agent_with(|c| {
            c.args(["--site", &url, "--node-name", name, "--push-interval", "200ms"]);
        })
    };
    let (_agent_a, _) = push(&a, "n1");
    let (_agent_b, _) = push(&b, "n2");
    let addr = url.trim_start_matches("http://").to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http_get(&addr, "/v1/nodes").matches("\"power_watts\":").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "the nodes never reached the site");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let job = ["--site", url.as_str()];
    let (code, _, err) = run(&[
        &["job", "begin", "web-7", "--nodes", "n1,n2", "--no-agents"][..],
        &job,
        &["--user", "alice"],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (code, _, err) = run(&[&["job", "end", "web-7", "--no-agents"][..], &job].concat());
    assert_eq!(code, 0, "{err}");
    let site =
        powerstack_client::site::Site::new(&url, None, std::time::Duration::from_secs(10)).unwrap();
    common::site::settled_report(&site, "web-7");
    let (code, report, err) =
        run(&[&["job", "report", "-j", "web-7", "--format", "json"][..], &job].concat());
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&report).unwrap();
    let total_joules = report["total"]["energy_joules"].as_f64().unwrap();
    assert!(total_joules > 0.0, "{report}");

    // The job page: its totals and each node's energy are the report's.
    let page_url = format!("{url}/job?id=web-7");
    let page = dom(&chromium, dir.path(), &page_url);
    assert!(page.contains("data-ready=\"true\""), "the page never rendered data:\n{page}");
    let energy = tags(&page, "id=\"energy\"");
    let shown: f64 = attr(energy[0], "data-joules").unwrap().parse().unwrap();
    assert_eq!(shown, total_joules, "{page}");
    let mean = tags(&page, "id=\"mean\"");
    let shown: f64 = attr(mean[0], "data-watts").unwrap().parse().unwrap();
    assert_eq!(shown, report["total"]["node_power"].as_f64().unwrap());
    for node in report["nodes"].as_array().unwrap() {
        let name = node["hostname"].as_str().unwrap();
        let row = page.split(&format!("data-node=\"{name}\"")).nth(1).unwrap();
        let cell = tags(row, "data-joules=")[0];
        let shown: f64 = attr(cell, "data-joules").unwrap().parse().unwrap();
        assert_eq!(shown, node["energy_joules"].as_f64().unwrap(), "{name}");
    }
    assert!(page.contains(">user alice · 2 nodes · began "), "{page}");
    // Both charts were drawn: one line per node, and the domain kinds (GPUs on n2).
    for legend in ["legend-nodes", "legend-kinds"] {
        let part = page.split(&format!("id=\"{legend}\"")).nth(1).unwrap();
        assert!(part.contains("<span>"), "{legend}: {page}");
    }
    assert!(page.split("id=\"legend-kinds\"").nth(1).unwrap().contains("GPU</span>"), "{page}");

    // The downloads the page offers are the report's CSV as `job report --format csv` prints
    // it, and the series.
    let (code, csv, _) =
        run(&[&["job", "report", "-j", "web-7", "--format", "csv"][..], &job].concat());
    assert_eq!(code, 0);
    let (status, served) = common::tcp_request(&addr, "GET", "/v1/jobs/web-7?format=csv");
    assert_eq!((status, served), (200, csv));
    let (status, series) =
        common::tcp_request(&addr, "GET", "/v1/jobs/web-7/timeseries?format=csv");
    assert_eq!(status, 200);
    assert!(series.starts_with(powerstack_api::site_csv::TIMESERIES_CSV_HEADER), "{series}");
    assert!(series.lines().any(|l| l.starts_with("n2,")), "{series}");

    // The list, searched by user, links to the job with the same energy.
    let list = dom(&chromium, dir.path(), &format!("{url}/jobs?user=alice"));
    assert!(list.contains("data-ready=\"true\""), "{list}");
    let row = list.split("data-job=\"web-7\"").nth(1).unwrap();
    assert!(row.contains("href=\"/job?id=web-7\""), "{row}");
    let shown: f64 = attr(tags(row, "data-joules=")[0], "data-joules").unwrap().parse().unwrap();
    assert!((shown - total_joules).abs() <= 1e-6 * total_joules, "{shown} {total_joules}");
    let nobody = dom(&chromium, dir.path(), &format!("{url}/jobs?user=bob"));
    assert!(nobody.contains("no job matches") && !nobody.contains("data-job="), "{nobody}");

    screenshot(&chromium, dir.path(), &page_url, &shots().join("job.png"));
    screenshot(&chromium, dir.path(), &format!("{url}/jobs"), &shots().join("jobs.png"));
    screenshot_sized(&chromium, dir.path(), &page_url, &shots().join("job-phone.png"), "390,844");
    assert_loopback_only(dir.path(), url.rsplit(':').next().unwrap());
}
