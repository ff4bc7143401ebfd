"""The clinical-safety study: a counselor model under test against simulated patients at risk.

:mod:`~personae.studies.safety.patients` (patients with planted risk),
:mod:`~personae.studies.safety.state` (their state and its update rule),
:mod:`~personae.studies.safety.checklist` (what a counselor turn does),
:mod:`~personae.studies.safety.monitor` (the safety monitor),
:mod:`~personae.studies.safety.scenario` (the scenario),
:mod:`~personae.studies.safety.analysis` (the scorecard) and
:mod:`~personae.studies.safety.report` (its report section).
A research instrument for testing models, not a clinical device.
"""
