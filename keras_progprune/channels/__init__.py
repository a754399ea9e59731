"""Channel pruning: coupled channel groups, their masks, and `shrink`.

- `graph`: reads a Sequential/Functional graph into coupled channel spaces.
- The rule of each layer type (what it does to channels, how it is
  rebuilt, its MACs, its width groups) is in `keras_progprune.rules`.
- `engine`: `ChannelGroup`, the masks' update during training.
- `shrink`: rebuilds a model without its removable channels.
- `macs`: multiply-accumulates per example, before and after a shrink.
"""
