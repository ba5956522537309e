"""The core room: what every other room shares, with neither TensorFlow nor pandas.

``schema`` (the typed config in Hydra's ConfigStore), ``spec`` (RunSpec: validate, resolve,
run_id), ``backbones`` (the registry, the single source of truth for resolutions, input
ranges, builders, hub handles and blocks), ``record`` (the typed result record), ``errors``
(the errors a user can cause), ``environment`` (versions, host, commit), ``wandb_mode``
(which W&B mode applies, without importing wandb) and ``console`` (the one place progress
lines are printed from). Importing any of them loads no TensorFlow.
"""
