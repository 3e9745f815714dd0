//! Progress bars on stderr, only when it is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;

pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn new(what: &str) -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {msg}: {human_pos} entries ({per_sec}) {elapsed}",
        ) {
            pb.set_style(style);
        }
        pb.set_message(what.to_string());
        Bar(Some(pb))
    }

    pub fn callback(&self) -> Option<state_core::savepoint::Progress> {
        let pb = self.0.clone()?;
        Some(Arc::new(move |n| pb.inc(n)))
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}
