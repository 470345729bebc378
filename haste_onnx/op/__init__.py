"""The haste::HasteConv op: its geometry, schema, hyperplanes and numpy reference."""
from .geometry import DEFAULT_TILE, DOMAIN, OP_TYPE, OPSET_VERSION, ConvAttrs, patch_size
from .hyperplanes import draw_hyperplanes
from .schema import register_schema

__all__ = ["DEFAULT_TILE", "DOMAIN", "OP_TYPE", "OPSET_VERSION", "ConvAttrs", "patch_size",
           "draw_hyperplanes", "register_schema"]
