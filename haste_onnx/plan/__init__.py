"""The rewrite plan: what happens to every Conv site (`plan`), the options (`options`) and the layer
policy (`policy`) a plan is built from without a probe (`build`)."""
from .build import plan_model, plan_sites, site_shapes  # noqa: F401
from .options import DEFAULT_HYPERPLANES, DEFAULT_MERGE, DEFAULT_SPARSITY, HashingOptions  # noqa: F401
from .plan import LayerPlan, LayerSettings, Plan, PlanMismatch, SiteShape, load_plan, save_plan  # noqa: F401
from .policy import DEFAULT_MIN_CHANNELS, Policy  # noqa: F401
