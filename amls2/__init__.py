"""amls2: single-image super-resolution with a MATLAB-exact evaluation protocol.

Importing the package is cheap and quiet: TensorFlow is only imported when a model is built, loaded
or run (``amls2.models``, and inside the functions of pipeline, training and inference that need
it).
"""

import logging

from amls2.errors import Amls2Error

__version__ = "0.1.0"
__all__ = ["Amls2Error", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
