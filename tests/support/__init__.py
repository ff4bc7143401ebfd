"""Test infrastructure that injects faults from outside personae.

- :mod:`tests.support.fault_server`: an OpenAI-compatible chat server on
  loopback, in-process or as a separate process, with faults switched on and
  off at run time (HTTP errors, hangs, garbled bodies, odd replies, death).
- :mod:`tests.support.lock_holder`: a second program that holds an SQLite
  write lock for a given time.

Neither patches personae: the faults reach it the way real ones would, through
a socket or through the database file.
"""
