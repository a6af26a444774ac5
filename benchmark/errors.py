"""The one exception type for mistakes a user can fix (bad paths, bad config, bad data)."""


class UserError(Exception):
    """A problem with the user's input. The CLI prints its message as one line and exits 2.

    The message names the problem and the fix; it never needs a traceback to be understood.
    """


class RankFailure(Exception):
    """Under torchrun: this rank was stopped by the launcher, because another rank of the job failed (or the job
    was cancelled). The CLI prints it as one line and exits 1; the run ends FAILED."""
