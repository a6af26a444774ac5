"""TPE whose random state is reseeded for every trial from (sweep seed, trial number).

Trial numbers are unique across every worker and every invocation of a study (the storage hands
them out), so concurrent workers, on one machine or several, never draw the same random point,
and a resumed study explores new points: a fresh ``TPESampler(seed=s)`` on a resumed study
replays its first trials' params exactly, and two machines started with the same seed would
duplicate each other's trials. With one worker, a sweep is reproducible from its seed.
"""

from __future__ import annotations

import numpy as np
import optuna


def trial_seed(seed: int, trial_number: int) -> int:
    return int(np.random.SeedSequence([seed, trial_number]).generate_state(1)[0])


class TrialSeededTPE(optuna.samplers.BaseSampler):
    """Delegates to a ``TPESampler`` made afresh, with a per-trial seed, before each trial."""

    def __init__(self, seed: int):
        self.seed = seed
        self._tpe = optuna.samplers.TPESampler(seed=seed)

    def before_trial(self, study, trial) -> None:
        self._tpe = optuna.samplers.TPESampler(seed=trial_seed(self.seed, trial.number))
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._tpe.after_trial(study, trial, state, values)
