"""Static compression: passes that leave a plain, smaller ONNX model (narrower Convs, no custom op).

- `normalize`: static Conv weights, BatchNormalization folded (before anything is compared);
- `spaces`: channel spaces (which Convs write a channel axis, who reads it, what ties or fixes it);
- `surgery`: remove or merge channels of a space and fix every reader (exact for identical channels);
- `red`: RED, data-free weight hashing and merging of (near-)identical filters;
- `qsfm`: QSFM, feature-map similarity on probe images, redundant filters removed, next layer compensated;
- `report`: the per-layer table (channels and MACs before and after);
- `run`: `static_compress(model, options)`, the entry point of the commands.
"""
from .spaces import Space, find_spaces  # noqa: F401
from .surgery import Edit, apply_edits  # noqa: F401
