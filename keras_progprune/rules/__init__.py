"""Layer rules: one object per layer type (see `rules/base.py`), and the
built-in ones. Importing this package registers them.

- `base`: the protocol (`LayerRule`, `Kind`, `WidthGroup`, `Member`) and the
  one registry (`register_layer_rule`, `rule_for`, `rule_of`).
- `keras_layers`: Keras's own layers and graph operations.
- `width`: feed-forward and attention widths (`FeedForwardRule`,
  `AttentionRule`, `UniformStackRule`).
- `keras_hub`: KerasHub's blocks, by class path.
"""

from keras_progprune.rules.base import PRODUCER  # noqa: F401
from keras_progprune.rules.base import FOLLOWER  # noqa: F401
from keras_progprune.rules.base import PASS  # noqa: F401
from keras_progprune.rules.base import MERGE  # noqa: F401
from keras_progprune.rules.base import CONCAT  # noqa: F401
from keras_progprune.rules.base import FLATTEN  # noqa: F401
from keras_progprune.rules.base import RESHAPE  # noqa: F401
from keras_progprune.rules.base import UNKNOWN  # noqa: F401
from keras_progprune.rules.base import Kind  # noqa: F401
from keras_progprune.rules.base import CLASS  # noqa: F401
from keras_progprune.rules.base import Member  # noqa: F401
from keras_progprune.rules.base import WidthGroup  # noqa: F401
from keras_progprune.rules.base import LayerRule  # noqa: F401
from keras_progprune.rules.base import register_layer_rule  # noqa: F401
from keras_progprune.rules.base import registered  # noqa: F401
from keras_progprune.rules.base import register_rule_by_name  # noqa: F401
from keras_progprune.rules.base import register_operation_rule  # noqa: F401
from keras_progprune.rules.base import rule_for  # noqa: F401
from keras_progprune.rules.base import width_groups  # noqa: F401
from keras_progprune.rules.base import sub_layer  # noqa: F401
from keras_progprune.rules.base import bias_of  # noqa: F401
from keras_progprune.rules.base import rule_of  # noqa: F401
from keras_progprune.rules.base import classify  # noqa: F401
from keras_progprune.rules.base import channel_weights  # noqa: F401
from keras_progprune.rules.base import channel_layer_names  # noqa: F401
from keras_progprune.rules.base import prunable_layer_names  # noqa: F401
from keras_progprune.rules.width import heads_group  # noqa: F401
from keras_progprune.rules.width import ffn_group  # noqa: F401
from keras_progprune.rules.width import attention_macs  # noqa: F401
from keras_progprune.rules.width import AttentionRule  # noqa: F401
from keras_progprune.rules.width import FeedForwardRule  # noqa: F401
from keras_progprune.rules.width import pad_to  # noqa: F401
from keras_progprune.rules.width import UniformStackRule  # noqa: F401
from keras_progprune.rules.keras_layers import f0_nonzero  # noqa: F401
from keras_progprune.rules.keras_layers import activation_reason  # noqa: F401
from keras_progprune.rules.keras_layers import to_numpy  # noqa: F401
from keras_progprune.rules.keras_layers import zero_along  # noqa: F401
from keras_progprune.rules.keras_layers import apply  # noqa: F401
from keras_progprune.rules.keras_layers import activate  # noqa: F401
from keras_progprune.rules.keras_layers import take  # noqa: F401
from keras_progprune.rules.keras_layers import ProducerRule  # noqa: F401
from keras_progprune.rules.keras_layers import DenseRule  # noqa: F401
from keras_progprune.rules.keras_layers import ConvRule  # noqa: F401
from keras_progprune.rules.keras_layers import TransposedConvRule  # noqa: F401
from keras_progprune.rules.keras_layers import SeparableConvRule  # noqa: F401
from keras_progprune.rules.keras_layers import FollowerRule  # noqa: F401
from keras_progprune.rules.keras_layers import DepthwiseRule  # noqa: F401
from keras_progprune.rules.keras_layers import BatchNormRule  # noqa: F401
from keras_progprune.rules.keras_layers import PassRule  # noqa: F401
from keras_progprune.rules.keras_layers import ZeroPaddingRule  # noqa: F401
from keras_progprune.rules.keras_layers import ActivationRule  # noqa: F401
from keras_progprune.rules.keras_layers import RescalingRule  # noqa: F401
from keras_progprune.rules.keras_layers import MixingRule  # noqa: F401
from keras_progprune.rules.keras_layers import MergeRule  # noqa: F401
from keras_progprune.rules.keras_layers import ConcatRule  # noqa: F401
from keras_progprune.rules.keras_layers import FlattenRule  # noqa: F401
from keras_progprune.rules.keras_layers import ReshapeRule  # noqa: F401
from keras_progprune.rules.keras_layers import OperationRule  # noqa: F401
from keras_progprune.rules.keras_layers import WeightsRule  # noqa: F401
from keras_progprune.rules.keras_layers import einsum_input_axis  # noqa: F401
from keras_progprune.rules.keras_layers import EinsumDenseRule  # noqa: F401
from keras_progprune.rules.keras_layers import ContainerRule  # noqa: F401
from keras_progprune.rules.keras_hub import HubBlockRule  # noqa: F401
from keras_progprune.rules.keras_hub import head_sized  # noqa: F401
from keras_progprune.rules.keras_hub import HubViTRule  # noqa: F401
from keras_progprune.rules.keras_hub import DepthRule  # noqa: F401
from keras_progprune.rules.keras_hub import depth_rule  # noqa: F401
