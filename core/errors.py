"""Typed errors whose message is one sentence a non-programmer can act on."""


class TransferLabError(Exception):
    """Base of every error the app shows as a plain sentence (the CLI exits 2)."""


class ConfigError(TransferLabError):
    """A RunConfig value is outside what is allowed."""


class DatasetError(TransferLabError):
    """A dataset cannot be imported, found or used."""


class WeightsUnavailable(TransferLabError):
    """Pretrained weights are neither cached nor downloadable."""


class RunNotFound(TransferLabError):
    """No run with that id exists in the workspace."""


class RunStateError(TransferLabError):
    """The run exists but is not in a state that allows the request (e.g. not finished)."""


class TrainingFailed(TransferLabError):
    """Training stopped on a problem the user can fix (NaN loss, out of memory)."""


class QuotaExceeded(TransferLabError):
    """A shared server's cap was reached (disk space of a workspace, runs waiting or training at once)."""


class ExportError(TransferLabError):
    """An export could not be made, or it does not reproduce the model it came from."""


class StudyError(TransferLabError):
    """A hyperparameter search cannot be created, joined or read (empty space, no budget, bad storage)."""


class PruningError(TransferLabError):
    """A model cannot be pruned as asked (nothing prunable, a sparsity out of range, an unfinished run)."""


class ServingError(TransferLabError):
    """A model cannot be served, or a request to the model server is malformed (answered with status 400)."""


class AddressRefused(TransferLabError):
    """A web address a visitor gave is not one this shared server fetches (or its download went past a cap)."""
