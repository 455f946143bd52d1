"""autodistiller: the search layer above training and the pipeline.

Sweeps over the Distiller search space (space, sweep, corpora), the run ledger, dataset features
and the recommender fitted on the ledger (AutoDistiller), with their `distiller` subcommands
(cli) and shipped assets. It may import every package below it; nothing below imports it.
"""
