"""Channel pruning: coupled channel groups, their masks, and `shrink`.

- `graph`: reads a Sequential/Functional graph into coupled channel spaces.
- `kinds`: the built-in rule of each Keras layer type (Dense, Conv, BN, ...).
- `rules`: `LayerRule` (one object per layer class: what it does to
  channels, how it is rebuilt, its MACs), `register_layer_rule`, and the
  width rules (feed-forward neurons and attention heads inside a layer).
- `engine`: `ChannelGroup`, the masks' update during training.
- `shrink`: rebuilds a model without its removable channels.
- `macs`: multiply-accumulates per example, before and after a shrink.
"""

# The built-in rules register themselves when `kinds` is imported.
from keras_progprune.channels import kinds  # noqa: E402,F401
