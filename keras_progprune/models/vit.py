"""A small Vision Transformer for MNIST-sized inputs (KerasHub's ViT)."""

import keras


def vit_tiny(input_shape=(28, 28, 1), num_classes=10, patch_size=7, num_layers=4,
             num_heads=4, hidden_dim=64, mlp_dim=128):
    """A 4-block ViT: KerasHub's `ViTBackbone` and a Dense on the class token.

    On 28x28x1 inputs with patch 7: 16 patches and a class token, hidden 64,
    4 heads of 16, MLP 128 (about 137K parameters); no dropout. Small
    enough to train on MNIST on a laptop CPU, and a target for width pruning
    (`kp.prune_width`, or `structure="channel"`).

    Args:
        input_shape: tuple, image shape (square). Defaults to (28, 28, 1).
        num_classes: int. Defaults to 10.
        patch_size: int, side of a square patch. Defaults to 7.
        num_layers: int, transformer blocks. Defaults to 4.
        num_heads: int, attention heads per block. Defaults to 4.
        hidden_dim: int, width of the residual stream. Defaults to 64.
        mlp_dim: int, feed-forward neurons per block. Defaults to 128.

    Returns:
        A Functional `keras.Model` with logits output.

    Raises:
        ImportError: if KerasHub is not installed (`pip install
            "keras-progprune[hub]"`).
    """
    try:
        import keras_hub  # noqa: PLC0415 (optional: the `hub` extra)
    except ImportError as e:
        raise ImportError(
            "vit_tiny is built from KerasHub's ViTBackbone: install it with "
            "`pip install \"keras-progprune[hub]\"` (or `pip install keras-hub`).") from e
    backbone = keras_hub.models.ViTBackbone(
        image_shape=tuple(input_shape), patch_size=patch_size, num_layers=num_layers,
        num_heads=num_heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim, dropout_rate=0.0,
        attention_dropout=0.0)
    logits = keras.layers.Dense(num_classes, name="logits")(backbone.output[:, 0, :])
    return keras.Model(backbone.input, logits, name="vit_tiny")
