//! The one orchestrator of every run, migrate or move-tables: the steps in [`Phase`] order. The driver enters each
//! phase (the status, the console's phase strip and the log line that announces it) and has the run record it in
//! its checkpoint table before the step runs; what a step does is the run's own ([`Run`]): migrate changes one
//! table on one server and swaps it in, move-tables copies tables to another server and fences them. Preflight
//! and setup hand typed state on (`Checked`, then `Live`: the stream and the applier running), so no step runs
//! before what it assumes exists.

use color_eyre::eyre::Result;

use crate::engine::pipeline::phase::Phase;
use crate::engine::pipeline::runtime::RunContext;

/// After a step: go on with `T`, or the run has ended (a dry run, a stop, a resume that found the run finished).
pub(crate) enum Flow<T, O> {
    Go(T),
    End(O),
}

/// The steps that run while the stream and the applier run, in order; the cut-over follows them.
pub(crate) const LIVE_STEPS: [Phase; 5] = [Phase::Copy, Phase::Indexes, Phase::Catchup, Phase::Verify, Phase::ReadyToCutOver];

/// What a kind of run does at each step.
pub(crate) trait Run {
    type Outcome;
    /// What preflight proved and decided: connections, the single-run lock, the plans, where a resume continues.
    type Checked;
    /// A set-up run whose stream and applier run.
    type Live;

    /// Checks everything before anything changes; a dry run or a resume that has nothing left ends here.
    async fn preflight(&mut self, ctx: &RunContext) -> Result<Flow<Self::Checked, Self::Outcome>>;
    /// Creates (or, resumed, finds) the run's tables and start position, and starts the stream and the applier.
    async fn setup(&mut self, ctx: &RunContext, checked: Self::Checked) -> Result<Flow<Self::Live, Self::Outcome>>;
    /// Whether the live step `phase` runs (a resume past it, or a step this run does not have, skips it).
    fn runs(&self, live: &Self::Live, phase: Phase) -> bool;
    /// Records in the checkpoint table that `phase` begins.
    async fn record(&mut self, live: &mut Self::Live, phase: Phase) -> Result<()>;
    /// One of the [`LIVE_STEPS`].
    async fn step(&mut self, ctx: &RunContext, live: &mut Self::Live, phase: Phase) -> Result<Flow<(), Self::Outcome>>;
    /// The cut-over and what follows it (migrate: the swap and the clean-up; move-tables: fence, drain, announce).
    async fn cut_over(&mut self, ctx: &RunContext, live: Self::Live) -> Result<Self::Outcome>;
}

/// Runs `run` through its steps; the outcome is the first step's that ends the run, else the cut-over's.
pub(crate) async fn drive<R: Run>(run: &mut R, ctx: &RunContext) -> Result<R::Outcome> {
    ctx.shared.enter(Phase::Preflight);
    let checked = match run.preflight(ctx).await? {
        Flow::Go(c) => c,
        Flow::End(o) => return Ok(o),
    };
    ctx.shared.enter(Phase::Setup);
    let mut live = match run.setup(ctx, checked).await? {
        Flow::Go(l) => l,
        Flow::End(o) => return Ok(o),
    };
    for phase in LIVE_STEPS {
        if !run.runs(&live, phase) {
            continue;
        }
        run.record(&mut live, phase).await?;
        ctx.shared.enter(phase);
        if let Flow::End(o) = run.step(ctx, &mut live, phase).await? {
            return Ok(o);
        }
    }
    ctx.shared.enter(Phase::CutOver);
    run.cut_over(ctx, live).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_steps_are_in_phase_order_between_setup_and_the_cut_over() {
        let mut sorted = LIVE_STEPS.to_vec();
        sorted.sort();
        assert_eq!(sorted, LIVE_STEPS.to_vec());
        assert!(LIVE_STEPS.iter().all(|p| *p > Phase::Setup && *p < Phase::CutOver));
        let between: Vec<Phase> = Phase::STRIP.iter().copied().filter(|p| *p > Phase::Setup && *p < Phase::CutOver).collect();
        assert_eq!(between, LIVE_STEPS.to_vec(), "every phase between setup and the cut-over is a live step");
    }
}
