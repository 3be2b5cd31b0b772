"""User-facing errors: the CLI prints them as one line and exits non-zero, never a traceback."""


class BnnError(Exception):
    """A problem the user can fix; the message names the thing and the fix."""

    exit_code = 2


class DataError(BnnError):
    """A data set or IDX file cannot be read."""


class InputShapeError(BnnError, ValueError):
    """Inputs that do not have the model's dtype or image shape (a ValueError to library code)."""

    @classmethod
    def for_shapes(cls, model_shape, input_shape) -> "InputShapeError":
        """model_shape: (H, W, C); input_shape: one image's shape as given."""
        return cls(f"the model takes {'x'.join(map(str, model_shape))} images, the inputs are "
                   f"{'x'.join(map(str, input_shape))}: use a data set or inputs of the "
                   "model's size")


class ModelError(BnnError):
    """A model file cannot be read, or a model cannot be converted exactly."""


class TargetError(BnnError):
    """A build, an emulator or a board failed or did not answer."""

    exit_code = 3


class MismatchError(BnnError):
    """A parity check found differing bits (the run itself worked)."""

    exit_code = 1
