//! One progress line per target. On a terminal these are indicatif bars; elsewhere (CI, pipes)
//! indicatif draws nothing, so each step becomes a plain line on stderr instead.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Board {
    multi: Option<MultiProgress>,
}

impl Board {
    pub fn new() -> Board {
        let tty = std::io::stderr().is_terminal();
        Board { multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())) }
    }

    pub fn line(&self, name: &str) -> Line {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<28} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Line { name: name.to_string(), bar, started: Instant::now() }
    }

    /// Prints above the bars without tearing them.
    pub fn println(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }
}

pub struct Line {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Line {
    pub fn step(&self, step: &str) {
        match &self.bar {
            Some(b) => b.set_message(step.to_string()),
            None => eprintln!("[{}] {:>6.1}s {step}", self.name, self.started.elapsed().as_secs_f64()),
        }
    }

    pub fn finish(&self, ok: bool, msg: &str) {
        let mark = if ok { "ok" } else { "FAILED" };
        let text = format!("{mark} {msg}");
        match &self.bar {
            Some(b) => b.finish_with_message(text),
            None => eprintln!("[{}] {:>6.1}s {text}", self.name, self.started.elapsed().as_secs_f64()),
        }
    }
}
