"""How a trained gated detector routes images: the gate probe over small-, large- and mixed-object
images (:mod:`.probe`) and the paper's Fig. 3 analog (:mod:`.routing_figure`, which loads matplotlib)."""

from .probe import GROUP_NAMES, collect_states, control_units, individuality, probe_images, probe_model

__all__ = ["GROUP_NAMES", "collect_states", "control_units", "individuality", "probe_images", "probe_model"]
