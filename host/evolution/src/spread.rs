//! One generation's candidates through the shared job queue
//! ([`crate::jobs`]): the owner's side of spreading a run across hosts.
use crate::generate::{Candidate, Context, Generator};
use crate::jobs::{CandidateJob, RunJobs};
use crate::report::{BuildReport, Timings};
use crate::sandbox_build::BuildSettings;
use crate::bench::Measured;
use crate::{Engine, EvolveError, Evaluated, build_place, new_report, record_build_time};


/// A run's candidates through the shared job queue.
pub(crate) struct Spread {
    pub(crate) jobs: RunJobs,
    pub(crate) agent: String,
    pub(crate) suite_text: String,
    pub(crate) run_seed: u64,
    pub(crate) repeats: u32,
    /// This host's engine: a result measured under another is measured again here.
    pub(crate) engine: String,
    /// The longest one job may take on a host: its build timeout and
    /// every case's deadline under every variant.
    pub(crate) per_job: std::time::Duration,
    /// [`crate::jobs::policy_hash`] of this host for the agent.
    pub(crate) policy: String,
    /// The suite's cases as this host reads them: (name, held out).
    pub(crate) cases: Vec<(String, bool)>,
}

impl Spread {
    /// Another host's measurement, checked against this host's suite: the
    /// same cases in the same order, and which are held out is this host's
    /// word (it decides what the next generation's prompt may quote).
    fn checked(&self, mut m: Measured) -> Result<Measured, String> {
        if let Ok((_, bench)) = &mut m.outcome {
            let names: Vec<&str> = bench.cases.iter().map(|c| c.name.as_str()).collect();
            let ours: Vec<&str> = self.cases.iter().map(|(n, _)| n.as_str()).collect();
            if names != ours {
                return Err(format!("its results name other cases than this host's suite ({} vs {})", names.len(), ours.len()));
            }
            for (case, (_, held_out)) in bench.cases.iter_mut().zip(&self.cases) {
                case.held_out = *held_out;
            }
        }
        Ok(m)
    }
}

impl Engine {
    /// One generation's candidates through the shared job queue, in waves:
    /// every candidate with a source is enqueued, the results are read in
    /// candidate order, a candidate that does not compile is repaired here
    /// and goes in the next wave. What no host could do (no sandbox there,
    /// the queue full, the wait over) and a result measured under another
    /// engine are done here instead.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn evaluate_spread(
        &self,
        spread: &Spread,
        candidates: Vec<Candidate>,
        generator: &mut Generator,
        ctx: &Context<'_>,
        settings: &BuildSettings,
        timings: &mut Timings,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<Evaluated>, EvolveError> {
        let g = ctx.generation;
        let mut slots: Vec<(Candidate, u32, Option<Evaluated>)> = candidates.into_iter().map(|c| (c, 0, None)).collect();
        loop {
            let mut wave = Vec::new();
            for (i, (candidate, _, done)) in slots.iter_mut().enumerate() {
                let Some(source) = candidate.source.as_ref().ok().filter(|_| done.is_none()).cloned() else {
                    if done.is_none() {
                        // No source: nothing to send (evaluate reports it).
                        let (report, built) = self.evaluate(candidate.clone(), generator, ctx, settings, timings, progress).await?;
                        *done = Some((report, built, None));
                    }
                    continue;
                };
                let (_, package) = build_place(&self.config.host.data_dir, &source);
                let job = CandidateJob {
                    agent: spread.agent.clone(),
                    package,
                    source,
                    suite: spread.suite_text.clone(),
                    run_seed: spread.run_seed,
                    repeats: spread.repeats,
                    policy: spread.policy.clone(),
                };
                match spread.jobs.enqueue(&job).await {
                    Ok(id) => wave.push((i, id)),
                    Err(e) => {
                        progress(&format!("generation {g}: `{}`: not queued ({e}): built here", candidate.label));
                        let (report, built) = self.evaluate(candidate.clone(), generator, ctx, settings, timings, progress).await?;
                        *done = Some((report, built, None));
                    }
                }
            }
            if wave.is_empty() {
                break;
            }
            progress(&format!("generation {g}: {} candidate job(s) queued for any host", wave.len()));
            let ids: Vec<i64> = wave.iter().map(|w| w.1).collect();
            // Every job of the wave done one after another (by the owner
            // alone, at worst), each host that died costing one more.
            let attempts = ids.len() as u32 + agentkernel_storage::jobs::MAX_JOB_ATTEMPTS as u32;
            let results = spread.jobs.wait(&ids, spread.per_job * attempts + std::time::Duration::from_secs(60)).await;
            for ((i, _), result) in wave.into_iter().zip(results) {
                let (candidate, repairs, done) = &mut slots[i];
                let label = candidate.label.clone();
                let (work, component) = match result {
                    Ok((work, component)) if work.unavailable.is_none() => (work, component),
                    Ok((work, _)) => {
                        progress(&format!("  `{label}`: {} could not do it ({}): built here", work.host, work.unavailable.unwrap_or_default()));
                        let (report, built) = self.evaluate(candidate.clone(), generator, ctx, settings, timings, progress).await?;
                        *done = Some((report, built, None));
                        continue;
                    }
                    Err(why) => {
                        progress(&format!("  `{label}`: {why}: built here"));
                        let (report, built) = self.evaluate(candidate.clone(), generator, ctx, settings, timings, progress).await?;
                        *done = Some((report, built, None));
                        continue;
                    }
                };
                let mut report = new_report(candidate, *repairs);
                report.build = BuildReport { repairs: *repairs, ..work.build };
                progress(&format!(
                    "generation {g}: candidate `{label}` on {}: {}",
                    work.host,
                    if report.build.ok { "built".to_string() } else { report.build.kind.clone().unwrap_or_default() }
                ));
                if report.build.ok || report.build.kind.as_deref() == Some("compile-error") {
                    record_build_time(timings, report.build.duration_ms);
                }
                if report.build.kind.as_deref() == Some("compile-error") {
                    if let Some(fixed) = self.repair(generator, ctx, candidate, *repairs, &report.build.errors).await {
                        *repairs += 1;
                        progress(&format!("  repair {repairs}"));
                        *candidate = fixed;
                        continue;
                    }
                }
                let (Some(component), Ok(source)) = (component.filter(|_| report.build.ok), candidate.source.clone()) else {
                    *done = Some((report, None, None));
                    continue;
                };
                // Fuel from another engine is not this run's fuel.
                let measured = work.measured.filter(|m| {
                    let same = m.engine == spread.engine;
                    if !same {
                        progress(&format!("  measured under engine {} on {}, not this host's {}: measured here again", m.engine, work.host, spread.engine));
                    }
                    same
                });
                let measured = measured.and_then(|m| match spread.checked(m) {
                    Ok(m) => Some(m),
                    Err(why) => {
                        progress(&format!("  the measurement from {}: {why}: measured here again", work.host));
                        None
                    }
                });
                *done = Some((report, Some((component, source)), measured));
            }
        }
        Ok(slots.into_iter().map(|(_, _, done)| done.expect("every slot is done when no wave is left")).collect())
    }

}
