"""The stochastic solvers' learning-rate rules, as scikit-learn's ``_optimizer`` objects give them:
``iteration_ends`` after each epoch, ``trigger_stopping`` when the loss stopped improving.

The solver's state (learning rate, step count, moments) stays the dict that is saved with the
estimator; a ``Solver`` reads and updates it.
"""


class Solver:
    """scikit-learn's ``SGDOptimizer`` / ``AdamOptimizer`` schedule over the state ``opt``."""

    def __init__(self, est, opt):
        self.opt = opt
        self.schedule = est.learning_rate if est.solver == "sgd" else "constant"
        self.learning_rate_init = float(est.learning_rate_init)
        self.power_t = est.power_t

    @property
    def learning_rate(self):
        return self.opt["lr"]

    def iteration_ends(self, time_step):
        """After an epoch: 'invscaling' sets ``lr = learning_rate_init / (t + 1) ** power_t``."""
        if self.schedule == "invscaling":
            self.opt["lr"] = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """True to stop; 'adaptive' divides the learning rate by 5 instead, down to 1e-6."""
        if self.schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.opt["lr"] <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.opt["lr"] /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.opt["lr"])
        return False
