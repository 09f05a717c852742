"""amls2: single-image super-resolution with a MATLAB-exact evaluation protocol.

Importing the package is cheap and quiet: TensorFlow is only imported by the modules that need it
(models, pipeline, training, inference, evaluation).
"""

import logging

from amls2.errors import Amls2Error

__version__ = "0.1.0"
__all__ = ["Amls2Error", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
