"""`syncd once`: one complete cycle -- read every source, compute, push -- then exit.

- :mod:`syncd.once.command` -- the command: lock, ledger, read, verify, push, report;
- :mod:`syncd.once.run` -- the rounds of one run and their totals;
- :mod:`syncd.once.dry_run` -- ``--dry-run``: the plan printed instead of executed;
- :mod:`syncd.once.report` -- what the run prints and its exit status;
- :mod:`syncd.once.ledger_copy` -- the dry run's consistent copy of the ledger.
"""
