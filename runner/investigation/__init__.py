"""Investigations: the analysis's plan as one file of ordered steps, each an experiment.

An investigation file (`investigations/*.yaml`, told apart from an experiment by its `steps:`) names
a question, a bar and steps. A step runs one experiment, as `runner run` would, in that
experiment's own store; `use` replaces an axis of the step's experiment with the value an earlier
step picked (`pick: best`).

This stage is pure: the file's schema and its checks (`schema`, `load`), the override of a step's
experiment by the picks (`overrides`), the pick itself over a step's results (`pick`), the
hypotheses table and the decision over every step's results (`hypotheses`), and the
investigation's report as data and text (`report`). Running the steps and reading their stores
is the application layer's (`runner.api._investigate`), which composes `run` and `report` as the
CLI would. It sits after reporting because a pick follows the report's own rules for naming a best
row (`runner.reporting.judgement`), and before the api, which is the only stage that runs anything.
"""
