"""Channel pruning: coupled channel groups, their masks, and `shrink`.

- `graph`: reads a Sequential/Functional graph into coupled channel spaces.
- `kinds`: the per-layer rules the grouping applies.
- `rules`: width rules: the feed-forward neurons and attention heads inside
  a layer (`LayerRule`, `register_layer_rule`).
- `engine`: `ChannelGroup`, the masks' update during training.
- `shrink`: rebuilds a model without its removable channels.
- `macs`: multiply-accumulates per example, before and after a shrink.
"""
