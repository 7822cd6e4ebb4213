"""Modelling a run: the steps a job declares (its work and what each step sends), the cost
model that prices them, and the calibration it prices them with. Numbers only: the words
that show them are in :mod:`scaling.present`."""
