"""Mutation testing of chaoskit's verdicts: realistic defects planted in the reference stack
(chaoskit/stack/defects.py), each run against the shipped gate experiments, which must catch
it. `make mutants` (`python -m tests.mutants`) prints the mutation score."""
