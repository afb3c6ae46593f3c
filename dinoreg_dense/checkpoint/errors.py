"""The one exception type of checkpoint loading."""


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read, recognised or loaded into the model.

    The message names the file, the detected format (when one was detected) and what to change.
    """
