"""Gradual pruning: raise the sparsity step by step while training recovers.

Zhu and Gupta ("To prune, or not to prune", 2017) prune every ``frequency``
(dt) optimizer steps, from step t0 to t0 + n dt, to the sparsity

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n dt))^3

which starts at s_i, falls fast while the network has many redundant weights,
and flattens as it nears the final sparsity s_f, giving training time to
recover between prunings. Each pruning removes the smallest-magnitude weights
that are still unpruned; pruned weights stay pruned.

    pruner = mg.prune.GradualPruner(mg.prune.prunable_parameters(model), final_sparsity=0.9,
                                    start_step=0, frequency=100, num_prunings=20)
    for x, y in loader:
        loss = ...; loss.backward(); optimizer.step(); optimizer.zero_grad()
        pruner.step()          # t += 1; prunes when t is t0, t0 + dt, ..., t0 + n dt
"""
from . import methods


def cubic_sparsity(step, final_sparsity, initial_sparsity=0.0, start_step=0, frequency=1, num_prunings=1):
    """Zhu and Gupta's target sparsity at optimizer step ``step``.

    0 before ``start_step`` (nothing pruned yet), s_f after the last pruning.
    """
    if step < start_step:
        return 0.0
    progress = min((step - start_step) / (num_prunings * frequency), 1.0)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


class GradualPruner:
    """Prunes ``parameters`` along the cubic schedule, one call of ``step()`` per optimizer step.

    parameters: (module, name) pairs, e.g. ``prunable_parameters(model)``.
    final_sparsity (s_f), initial_sparsity (s_i): fractions of zeros in [0, 1].
    start_step (t0), frequency (dt), num_prunings (n): prune at t0, t0 + dt, ..., t0 + n dt.
    scope: "layer" prunes every tensor to s_t (Zhu and Gupta); "global" ranks all
    weights together and prunes s_t of them in all (layers lose different amounts).
    Construction re-parametrizes every tensor (a mask of ones, ``identity``) and
    counts as step 0: with start_step=0 the first pruning happens at once.
    The argument names match the CLI flags of ``add_arguments`` (``--final-sparsity`` ...).
    """

    def __init__(self, parameters, final_sparsity, initial_sparsity=0.0, start_step=0, frequency=100,
                 num_prunings=10, scope="layer"):
        for label, value in (("final_sparsity", final_sparsity), ("initial_sparsity", initial_sparsity)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"GradualPruner: {label}={value} must be a fraction in [0, 1]")
        if start_step < 0 or frequency < 1 or num_prunings < 1:
            raise ValueError(f"GradualPruner: need start_step >= 0, frequency >= 1, num_prunings >= 1; got "
                             f"{start_step}, {frequency}, {num_prunings}")
        if scope not in ("layer", "global"):
            raise ValueError(f"GradualPruner: scope must be 'layer' or 'global', got {scope!r}")
        self.parameters = list(parameters)
        if not self.parameters:
            raise ValueError("GradualPruner: no parameters to prune")
        self.final_sparsity, self.initial_sparsity = final_sparsity, initial_sparsity
        self.start_step, self.frequency, self.num_prunings = start_step, frequency, num_prunings
        self.scope = scope
        self.step_count = 0
        for module, name in self.parameters:  # masks of ones now: state_dict keys stay the same all run
            if methods._find_container(module, name)[1] is None:
                methods.identity(module, name)
        self._prune_if_scheduled()

    @property
    def end_step(self):
        return self.start_step + self.num_prunings * self.frequency

    def sparsity_at(self, step):
        return cubic_sparsity(step, self.final_sparsity, self.initial_sparsity, self.start_step,
                              self.frequency, self.num_prunings)

    def is_pruning_step(self, step):
        return self.start_step <= step <= self.end_step and (step - self.start_step) % self.frequency == 0

    def step(self):
        """Call after each ``optimizer.step()``. Returns True when it pruned at this step."""
        self.step_count += 1
        return self._prune_if_scheduled()

    def _prune_if_scheduled(self):
        if not self.is_pruning_step(self.step_count):
            return False
        self.prune_to(self.sparsity_at(self.step_count))
        return True

    def prune_to(self, sparsity):
        """Prune the smallest unpruned magnitudes until ``sparsity`` of the weights are pruned."""
        if self.scope == "global":
            total = sum(_numel(module, name) for module, name in self.parameters)
            pruned = sum(_pruned_count(module, name) for module, name in self.parameters)
            more = max(round(sparsity * total) - pruned, 0)
            methods.global_unstructured(self.parameters, methods.L1Unstructured, amount=more)
            return
        for module, name in self.parameters:
            more = max(round(sparsity * _numel(module, name)) - _pruned_count(module, name), 0)
            methods.l1_unstructured(module, name, amount=more)

    def sparsity(self):
        """The fraction of mask entries that are zero, over all the parameters."""
        total = sum(_numel(module, name) for module, name in self.parameters)
        return sum(_pruned_count(module, name) for module, name in self.parameters) / total

    def state_dict(self):
        return {"step_count": self.step_count}

    def load_state_dict(self, state):
        self.step_count = int(state["step_count"])

    # ----- command-line flags (train.py) ----------------------------------------------------
    @staticmethod
    def add_arguments(parser):
        """Add --final-sparsity, --initial-sparsity, --prune-start, --prune-every, --prunings, --prune-scope."""
        group = parser.add_argument_group("gradual pruning (Zhu and Gupta's cubic schedule)")
        group.add_argument("--final-sparsity", type=float, default=0.0,
                           help="s_f, fraction of weights pruned at the end (0 = no pruning)")
        group.add_argument("--initial-sparsity", type=float, default=0.0, help="s_i, sparsity of the first pruning")
        group.add_argument("--prune-start", type=int, default=0, help="t0, optimizer step of the first pruning")
        group.add_argument("--prune-every", type=int, default=100, help="dt, optimizer steps between prunings")
        group.add_argument("--prunings", type=int, default=10, help="n, number of pruning steps after t0")
        group.add_argument("--prune-scope", choices=("layer", "global"), default="layer",
                           help="prune every layer to s_t, or rank all weights together")
        return parser

    @classmethod
    def from_args(cls, parameters, args):
        """A pruner from the flags of ``add_arguments``, or None when --final-sparsity is 0."""
        if args.final_sparsity == 0:
            return None
        return cls(parameters, final_sparsity=args.final_sparsity, initial_sparsity=args.initial_sparsity,
                   start_step=args.prune_start, frequency=args.prune_every, num_prunings=args.prunings,
                   scope=args.prune_scope)


def _numel(module, name):
    _, mask = methods._orig_and_mask("GradualPruner", module, name)
    return int(mask.size)


def _pruned_count(module, name):
    _, mask = methods._orig_and_mask("GradualPruner", module, name)
    return int((mask == 0).sum())
