"""The interview questions asked about this job in particular, answered as prose around
figures (:mod:`scaling.present.answers`); the questions every job answers are in
:mod:`scaling.present.interview`."""

from __future__ import annotations

from scaling.present.answers import Answer, Ask


def answers(ask: Ask) -> list[Answer]:
    """The job's own interview questions and a follow-up, each answered with figures from
    ``ask``."""
    a = Answer("How did you parallelise k-means, and does k-means always converge?")
    a.say(
        "Lloyd's algorithm is one map-reduce per iteration. Each worker assigns its rows to "
        "the nearest of the k centres and sums them per centre: "
        f"{ask.step(a, 'map', 'flops')} of work for the busiest, and a partial result of "
        f"{ask.step(a, 'map', 'sends')} (k sums of d values, and k counts) whatever its "
        "rows. The partial results add up in a tree (or an all-reduce among the workers) "
        "and each new centre is its sum over its count: the centres one machine computes, "
        "up to the order of the additions. Initialisation is k-means|| (Bahmani et al., "
        "VLDB 2012): a few rounds that each sample about 2k rows in parallel, instead of "
        "k-means++'s k passes one after the other, then k-means++ on those candidates, "
        "weighted, on the driver."
    )
    a.say(
        "It always converges, to a local optimum: neither the assignment nor the update "
        "can raise the inertia (the sum of squared distances to the nearest centre), and "
        "the rows have finitely many partitions into k clusters, so the centres stop "
        "moving. Which optimum depends on the initialisation: k-means|| is within "
        "O(log k) of the best in expectation, and restarts keep the best of several."
    )
    for r in [r for r in ask.records if "n_iter" in r.get("quality", {})][-1:]:
        a.say(
            f"Measured: run {r['run_id']} on {r['engine']} ({r['workers']} workers) "
            f"stopped after {ask.record(a, r, 'quality.n_iter', 'count')} iterations, at "
            f"inertia {ask.record(a, r, 'quality.inertia', 'count')}."
        )
    big = {"k": 1000}
    follow = Answer("Follow-up: what changes when k is large, say a thousand?")
    follow.say(
        "The partial result grows with k d: "
        f"{ask.step(follow, 'map', 'sends', config=big)} per worker at k = 1,000 against "
        f"{ask.step(follow, 'map', 'sends')} at k = {ask.config.k}, and so does the map: "
        f"{ask.step(follow, 'map', 'flops', config=big)} for the busiest worker. The map "
        "still divides by p, so k-means still scales; the cost is in the assignment, which "
        "an index over the centres or mini-batch k-means (Sculley, WWW 2010) cuts, and "
        "in k-means||'s candidates, which grow with k on the driver."
    )
    return [a, follow]
