//! The HTML report in a real browser: `agentsh-bench report` on a fixture run folder
//! (tests/data/html-run/), then headless Chromium (the Debian package, installed by
//! scripts/setup-host.sh) takes a screenshot of it. The page must render (the screenshot shows
//! the report's own colours, not one flat colour or a browser error page) and put nothing on the
//! console: no script error, no request refused by its Content-Security-Policy. A second test
//! breaks the page on purpose, so a console check that could never fail would be seen.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/html-run");
/// Headless Chromium takes ~3 s here; a busy 2-core machine may take much longer.
const TIMEOUT: Duration = Duration::from_secs(180);
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2000;

/// Chromium's path; a clear failure, not a skip, when it is missing: CI must install it.
fn chromium() -> &'static Path {
    let p = Path::new(CHROMIUM);
    assert!(
        p.is_file(),
        "{CHROMIUM} is missing: run scripts/setup-host.sh, which installs the Debian package chromium \
         (or apt-get install -y chromium)"
    );
    p
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating the fixture copy");
    for entry in std::fs::read_dir(from).expect("reading the fixture") {
        let path = entry.expect("a fixture entry").path();
        let dest = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copying a fixture file");
        }
    }
}

/// A gradient PNG chart with no SVG twin, so the report embeds it as a data: URI.
fn write_png_chart(path: &Path) {
    let (w, h) = (240u32, 120u32);
    let pixels: Vec<u8> = (0..h).flat_map(|y| (0..w).flat_map(move |x| [x as u8, y as u8 * 2, 128])).collect();
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("creating the charts folder");
    let file = std::fs::File::create(path).expect("creating the png");
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().expect("png header").write_image_data(&pixels).expect("png data");
}

/// The fixture in a temporary folder, with a PNG chart, and its report written by the command
/// line as a person would (`agentsh-bench report RUN`, which prints the page's path).
fn fixture_report() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    copy_dir(Path::new(FIXTURE), &run);
    write_png_chart(&run.join("charts/exec-mix/t-0.percentiles.png"));
    let out = common::bench(&["report", run.to_str().expect("a UTF-8 path")]);
    assert_eq!(common::code(&out), 0, "report failed: {}", common::text(&out.stderr));
    let page = run.join("report.html");
    assert_eq!(common::text(&out.stdout).trim(), page.display().to_string(), "prints the page's path");
    let html = std::fs::read_to_string(&page).expect("report.html written");
    assert!(html.contains("data:image/png;base64,") && html.contains("<figure><svg"), "both charts embedded");
    (dir, page)
}

/// What Chromium left: the screenshot's bytes and its stderr.
struct Shot {
    png: Vec<u8>,
    stderr: String,
}

/// Opens `page` in headless Chromium and takes a WIDTH×HEIGHT screenshot. The flags keep it off
/// the network (this machine has none) and log the page's console to stderr.
fn screenshot(page: &Path) -> Shot {
    let work = tempfile::tempdir().expect("tempdir");
    let profile = work.path().join("profile");
    let shot = work.path().join("shot.png");
    let stderr_file = work.path().join("stderr.txt");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).expect("creating the stderr file"))
        .spawn()
        .expect("starting chromium");
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took more than {TIMEOUT:?} on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}):\n{stderr}");
    let png = std::fs::read(&shot).unwrap_or_default();
    Shot { png, stderr }
}

/// The page's console messages. Chromium logs every one as `INFO:CONSOLE:<line>] "<text>"`,
/// whatever its level: console.log, console.error and an uncaught exception look alike. The
/// report logs nothing itself, so any console line is a fault (an exception, a request the CSP
/// refused); "Uncaught" is matched on its own too, in case a version logs it differently.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("CONSOLE") || l.contains("Uncaught")).collect()
}

/// The screenshot's size and its distinct RGB colours.
fn colours(png_bytes: &[u8]) -> (u32, u32, HashSet<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG screenshot");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "8-bit screenshot");
    let samples = info.color_type.samples();
    assert!(samples >= 3, "a colour screenshot, got {:?}", info.color_type);
    let set = buf[..info.buffer_size()].chunks(samples).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, set)
}

#[test]
fn the_report_renders_in_chromium_without_console_errors() {
    let (_dir, page) = fixture_report();
    let shot = screenshot(&page);
    assert!(!shot.png.is_empty(), "no screenshot; chromium said:\n{}", shot.stderr);
    let (w, h, set) = colours(&shot.png);
    assert_eq!((w, h), (WIDTH, HEIGHT));
    assert!(set.len() > 16, "a flat screenshot ({} colours): nothing rendered", set.len());
    // The report's own CSS, so not a browser error page: the header band and a violated row.
    assert!(set.contains(&[0xf6, 0xf8, 0xfa]), "no header background #f6f8fa in the screenshot");
    assert!(set.contains(&[0xff, 0xeb, 0xe9]), "no violated-row background #ffebe9 in the screenshot");
    let console = console_lines(&shot.stderr);
    assert!(console.is_empty(), "the page wrote to the console:\n{}", console.join("\n"));
}

/// The console check itself: a page that throws is caught.
#[test]
fn a_page_that_throws_fails_the_console_check() {
    let (_dir, page) = fixture_report();
    let html = std::fs::read_to_string(&page).expect("report.html");
    let broken = html.replacen("</body>", "<script>throw new Error(\"abench-injected\")</script></body>", 1);
    std::fs::write(&page, broken).expect("writing the broken page");
    let shot = screenshot(&page);
    let console = console_lines(&shot.stderr);
    assert!(
        console.iter().any(|l| l.contains("Uncaught") && l.contains("abench-injected")),
        "the injected exception was not seen; chromium said:\n{}",
        shot.stderr
    );
}
