"""The routing study (projects/routing/README.md): does DSIC route each image differently?

Importing the package registers its neck, ``dsic_routing`` (:mod:`routing.necks`), with the library.
"""

from dsic.necks import register_neck

register_neck("dsic_routing", "routing.necks:RoutingDSICNeck", gated=True)
