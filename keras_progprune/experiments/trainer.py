"""The one-recipe trainer every method trains through."""

import os
import sys
import time

import keras
import tensorflow as tf

from keras_progprune.experiments import data as data_lib
from keras_progprune.experiments import config as config_lib
from keras_progprune import models as models_lib
from keras_progprune import shrinking


class _LearningRateLogger(keras.callbacks.Callback):
    """Puts the optimizer's current learning rate into the epoch logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class Trainer:
    """Holds the data and the recipe; methods call `build_model` and `fit`.

    Args:
        config: an `experiments.Config`.
        log: bool, write `history.csv`, TensorBoard logs and per-epoch
            sparsity summaries into `config.output_dir`. Defaults to True.
    """

    def __init__(self, config, log=True):
        self.config = config
        c = config
        data_dir = c.data_dir or None
        limit_train = c.train_examples or None
        limit_eval = c.eval_examples or None
        self.train_ds = data_lib.load(
            c.dataset, "train", c.batch_size, augment=c.augment, data_dir=data_dir,
            shuffle_seed=c.seed, validation_size=c.validation_size, limit=limit_train)
        self.val_ds = data_lib.load(
            c.dataset, "validation", c.batch_size, data_dir=data_dir,
            validation_size=c.validation_size, limit=limit_eval) if c.validation_size else None
        self.test_ds = data_lib.load(
            c.dataset, "test", c.batch_size, data_dir=data_dir,
            validation_size=c.validation_size, limit=limit_eval)
        self.steps_per_epoch = data_lib.steps_per_epoch(self.train_ds)
        self.epochs = c.epochs
        self.output_dir = c.output_dir
        self.log = log
        self.pruning_log_dir = (os.path.join(c.output_dir, "tensorboard", "pruning")
                                if log else None)
        self.steps_trained = 0
        self.epoch_times = []  # wall seconds of every epoch trained, in order
        self.fits = 0

    def build_model(self):
        shape, classes = data_lib.info(self.config.dataset)
        return models_lib.get_model(self.config.model, input_shape=shape,
                                    num_classes=classes)

    def loss_fn(self):
        """The loss on integer labels, for scoring methods."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def scoring_batches(self, n):
        """The first `n` training batches (for SNIP and GraSP)."""
        return self.train_ds.take(n)

    def _learning_rate(self):
        c = self.config
        total = self.epochs * self.steps_per_epoch
        name = config_lib.lr_schedule_of(c)
        if name == "cosine":
            return keras.optimizers.schedules.CosineDecay(c.lr, max(total, 1))
        if name == "hold_cosine":
            # Held at `lr` while the sparsity rises, then a cosine decay to 0
            # over the fine-tuning at the target: a flat "warm-up" from lr to lr.
            hold = min(config_lib.prune_end_epoch(c) * self.steps_per_epoch, total)
            return keras.optimizers.schedules.CosineDecay(
                c.lr, max(total - hold, 1), warmup_target=c.lr, warmup_steps=hold)
        if name == "step":
            # /10 at 50% and 75% of training (GraSP: epochs 80 and 120 of 160).
            bounds = [int(total * 0.5), int(total * 0.75)]
            return keras.optimizers.schedules.PiecewiseConstantDecay(
                bounds, [c.lr, c.lr * 0.1, c.lr * 0.01])
        return c.lr

    def make_optimizer(self):
        c = self.config
        lr = self._learning_rate()
        wd = c.weight_decay or None
        if c.optimizer == "sgd":
            return keras.optimizers.SGD(lr, momentum=c.momentum, weight_decay=wd)
        if c.optimizer == "adamw":
            return keras.optimizers.AdamW(lr, weight_decay=c.weight_decay)
        return keras.optimizers.Adam(lr, weight_decay=wd)

    def compile(self, model):
        model.compile(
            optimizer=self.make_optimizer(),
            loss=keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=self.config.label_smoothing)
            if self.config.label_smoothing else
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    def _datasets_for_loss(self):
        if not self.config.label_smoothing:
            return self.train_ds, self.val_ds
        _, classes = data_lib.info(self.config.dataset)

        def one_hot(x, y):
            return x, tf.one_hot(y, classes)

        return (self.train_ds.map(one_hot),
                self.val_ds.map(one_hot) if self.val_ds is not None else None)

    def fit(self, model, callbacks, epochs=None, log=None):
        """Compiles `model` with the recipe and trains it for `epochs`.

        Counts the steps trained (the cost of a method) across calls, and
        records each epoch's wall time in `epoch_times`.
        """
        history = self._fit(model, callbacks, epochs, log)
        return history.history

    def fit_shrinking(self, model, callbacks, shrink_every, log=None):
        """`fit`, through `keras_progprune.fit_shrinking`: returns
        `(the final, shrunk model, history dict)`."""
        result = self._fit(model, callbacks, None, log, shrink_every=shrink_every)
        return result.model, result.history.history

    def _fit(self, model, callbacks, epochs, log, shrink_every=0):
        epochs = epochs or self.epochs
        self.compile(model)
        keras.utils.set_random_seed(self.config.seed + self.fits)
        self.fits += 1
        train, val = self._datasets_for_loss()
        extra = []
        if self.log if log is None else log:
            extra = [
                _LearningRateLogger(),
                # Methods that train several times (lottery) append rounds.
                keras.callbacks.CSVLogger(os.path.join(self.output_dir, "history.csv"),
                                          append=self.fits > 1),
                keras.callbacks.TensorBoard(os.path.join(self.output_dir, "tensorboard")),
            ]
        verbose = self.config.verbose
        if verbose == "auto":  # a live bar on a terminal, a line per epoch in logs
            verbose = 1 if sys.stdout.isatty() else 2
        verbose = int(verbose)
        timer = EpochTimer()
        arguments = dict(validation_data=val, epochs=epochs, verbose=verbose,
                         callbacks=list(callbacks) + extra + [timer],
                         shuffle=False)  # the dataset shuffles itself
        if shrink_every:
            result = shrinking.fit_shrinking(model, train, shrink_every=shrink_every,
                                             **arguments)
        else:
            result = model.fit(train, **arguments)
        self.epoch_times += timer.times
        self.steps_trained += epochs * self.steps_per_epoch
        return result

    def evaluate(self, model):
        """Test accuracy of `model` (compiled here if needed)."""
        if getattr(model, "optimizer", None) is None or not model.compiled:
            self.compile(model)
        if self.config.label_smoothing:
            _, classes = data_lib.info(self.config.dataset)
            ds = self.test_ds.map(lambda x, y: (x, tf.one_hot(y, classes)))
        else:
            ds = self.test_ds
        return float(model.evaluate(ds, verbose=0, return_dict=True)["accuracy"])




class EpochTimer(keras.callbacks.Callback):
    """Records each epoch's wall time (validation included) in `.times`.

    The list grows across `fit` calls, so one timer can follow every phase
    of a `fit_shrinking` run; make a new one per measurement.
    """

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)
