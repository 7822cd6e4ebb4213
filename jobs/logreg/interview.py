"""The interview questions asked about this job in particular, answered as prose around
figures (:mod:`scaling.present.answers`); the questions every job answers are in
:mod:`scaling.present.interview`."""

from __future__ import annotations

from jobs.gbdt import JOB as GBDT
from jobs.gbdt.config import GBDTConfig
from scaling.present.answers import Answer, Ask


def answers(ask: Ask) -> list[Answer]:
    """The job's own interview questions and a follow-up, each answered with figures from
    ``ask``."""
    trees = ask.about(GBDT, GBDTConfig())
    a = Answer("Why is logistic regression easier to parallelise than XGBoost?")
    a.say(
        "Its loss is a sum over the rows, and so is the gradient: each worker computes its "
        f"rows' share ({ask.step(a, 'map', 'flops')} for the busiest) and sends "
        f"{ask.step(a, 'map', 'sends')}, the gradient and the loss, whatever its rows. "
        "One addition of those per step, in a tree or an all-reduce, gives "
        "exactly the single-machine gradient, and the optimiser (L-BFGS) runs on it "
        "unchanged: one synchronisation per step, the same iterates, balanced work."
    )
    a.say(
        "Boosting is sequential twice: tree after tree, and inside a tree level after "
        "level, as no worker can split a node before every worker's gradient histograms "
        "for it are summed. At the same shape data-parallel XGBoost all-reduces "
        f"{trees.step(a, 'combine', 'sends')} per tree, in "
        f"{trees.step(a, 'combine', 'repeats')} rounds (a level each), against "
        f"{ask.step(a, 'combine', 'sends')} once per logistic-regression step: its "
        "messages are sized by nodes x features x bins, and the work per node shrinks "
        "down the tree while the synchronisations do not, so stragglers and latency "
        "cost it more."
    )
    follow = Answer("Follow-up: when would you use Newton or ADMM instead of L-BFGS?")
    follow.say(
        "Newton sends the Hessian too, "
        f"{ask.step(follow, 'map', 'sends', variant='newton')} per worker against "
        f"{ask.step(follow, 'map', 'sends')}, and its map does "
        f"{ask.step(follow, 'map', 'flops', variant='newton')} against "
        f"{ask.step(follow, 'map', 'flops')}, but it converges in a handful of steps: it "
        "wins when d is small and each engine call costs much (few, heavy synchronous "
        "steps). ADMM (Boyd et al., 2011) has each worker solve its own rows' problem to "
        f"convergence ({ask.step(follow, 'map', 'flops', variant='admm')} a step) and "
        "exchange only its solution: few rounds of communication, for networks where a "
        "round is expensive, but slow to reach high accuracy."
    )
    return [a, follow]
