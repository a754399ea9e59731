"""Channel pruning: coupled channel groups, their masks, and `shrink`.

- `graph`: reads a Sequential/Functional graph into coupled channel spaces.
- `kinds`: the per-layer rules the grouping applies.
- `engine`: `ChannelGroup`, the masks' update during training.
- `shrink`: rebuilds a model without its removable channels.
- `macs`: multiply-accumulates per example, before and after a shrink.
"""
