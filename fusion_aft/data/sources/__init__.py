"""Built-in dataset sources; importing this package registers them."""

from fusion_aft.data.sources import (  # noqa: F401
    emoji,
    fashion_mnist,
    hub,
    local,
    rotten_tomatoes,
    vision,
)
