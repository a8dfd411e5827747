//! Progress of `agentkernel evolve` and `create`. On a terminal: bars for
//! the generation and the candidate and a spinner naming the stage, with
//! the engine's lines printed above them. Otherwise exactly what was
//! printed before the bars existed: nothing on stderr when it is not a
//! terminal (the results go to stdout, which tests and scripts parse).
//!
//! The engine reports progress as lines; [`Event::parse`] reads the few
//! shapes that move the bars (the engine's tests pin those lines).
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What one progress line means for the bars.
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    /// `generation G: candidate I/N `LABEL``.
    Candidate { generation: u64, index: u64, total: u64, label: &'a str },
    /// The stage the current candidate (or the run) is in.
    Stage(String),
    /// The current candidate is done: judged (`wins`/`loses`) or failed before it could be.
    Done(String),
    /// A line that moves no bar.
    Other,
}

impl<'a> Event<'a> {
    pub fn parse(line: &'a str) -> Event<'a> {
        if let Some(rest) = line.strip_prefix("generation ") {
            if let Some((generation, rest)) = rest.split_once(": candidate ") {
                let parsed = (|| {
                    let (counts, label) = rest.split_once(' ')?;
                    let (index, total) = counts.split_once('/')?;
                    Some(Event::Candidate {
                        generation: generation.parse().ok()?,
                        index: index.parse().ok()?,
                        total: total.parse().ok()?,
                        label: label.trim_matches('`'),
                    })
                })();
                return parsed.unwrap_or(Event::Other);
            }
        }
        let trimmed = line.trim_start();
        // `  P/N cases, F fuel: wins (...)`: a benchmarked candidate's verdict.
        if let Some((_, verdict)) = trimmed.split_once(" fuel: ").filter(|_| trimmed.contains(" cases, ")) {
            return Event::Done(verdict.split(' ').next().unwrap_or_default().to_string());
        }
        let stage = match trimmed {
            l if l.starts_with("building the incumbent") => "building the incumbent",
            l if l.starts_with("incumbent ") => "incumbent benchmarked",
            l if l.starts_with("built in ") => "benchmarking",
            l if l.starts_with("repair ") => "repaired: building again",
            l if l.starts_with("does not build") => return Event::Done("does not build".into()),
            l if l.starts_with("rejected before building") => return Event::Done("rejected before building".into()),
            l if l.starts_with("not loadable") => return Event::Done("not loadable".into()),
            l if l.starts_with("no source") => return Event::Done("no source".into()),
            l if l.starts_with("shadow:") => "shadow stage done",
            l if l.starts_with("swapped in ") => "swapped in",
            _ => return Event::Other,
        };
        Event::Stage(stage.to_string())
    }
}

/// Where progress goes: bars on a terminal, else nowhere.
pub enum ProgressView {
    Bars { multi: MultiProgress, generation: ProgressBar, candidate: ProgressBar, stage: ProgressBar },
    Quiet,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

impl ProgressView {
    /// Bars when stderr is a terminal (where the engine's lines went before).
    pub fn for_stderr(generations: u32) -> ProgressView {
        if !std::io::stderr().is_terminal() {
            return ProgressView::Quiet;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let generation = multi.add(ProgressBar::new(u64::from(generations.max(1))));
        generation.set_style(style("generation {pos}/{len} [{bar:30}] {elapsed_precise}"));
        let candidate = multi.add(ProgressBar::new(0));
        candidate.set_style(style("candidate  {pos}/{len} [{bar:30}] {msg}"));
        let stage = multi.add(ProgressBar::new_spinner());
        stage.set_style(ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
        stage.enable_steady_tick(Duration::from_millis(120));
        stage.set_message("starting");
        ProgressView::Bars { multi, generation, candidate, stage }
    }

    /// One line from the engine: printed above the bars, and the bars moved.
    pub fn line(&self, line: &str) {
        let ProgressView::Bars { multi, generation, candidate, stage } = self else {
            return;
        };
        let _ = multi.println(line);
        match Event::parse(line) {
            Event::Candidate { generation: g, index, total, label } => {
                // Generations before this one are done.
                generation.set_position(g.saturating_sub(1));
                candidate.set_length(total);
                candidate.set_position(index.saturating_sub(1));
                candidate.set_message(format!("`{label}`"));
                stage.set_message(format!("`{label}`: building"));
            }
            Event::Stage(s) => stage.set_message(s),
            Event::Done(how) => {
                candidate.inc(1);
                stage.set_message(format!("{}: {how}", candidate.message()));
            }
            Event::Other => {}
        }
    }

    /// Removes the bars (the result is printed after them).
    pub fn finish(&self) {
        if let ProgressView::Bars { multi, generation, candidate, stage } = self {
            generation.set_position(generation.length().unwrap_or(0));
            for bar in [stage, candidate, generation] {
                bar.finish_and_clear();
            }
            let _ = multi.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_lines_that_move_the_bars_are_read() {
        assert_eq!(
            Event::parse("generation 2: candidate 3/8 `sieve`"),
            Event::Candidate { generation: 2, index: 3, total: 8, label: "sieve" }
        );
        assert_eq!(Event::parse("  built in 812 ms"), Event::Stage("benchmarking".into()));
        assert_eq!(Event::parse("  does not build (2 error(s))"), Event::Done("does not build".into()));
        assert_eq!(Event::parse("  7/7 cases, 1200 fuel: wins (saves 90%)"), Event::Done("wins".into()));
        assert_eq!(Event::parse("building the incumbent from its source crate"), Event::Stage("building the incumbent".into()));
        assert_eq!(Event::parse("generation 1: generator stopped: x"), Event::Other);
        assert_eq!(Event::parse("evolution primes-1: agent `primes`"), Event::Other);
    }
}
