"""The interview questions asked about this job in particular, answered as prose around
figures (:mod:`scaling.present.answers`); the questions every job answers are in
:mod:`scaling.present.interview`."""

from __future__ import annotations

from scaling.present.answers import Answer, Ask


def answers(ask: Ask) -> list[Answer]:
    """The job's own interview questions and a follow-up, each answered with figures from
    ``ask``."""
    xd, xf = "xgboost data", "xgboost feature"
    ld, lf, lv = "lightgbm data", "lightgbm feature", "lightgbm voting"
    a = Answer(
        "How does XGBoost parallelise, beyond its built-in parallel split finding: by "
        "data and by feature?"
    )
    a.say(
        "Inside one machine XGBoost already splits the work of finding a split over "
        "threads. Over machines, data-parallel (row split) gives each worker a block of "
        "rows: it builds the gradient histograms of its rows for a level's nodes "
        f"({ask.step(a, 'map', 'flops', variant=xd)} for the busiest), the workers "
        f"all-reduce them ({ask.step(a, 'combine', 'sends', variant=xd)} per worker per "
        f"tree, in {ask.step(a, 'combine', 'repeats', variant=xd)} rounds, one a level), "
        "and every worker picks the same best split from the same sums: the "
        "single-machine trees. What moves is sized by nodes x features x bins, "
        "whatever the rows."
    )
    a.say(
        "Feature-parallel (column split) gives each worker a block of columns of every "
        "row, after a one-time exchange of the data: each finds the best split among its "
        "own columns, the best one wins, and its owner tells the others which rows go "
        "left, a bit per row: "
        f"{ask.step(a, 'combine', 'sends', variant=xf)} per worker per tree here. It "
        "wins with few rows and many features; with many rows the bits per row and the "
        "replica cost more than the histograms."
    )
    b = Answer("Why is LightGBM faster, and how does its parallel training work?")
    b.say(
        "On one machine: histograms of binned features (a split costs bins, not rows), "
        "the smaller child's histogram built and its sibling's taken as the parent's "
        "minus it (XGBoost's hist method now does both), exclusive feature bundling "
        "(sparse features that are never non-zero together share one histogram), "
        "optionally gradient-based one-side sampling of the rows, and leaf-wise growth, "
        "which splits the leaf that gains most and reaches a loss with fewer nodes than "
        "depth-wise growth."
    )
    b.say(
        "In parallel, its data-parallel learner reduce-scatters the histograms, so each "
        "machine sums and searches only its share of the features, and then shares only "
        f"the best splits: {ask.step(b, 'combine', 'sends', variant=ld)} per worker per "
        "tree against XGBoost's all-reduce of "
        f"{ask.step(b, 'combine', 'sends', variant=xd)}. "
        "Voting-parallel (Meng et al., NeurIPS 2016) has each machine vote for its top k "
        "features and sums the histograms of the 2k most voted only, so what moves no "
        "longer grows with the features: "
        f"{ask.step(b, 'combine', 'sends', variant=lv, features=1000)} against "
        f"{ask.step(b, 'combine', 'sends', variant=ld, features=1000)} for its "
        "data-parallel learner at a thousand features. Its feature-parallel learner keeps "
        "every row on every machine, so only the best split moves "
        f"({ask.step(b, 'combine', 'sends', variant=lf)} per worker per tree)."
    )
    follow = Answer("Follow-up: and with 10,000 features?")
    follow.say(
        "Data-parallel histograms grow with the features: XGBoost's all-reduce becomes "
        f"{ask.step(follow, 'combine', 'sends', variant=xd, features=10_000)} per worker per "
        "tree, and the work per node of scanning them too. Voting keeps it at 2k "
        f"features' histograms "
        f"({ask.step(follow, 'combine', 'sends', variant=lv, features=10_000)}), and "
        "feature-parallel splits the columns, for the one-time cost of its replica: "
        "which one wins depends on rows x features, which is what "
        "`scaling predict gbdt --mode ...` weighs."
    )
    return [a, b, follow]
