"""Every registered job keeps the Job contract (:func:`scaling.testing.check_job`); each also
has its own test against its single-machine reference (``test_kmeans.py`` and the others)."""

from __future__ import annotations

import dataclasses

import pytest

from jobs import JOBS, get_job
from scaling.testing import check_job


@pytest.mark.parametrize("name", list(JOBS))
def test_every_job_keeps_the_contract(name):
    check_job(get_job(name))


def test_a_job_that_breaks_the_contract_is_named(monkeypatch):
    job = get_job("kmeans")
    monkeypatch.setattr(type(job), "headline", "nowhere")
    with pytest.raises(AssertionError, match="job 'kmeans': quality has no 'nowhere'"):
        check_job(job)
    monkeypatch.undo()
    unfrozen = dataclasses.make_dataclass("Loose", [("k", int, 8)])
    monkeypatch.setattr(type(job), "config", unfrozen)
    with pytest.raises(AssertionError, match="config is not frozen"):
        check_job(job)
