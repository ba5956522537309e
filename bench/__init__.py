"""bench: a benchmark harness for transfer learning.

One Keras per process: tensorflow-hub builds on ``tf_keras`` (Keras 2), and a Keras 3
model silently drops the weights of a Keras 2 backbone (tensorflow/hub#903,
keras-team/keras#20648; docs/architecture.md). The legacy switch
must be set before TensorFlow is first imported, so it is set here, on package import.
"""

import os
import sys

__version__ = "0.1.0"

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError(
        "bench must be imported before tensorflow (it sets TF_USE_LEGACY_KERAS=1 so that "
        "every model is built with tf_keras); import bench first, or export TF_USE_LEGACY_KERAS=1."
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# INFO lines from the C++ runtime drown Keras' progress; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
