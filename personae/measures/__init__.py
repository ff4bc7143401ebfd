"""Psychometric instruments, administered as probes (see personae.scenarios.probes)."""
