"""Walking Keras models: the one place that knows how layers nest.

Every walk over a model in this package goes through these helpers, so the
package reads Keras through public API everywhere else.

Functional graphs hold operation nodes that are not Layers (`x + y` or
`keras.ops.*` on KerasTensors); `model.layers` leaves them out, and the
helpers here never assume a node is a Layer.
"""

import contextlib
import functools
import importlib
import inspect
import warnings

import keras


def sublayers(layer):
    """Every layer nested inside `layer` (not itself), each once, depth first.

    Looks inside nested models, wrappers and composite layers (a
    `MultiHeadAttention`'s projections, a KerasHub `TransformerEncoder`'s
    Dense sublayers).
    """
    # Keras 3 has no public API that lists a plain Layer's sublayers:
    # `Model.layers` stops at the first level, and Layer has no `layers`.
    # `_flatten_layers` is the layer tracker's own recursive walk, the one
    # Keras uses for `model.weights`. This module is the only place in the
    # package that reads private Keras attributes (this one and, in
    # `graph_nodes`, the functional graph's nodes); tests/test_layout.py
    # enforces it.
    return _flat(layer, recursive=True)


def children(layer):
    """The layers directly inside `layer` (not their own sublayers), each
    once, in tracking order (see `sublayers`)."""
    return _flat(layer, recursive=False)


def _flat(layer, recursive):
    seen, out = set(), []
    for sub in layer._flatten_layers(include_self=False, recursive=recursive):
        if id(sub) not in seen:
            seen.add(id(sub))
            out.append(sub)
    return out


def attributes(layer):
    """`{name: value}` of the attributes set on `layer` (`self.encoder =
    ...` in its `__init__`), on every backend."""
    found = dict(vars(layer))
    # On PyTorch a Keras layer is a `torch.nn.Module`, which keeps the
    # modules assigned to it in `_modules` instead of `__dict__`.
    found.update(getattr(layer, "_modules", None) or {})
    return found


def is_keras_own(layer):
    """Whether `layer`'s class is one of Keras's own (not a user's, not
    KerasHub's, not ours)."""
    return type(layer).__module__.startswith("keras.")


def outside_classes(model):
    """`{registered name: class}` of every layer class in `model` (itself
    included) that is not Keras's own: what a config names and only the
    user's process may know how to find."""
    found = {}
    for layer in [model, *sublayers(model)]:
        if not is_keras_own(layer):
            found.setdefault(keras.saving.get_registered_name(type(layer)), type(layer))
    return found


def is_graph_model(model):
    """True for Sequential and Functional models (and Functional subclasses
    such as keras.applications and KerasHub backbones): the models whose
    graph can be read and cloned."""
    return isinstance(model, keras.Sequential) or (
        isinstance(model, keras.Model) and isinstance(model, keras.Function))


def builds_in_call(layer):
    """Whether `layer`'s class has no `build()` of its own, so that the
    sublayers it made in `__init__` get their weights only when it is
    first called (keras-io's custom layers are written this way)."""
    # Keras marks its base `Layer.build` with `_is_default` (its
    # `utils.python_utils.default` decorator) to detect overrides; read here
    # only, with the attributes above.
    return bool(getattr(type(layer).build, "_is_default", False))


def trace_call(layer, input_shape):
    """Builds what `layer.call` creates on its first call, by running it on
    symbolic tensors of `input_shape` (a shape, or a list of shapes for a
    layer of several inputs). Nothing is computed and no graph node is
    added: the layer's `compute_output_spec` traces `call`."""
    shapes = input_shape
    several = isinstance(shapes, (list, tuple)) and shapes and isinstance(
        shapes[0], (list, tuple))
    specs = [keras.KerasTensor(tuple(s)) for s in (shapes if several else [shapes])]
    layer.compute_output_spec(specs if several else specs[0])


def is_layer(node):
    """False for operation nodes of a Functional graph (`x + y`, `keras.ops`)."""
    return isinstance(node, keras.layers.Layer)


def call_accepts(layer, argument):
    """Whether `layer.call` takes `argument` by name (or `**kwargs`)."""
    params = inspect.signature(layer.call).parameters.values()
    return any(p.name == argument or p.kind is inspect.Parameter.VAR_KEYWORD
               for p in params)


class GraphNode:
    """One call in a model's graph: `operation(*args)` -> `outputs`.

    Attributes:
        operation: the Layer or operation object that was called.
        inputs: the KerasTensors among its arguments, in argument order.
        constants: the other positional arguments (`2.0` in `x * 2.0`).
        outputs: the KerasTensors it returned.
    """

    def __init__(self, operation, inputs, constants, outputs):
        self.operation = operation
        self.inputs = list(inputs)
        self.constants = list(constants)
        self.outputs = list(outputs)


def graph_nodes(model):
    """Every call in a Sequential or Functional graph, producers first.

    Returns:
        `(inputs, nodes, outputs)`: the model's input KerasTensors, a list of
        `GraphNode` in an order where each node comes after the nodes that
        produce its inputs, and the model's output KerasTensors.
    """
    # Keras has no public API for a graph's call events. A Functional model
    # keeps them by depth (`_nodes_by_depth`: the outputs at depth 0), and a
    # Sequential model builds such a Functional graph (`_functional`) once
    # its input shape is known. Read here only, like `_flatten_layers` above.
    function = model._functional if isinstance(model, keras.Sequential) else model
    if function is None:
        raise ValueError(
            f"Model {model.name!r} has no graph yet: it was built without an input "
            "shape. Start it with `keras.Input(shape)`, or call it once on data.")
    nodes = []
    for depth in sorted(function._nodes_by_depth, reverse=True):
        for node in function._nodes_by_depth[depth]:
            if isinstance(node.operation, keras.layers.InputLayer):
                continue
            constants = [a for a in node.arguments.args
                         if not isinstance(a, keras.KerasTensor)]
            nodes.append(GraphNode(node.operation, node.arguments.keras_tensors,
                                   constants, node.outputs))
    return list(function.inputs), nodes, list(function.outputs)


def forget_calls(model):
    """Drops the records of past calls from every layer and operation of
    `model`, a copy that is about to be cloned and thrown away.

    Keras records each call of a layer as a graph node on the layer
    (`_inbound_nodes`, `_outbound_nodes`), and `layer.output` reads the
    first. A layer taken from the copy into a new graph would keep the
    copy's node first, so `keras.Model(new.inputs, layer.output)` would mix
    two graphs ("the name 'input_layer' is used 2 times"). A Functional
    model runs and clones from its own node lists (`_nodes_by_depth`), not
    from these, so the copy still clones after this.
    """
    operations = {id(layer): layer for layer in sublayers(model)}
    graphs = [model] + [layer for layer in operations.values()
                        if isinstance(layer, keras.Model) and is_graph_model(layer)]
    for graph in graphs:
        for node in graph_nodes(graph)[1]:
            operations.setdefault(id(node.operation), node.operation)
    # The private node lists, read here only (see `sublayers`).
    for operation in operations.values():
        operation._inbound_nodes = []
        operation._outbound_nodes = []


# --- Keras and KerasHub internals, each behind one function -------------
# Each was checked against keras 3.15.1 and keras-hub 0.32.0; the layout
# test (tests/test_layout.py) keeps every other module off these names.


@contextlib.contextmanager
def scope_of(variable):
    """Name scopes of `variable`'s path (`a/b/layer/kernel` -> `a`, `b`):
    a layer built inside them gets its variables' paths beside it, so a
    `keras.distribution.LayoutMap` (matched on paths) lays them out as it
    did the old ones."""
    with contextlib.ExitStack() as stack:
        for part in variable.path.split("/")[:-2]:
            stack.enter_context(keras.name_scope(part))
        yield


def replace_sublayer(parent, attribute, new):
    """Makes `new` the sublayer `parent.<attribute>`, in the place of the
    old one in `parent`'s layer tracking, so `parent.weights` keep their
    order (what `.keras` files and weight copies rely on). Setting the
    attribute would append instead. Keras has no public API for it:
    `Layer._layers` is the tracker's list."""
    old = getattr(parent, attribute)
    parent._layers[parent._layers.index(old)] = new
    modules = getattr(parent, "_modules", None)  # PyTorch's registry
    if modules is not None and attribute in modules:
        modules[attribute] = new
    else:
        object.__setattr__(parent, attribute, new)


def replace_everywhere(model, old, new):
    """Puts layer `new` in the place of `old` throughout `model`: at every
    call of `old` in `model`'s graph and in the graphs of the models nested
    in it (a KerasHub task calls its backbone's token embedding again to
    read its logits), in each model's layer tracking, and in every attribute
    or list attribute that holds it (`backbone.token_embedding`,
    `backbone.transformer_layers`). The graph is not traced again: each
    recorded call is handed to `new`, which must take the same arguments
    and give the same outputs (a `PruningWrapper` of `old`).

    Keras has no public API for it. A Functional model runs its recorded
    calls (`_nodes_by_depth`, each `Node.operation`), lists its layers from
    `_operations`, and keeps its tracking in `_layers`; each output
    KerasTensor names its maker in `_keras_history`."""
    for node in old._inbound_nodes:
        node.operation = new
        for tensor in node.outputs:
            # A named tuple (operation, node_index, tensor_index).
            tensor._keras_history = tensor._keras_history._replace(operation=new)
    new._inbound_nodes, old._inbound_nodes = list(old._inbound_nodes), []
    new._outbound_nodes, old._outbound_nodes = list(old._outbound_nodes), []
    for holder in [model, *sublayers(model)]:
        if holder is new:
            continue
        for name in ("_operations", "_layers"):
            _replace_item(getattr(holder, name, None), old, new)
        for operations in (getattr(holder, "_operations_by_depth", None) or {}).values():
            _replace_item(operations, old, new)
        for name, value in attributes(holder).items():
            if value is old:
                object.__setattr__(holder, name, new)
                modules = getattr(holder, "_modules", None)  # PyTorch's registry
                if modules is not None and name in modules:
                    modules[name] = new
            elif isinstance(value, list) and not name.startswith("_"):
                _replace_item(value, old, new)


def _replace_item(items, old, new):
    """Replaces `old` by `new` in the list `items` (a list, Keras's
    `TrackedList`, whose item assignment tracks nothing, or TensorFlow's
    `ListWrapper`, which keeps its own storage)."""
    if items is None:
        return
    for i, item in enumerate(items):
        if item is old:
            items[i] = new


def bind_like(wrapper, layer):
    """Makes Keras bind the arguments of calls to `wrapper` by the names of
    `layer.call` (plus `training` and `mask`), so that a call such as a
    KerasHub block's `block(x, self_attention_cache=cache,
    self_attention_cache_update_index=0)` goes through a wrapper whose
    `call` takes `**kwargs`: bound to `**kwargs`, the cache (a tensor) and
    the index (an int) form one mixed argument, which Keras refuses.
    `wrapper.call` still receives the arguments as given. Keras reads the
    signature from `Layer._call_signature` and `call_signature_parameters`,
    set once in `Layer.__init__`."""
    own = inspect.signature(layer.call)
    params = [p for p in own.parameters.values()
              if p.kind is not inspect.Parameter.VAR_KEYWORD]
    names = {p.name for p in params}
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
             for name in ("training", "mask") if name not in names]
    tail = [p for p in own.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    signature = own.replace(parameters=params + extra + tail)
    wrapper._call_signature = signature
    wrapper.call_signature_parameters = list(signature.parameters)


def wrap_train_function_maker(model, wrap):
    """From now on, every train function Keras makes for `model` (after
    each `compile`, `make_train_function` makes a new one) is passed
    through `wrap(function)`, once per model. `Model.make_train_function`
    is public but not meant to be overridden; an attribute set on the
    instance takes its place without touching the class."""
    if getattr(model, "_kp_wrapped_train_function_maker", False):
        return
    make = model.make_train_function

    def make_train_function(force=False):
        make(force=force)
        if model.train_function is not None:
            model.train_function = wrap(model.train_function)

    object.__setattr__(model, "make_train_function", make_train_function)
    object.__setattr__(model, "_kp_wrapped_train_function_maker", True)


def slot_owner(slot, weights):
    """The index in `weights` of the variable that the optimizer variable
    `slot` (a momentum, an Adam moment) was made for, or None.

    Keras's optimizers name a slot `<variable path, '/' as '_'>_<slot
    name>` (`add_variable_from_reference`) and give no public link back to
    the variable; the longest matching path wins."""
    best = None
    for i, w in enumerate(weights):
        key = w.path.replace("/", "_")
        if slot.name.startswith(key + "_") and (
                best is None or len(key) > len(weights[best].path)):
            best = i
    return best


# KerasHub classes whose rules are known by name, so that KerasHub (which
# imports TensorFlow) is imported only by users who have its models.
_HUB_CLASSES = {
    "TransformerEncoder": "keras_hub.src.layers.modeling.transformer_encoder",
    "TransformerDecoder": "keras_hub.src.layers.modeling.transformer_decoder",
    "ViTEncoderBlock": "keras_hub.src.models.vit.vit_layers",
    "ViTEncoder": "keras_hub.src.models.vit.vit_layers",
    "PositionEmbedding": "keras_hub.src.layers.modeling.position_embedding",
    "LlamaTransformerDecoder": "keras_hub.src.models.llama.llama_decoder",
    "MistralTransformerDecoder": "keras_hub.src.models.mistral.mistral_transformer_decoder",
    "QwenTransformerDecoder": "keras_hub.src.models.qwen.qwen_decoder",
    "Qwen3TransformerDecoder": "keras_hub.src.models.qwen3.qwen3_decoder",
    "Phi3Decoder": "keras_hub.src.models.phi3.phi3_decoder",
    "GemmaDecoderBlock": "keras_hub.src.models.gemma.gemma_decoder_block",
    "Gemma3DecoderBlock": "keras_hub.src.models.gemma3.gemma3_decoder_block",
    "Gemma4TextDecoderBlock": "keras_hub.src.models.gemma4.gemma4_decoder_block",
    "SmolLM3DecoderLayer": "keras_hub.src.models.smollm3.smollm3_layers",
}


def hub_class_path(name):
    """`"module.QualName"` of the KerasHub class `name`, as a layer's
    `type(layer).__module__ + "." + __qualname__` reads."""
    return f"{_HUB_CLASSES[name]}.{name}"


def hub_class(name):
    """The KerasHub class `name` (imports KerasHub)."""
    return getattr(importlib.import_module(_HUB_CLASSES[name]), name)


def state_lives_in_variables(layer):
    """Whether `layer` is Keras's own and holds all its state in variables
    and config: a graph model, or a layer outside
    `keras.layers.preprocessing` (adapted statistics and vocabularies live
    outside variables there). Read from the class's module path, Keras's
    source layout."""
    module = type(layer).__module__
    if module.startswith("keras.src.models."):
        return is_graph_model(layer)
    return (module.startswith("keras.src.layers.")
            and not module.startswith("keras.src.layers.preprocessing."))


def is_backend_optimizer_module(module):
    """Whether a saved config's `module` is a backend's own optimizer
    module (`keras.src.backend.<name>.optimizer...`), which PyTorch's
    `model.save` writes and other backends can't load."""
    return module.startswith("keras.src.backend.") and ".optimizers" in module



def keeps_frozen(verb):
    """Decorates a verb that returns a copy of its first argument: warns
    when that model is wholly frozen, and gives the copy the model's own
    `trainable` too (its layers' flags are copied anyway), so that
    `copy.trainable = True` unfreezes every layer of it, as it would the
    original. (Keras skips sublayers when the flag already has the value
    set.) `keras.distillation.Distiller` freezes its teacher in place, so a
    student pruned from that teacher afterwards is the usual case."""

    def decorate(function):
        @functools.wraps(function)
        def run(model, *args, **kwargs):
            frozen = isinstance(model, keras.Model) and bool(model.weights) and \
                not model.trainable_weights
            if frozen:
                warnings.warn(
                    f"Model {model.name!r} has no trainable weights (a `keras.distillation."
                    f"Distiller` freezes its teacher), and the model that `{verb}` returns "
                    "keeps each layer's `trainable`: it would train nothing. Set "
                    "`model.trainable = True` on the result before training it.",
                    stacklevel=2)
            result = function(model, *args, **kwargs)
            if isinstance(model, keras.Model) and not model.trainable and \
                    isinstance(result, keras.Model):
                result.trainable = False
            return result
        return run
    return decorate
